"""The CLI on the bundled data and configs (no QE needed)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from nearsight.cli import main
from nearsight.config import Config, config_from_dict

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "al" / "data"


def test_demo_trains_tests_and_predicts_a_larger_cell(tmp_path: Path, capsys) -> None:
    """The whole demo on the bundled data, with 2 epochs instead of 200 to stay fast."""
    files = sorted(DATA.glob("*.h5"))
    assert len(files) >= 6, "the bundled Al dataset must be in the repo"
    out_dir = tmp_path / "demo"
    assert main(["demo", "--data", str(DATA), "-o", str(out_dir), "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    for path in files:
        assert path.name in out
    assert "against QE" in out and "against the DFT LDOS" in out
    assert "A larger cell than the model trained on: al8_000.h5" in out
    summary = json.loads((out_dir / "summary.json").read_text())
    for key in (
        "train_seconds",
        "total_energy_mae_mev_per_atom",
        "band_energy_mae_mev_per_atom",
        "density_mape_percent",
        "larger_cell_predicted_total_energy_ev",
    ):
        assert isinstance(summary[key], float), key
    assert summary["held_out_snapshots"] == ["al4_005.h5"] and summary["epochs"] == 2
    assert summary["larger_cell"]["grid_shape"] == [48, 24, 24]
    for plot in ("parity.png", "dos.png", "training.png"):
        assert (out_dir / plot).stat().st_size > 1000
    assert (out_dir / "al8_000_density.cube").is_file()
    # A second run finds the finished training and does not train again.
    assert main(["demo", "--data", str(DATA), "-o", str(out_dir), "--epochs", "2"]) == 0
    assert "training is already complete" in capsys.readouterr().out


def test_demo_without_data_says_how_to_make_it(tmp_path: Path, capsys) -> None:
    assert main(["demo", "--data", str(tmp_path)]) == 1
    assert "scripts/make_al_dataset.py" in capsys.readouterr().err


def test_bundled_snapshots_are_consistent(capsys: pytest.CaptureFixture[str]) -> None:
    from nearsight.io.dataset import read_snapshot

    for path in sorted(DATA.glob("al4_*.h5")):
        snap = read_snapshot(path, ldos=False)
        assert snap.energy_grid is not None and snap.ldos_kernel == "fermi-dirac"
        # Every occupied level lies 14 kernel widths inside the window.
        assert snap.qe.eigenvalues.min() - 14 * snap.ldos_broadening_ev >= snap.energy_grid.e_min
        assert snap.density.sum() * snap.grid.voxel_volume == pytest.approx(12.0, rel=2e-4)
    for path in sorted(DATA.glob("al8_*.h5")):
        snap = read_snapshot(path)
        assert snap.ldos is None and len(snap.atoms) == 8
        assert snap.density.sum() * snap.grid.voxel_volume == pytest.approx(24.0, rel=2e-4)


def test_config_defaults_and_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "defaults"]) == 0
    text = capsys.readouterr().out
    assert config_from_dict(tomllib.loads(text)) == Config()
    assert main(["config", "check", str(ROOT / "examples" / "al" / "al4.toml")]) == 0
    assert "valid" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text("[dft]\necutwfc = 30\n")
    assert main(["config", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "dft.ecutwfc_ry" in err and str(bad) in err


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "dft" in capsys.readouterr().out


def test_cube_export_reads_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    from nearsight.io.cube import read_cube
    from nearsight.io.dataset import read_snapshot

    path = DATA / "al4_000.h5"
    snap = read_snapshot(path)
    assert main(["dataset", "cube", str(path), "-o", str(tmp_path / "n.cube")]) == 0
    cube = read_cube(tmp_path / "n.cube", quantity="density")
    # write_cube prints 8 significant digits.
    np.testing.assert_allclose(cube.data, snap.density, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(cube.atoms.positions % 4.05, snap.atoms.positions % 4.05, atol=1e-6)
    assert (
        main(
            ["dataset", "cube", str(path), "-o", str(tmp_path / "l.cube"), "--ldos-energy", "7.51"]
        )
        == 0
    )
    assert "7.5000 eV" in capsys.readouterr().out
    ldos = read_cube(tmp_path / "l.cube", quantity="ldos")
    index = int(np.argmin(np.abs(snap.energy_grid.energies - 7.5)))
    assert ldos.energy_ev == pytest.approx(7.5, abs=1e-4)
    np.testing.assert_allclose(ldos.data, snap.ldos[..., index], rtol=1e-6, atol=1e-12)
    assert (
        main(
            [
                "dataset",
                "cube",
                str(DATA / "al8_000.h5"),
                "-o",
                str(tmp_path / "x.cube"),
                "--ldos-energy",
                "7.5",
            ]
        )
        == 1
    )
    assert "has no LDOS" in capsys.readouterr().err
