"""Physical metrics of a model, checked against QE's numbers for the bundled snapshot."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from nearsight.analysis import metrics
from nearsight.cli import main
from nearsight.config import DescriptorsConfig
from nearsight.data.scaling import Scaler
from nearsight.data.sources import SnapshotSource
from nearsight.descriptors.compute import metadata
from nearsight.grid import EnergyGrid
from nearsight.io.dataset import open_snapshot, store_descriptors
from nearsight.model.bundle import Bundle
from nearsight.model.network import FeedForward

REPO = Path(__file__).resolve().parents[1]
SNAPSHOT = REPO / "examples" / "al" / "data" / "al4_000.h5"
CONFIG = DescriptorsConfig(twojmax=2)  # 5 features


@pytest.fixture(scope="module")
def snapshot_with_descriptors(tmp_path_factory) -> Path:
    """al4_000 with cheap stand-in descriptors (the metrics never look at their values)."""
    path = tmp_path_factory.mktemp("metrics") / "al4_000.h5"
    shutil.copy(SNAPSHOT, path)
    rng = np.random.default_rng(0)
    store_descriptors(path, rng.normal(size=(24, 24, 24, 5)).astype(np.float32), metadata(CONFIG))
    return path


def test_the_dft_ldos_scores_its_known_distance_from_qe(snapshot_with_descriptors) -> None:
    """Feeding the DFT LDOS itself as the prediction gives zero error against the LDOS
    reference and, against QE, exactly what `nearsight energy` reports for this file
    (-3.12 meV/atom total, +16.6 meV E_F: the 0.05 eV broadening of the stored LDOS)."""
    with SnapshotSource(snapshot_with_descriptors, CONFIG) as src:
        ref = metrics._references(src)
        ldos = src.targets(0, src.n_points).reshape(24, 24, 24, -1)
        result = metrics._errors(src, ldos, ref)
    e = result.errors
    for key in ("total_energy_mev_per_atom", "band_energy_mev_per_atom", "fermi_energy_mev"):
        assert e[key + "_vs_ldos"] == 0.0
    assert e["density_mape_percent_vs_ldos"] == 0.0
    assert e["total_energy_mev_per_atom"] == pytest.approx(-3.1159, abs=1e-3)
    assert e["band_energy_mev_per_atom"] == pytest.approx(-4.9732, abs=1e-3)
    assert e["fermi_energy_mev"] == pytest.approx(16.5857, abs=1e-3)
    assert e["density_mape_percent"] == pytest.approx(0.290, abs=1e-3)
    np.testing.assert_array_equal(result.dos["predicted"], result.dos["reference"])


def model(n_energies: int = 256, seed: int = 0) -> tuple[FeedForward, Scaler, Scaler]:
    """A network that predicts the mean LDOS everywhere (zero weights, bias at the mean)."""
    with open_snapshot(SNAPSHOT) as snap:
        ldos = snap.ldos_slab(0, 24).reshape(-1, n_energies)
    net = FeedForward([5, 4, n_energies], "tanh", seed=seed)
    for p in net.parameters():
        p.data.zero_()
    out = Scaler("none").partial_fit(ldos[:1])
    net.layers[-1].bias.data[:] = torch_tensor(ldos.mean(0))
    return net, Scaler("none").partial_fit(np.zeros((1, 5))), out


def torch_tensor(a):
    import torch

    return torch.as_tensor(a, dtype=torch.float32)


def test_evaluate_and_summary(snapshot_with_descriptors) -> None:
    net, inputs, outputs = model()
    cache: dict = {}
    with SnapshotSource(snapshot_with_descriptors, CONFIG) as src:
        [result] = metrics.evaluate(net, inputs, outputs, [src], cache=cache)
        assert str(src.path) in cache
        [again] = metrics.evaluate(net, inputs, outputs, [src], cache=cache)
    assert again.errors == result.errors
    # The mean LDOS everywhere has the right DOS, hence band terms within the broadening
    # error, but a flat density: its MAPE is the density's own spread around the mean.
    assert abs(result.errors["band_energy_mev_per_atom_vs_ldos"]) < 1e-2
    assert result.errors["density_mape_percent"] > 5
    summary = metrics.summarize([result, again])
    assert summary["total_energy_mae_mev_per_atom"] == pytest.approx(
        abs(result.errors["total_energy_mev_per_atom"])
    )
    assert set(summary) >= {
        "band_energy_mae_mev_per_atom",
        "fermi_energy_mae_mev",
        "density_mape_percent",
        "total_energy_max_mev_per_atom",
    }


def test_cli_prints_the_table_and_writes_plots(snapshot_with_descriptors, tmp_path, capsys):
    net, inputs, outputs = model()
    from nearsight.io.dataset import read_snapshot

    snap = read_snapshot(snapshot_with_descriptors, ldos=False)
    bundle = Bundle(
        network=net,
        input_scaler=inputs,
        output_scaler=outputs,
        descriptors=CONFIG,
        energy_grid=EnergyGrid(-4.1, 0.05, 256),
        temperature_k=298.0,
        electrons_per_atom={"Al": 3.0},
        pseudopotentials=snap.pseudopotentials,
        grid_spacing=(4.05 / 24,) * 3,
        ecutrho_ry=80.0,
    )
    model_path = bundle.save(tmp_path / "m.safetensors")
    assert main(["test", str(model_path), str(snapshot_with_descriptors)]) == 0
    out = capsys.readouterr().out
    assert "against QE" in out and "al4_000.h5" in out and "mean |error|" in out
    assert (tmp_path / "m_parity.png").stat().st_size > 1000
    assert (tmp_path / "m_dos.png").stat().st_size > 1000
    plots = tmp_path / "plots"
    argv = ["test", str(model_path), str(snapshot_with_descriptors), "--json", "--plots"]
    assert main([*argv, str(plots)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["snapshots"][0]["errors"]["density_mape_percent"] > 5
    assert (plots / "parity.png").is_file() and (plots / "dos.png").is_file()
