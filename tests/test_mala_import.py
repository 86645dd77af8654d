"""``nearsight import-mala``: a MALA 1.4.0 model archive becomes a model bundle that predicts
what MALA predicts.

The archives are built the way ``test_mala_io`` builds them (MALA is not installed here);
MALA's prediction is recomputed by hand from the archive's raw pieces: its DataScaler
formulas, a forward pass through the state dict with ``torch.nn.functional`` in MALA's
module-list order, and the inverse output scaling.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_mala_io import (
    CELL,
    GRID,
    INPUT_MEANS,
    INPUT_STDS,
    N_ENERGIES,
    N_FEATURES,
    info_dict,
    mala_state_dict,
    params_dict,
    pickled_scalers,
    scaler_json,
    write_archive,
)
from torch.nn import functional

from nearsight.cli import main
from nearsight.descriptors.params import BispectrumParams
from nearsight.errors import InputError
from nearsight.grid import EnergyGrid
from nearsight.io.mala import read_mala_archive
from nearsight.model.bundle import Bundle
from nearsight.model.inference import predict_ldos
from nearsight.model.mala_import import (
    MALA_ACTIVATION_NAMES,
    descriptors_from_mala,
    import_mala,
    nearsight_activation,
    network_from_mala,
    scaler_from_mala,
)

REPO = Path(__file__).resolve().parents[1]
PSEUDO_DIR = REPO / "examples" / "al" / "pseudo"
UPF_NAME = "Al.pbe-nlcc-rrkj.UPF"
TWOJMAX = 2
OUTPUT_MIN, OUTPUT_MAX = 0.0, 0.0625  # write_archive's global minmax output scaler

# The network width must be the bispectrum count of twojmax, counted both ways.
assert BispectrumParams(twojmax=TWOJMAX, rcutfac=4.2).n_features == N_FEATURES
assert (TWOJMAX + 2) * (TWOJMAX + 3) * (TWOJMAX + 4) // 24 == N_FEATURES

FUNCTIONAL = {
    "ReLU": functional.relu,
    "LeakyReLU": lambda t: functional.leaky_relu(t, negative_slope=0.01),  # torch.nn's default
    "Sigmoid": torch.sigmoid,
    "Tanh": torch.tanh,
    "GELU": functional.gelu,
    "SiLU": functional.silu,
    "ELU": lambda t: functional.elu(t, alpha=1.0),
    "Softplus": lambda t: functional.softplus(t, beta=1.0),
    "Identity": lambda t: t,
    None: lambda t: t,
}
"""MALA's activations (``getattr(torch.nn, name)()``, torch defaults) as functions."""


# --------------------------------------------------------------------------------------
# MALA's pipeline, by hand
# --------------------------------------------------------------------------------------


def mala_activation_after(params: dict, i: int) -> str | None:
    """The activation MALA 1.4.0's FeedForwardNet puts after Linear ``i``."""
    net = params["network"]
    n = len(net["layer_sizes"]) - 1
    if i == n - 1 and not net["layer_activations_include_output_layer"]:
        return None
    acts = net["layer_activations"]
    if isinstance(acts, list):
        return acts[i] if i < len(acts) else None
    return acts


def mala_forward(state: dict, params: dict, x: torch.Tensor) -> torch.Tensor:
    """MALA's network on scaled rows x [n, F]: the module list, walked by state-dict index."""
    linear = sorted({int(k.split(".")[1]) for k in state if k.endswith(".weight")})
    for i, index in enumerate(linear):
        x = functional.linear(x, state[f"layers.{index}.weight"], state[f"layers.{index}.bias"])
        x = FUNCTIONAL[mala_activation_after(params, i)](x)
    return x


def mala_transform(scaler: dict, x: torch.Tensor) -> torch.Tensor:
    """DataScaler.transform, feature-wise and total, standard and minmax."""
    kind = scaler["typestring"]
    if kind in ("None", "none"):
        return x
    if kind.startswith("feature-wise"):
        pair = ("means", "stds") if "standard" in kind else ("mins", "maxs")
    else:
        pair = ("total_mean", "total_std") if "standard" in kind else ("total_min", "total_max")
    a, b = (torch.as_tensor(scaler[k], dtype=torch.float32).reshape(-1) for k in pair)
    return (x - a) / b if "standard" in kind else (x - a) / (b - a)


def mala_inverse(scaler: dict, y: torch.Tensor) -> torch.Tensor:
    """DataScaler.inverse_transform."""
    kind = scaler["typestring"]
    if kind in ("None", "none"):
        return y
    if kind.startswith("feature-wise"):
        pair = ("means", "stds") if "standard" in kind else ("mins", "maxs")
    else:
        pair = ("total_mean", "total_std") if "standard" in kind else ("total_min", "total_max")
    a, b = (torch.as_tensor(scaler[k], dtype=torch.float32).reshape(-1) for k in pair)
    return y * b + a if "standard" in kind else y * (b - a) + a


def mala_predict(state: dict, params: dict, iscaler: dict, oscaler: dict, x: np.ndarray):
    """MALA's LDOS [n, E] (before restrict_targets) of unscaled descriptors x [n, F]."""
    with torch.no_grad():
        rows = mala_transform(iscaler, torch.as_tensor(x, dtype=torch.float32))
        return mala_inverse(oscaler, mala_forward(state, params, rows)).numpy()


def assert_close(ours: np.ndarray, mala: np.ndarray) -> None:
    """1e-5 relative (float32 networks), measured against the LDOS scale."""
    assert ours.shape == mala.shape
    np.testing.assert_allclose(ours, mala, rtol=1e-5, atol=1e-5 * float(np.abs(mala).max()))


# --------------------------------------------------------------------------------------
# Archives
# --------------------------------------------------------------------------------------

DEFAULT_OSCALER = scaler_json("minmax", total_min=OUTPUT_MIN, total_max=OUTPUT_MAX)
DEFAULT_ISCALER = scaler_json(
    "feature-wise-standard", means=[INPUT_MEANS.tolist()], stds=[INPUT_STDS.tolist()]
)


def mala_info(**changes) -> dict:
    """The snapshot info.json of an Al model trained with the repository's Al PBE UPF."""
    info = info_dict()
    info["pseudopotentials"] = {"Al": UPF_NAME}
    info.update(changes)
    return info


def build(
    tmp_path: Path,
    params: dict | None = None,
    *,
    name: str = "al_model",
    info: dict | None = None,
    iscaler: dict | None = None,
    oscaler: dict | None = None,
    skip: tuple[str, ...] = (),
    extra: dict[str, bytes] | None = None,
    state_dict: dict | None = None,
) -> tuple[Path, dict, dict]:
    """A save_run zip with a realistic info.json; returns (path, params, state dict)."""
    params = params_dict(twojmax=TWOJMAX) if params is None else params
    members = {
        f"{name}.info.json": json.dumps(mala_info() if info is None else info).encode(),
        f"{name}.oscaler.json": json.dumps(oscaler or DEFAULT_OSCALER).encode(),
    }
    members.update(extra or {})
    path, state = write_archive(
        tmp_path / f"{name}.zip",
        params,
        skip=skip,
        extra=members,
        state_dict=state_dict,
        iscaler=iscaler,
    )
    return path, params, state


def run_cli(*args: str | Path) -> int:
    return main(["import-mala", *map(str, args)])


# --------------------------------------------------------------------------------------
# 1. The imported bundle predicts what MALA predicts
# --------------------------------------------------------------------------------------

PIPELINES = {
    "leakyrelu-deep": dict(
        sizes=(N_FEATURES, 16, 12, N_ENERGIES),
        activations="LeakyReLU",
        include_output=False,
        iscaler=DEFAULT_ISCALER,
        oscaler=DEFAULT_OSCALER,
    ),
    "list-elu-softplus": dict(
        sizes=(N_FEATURES, 10, 7, N_ENERGIES),
        activations=["ELU", "Identity", "Softplus"],
        include_output=True,
        iscaler=scaler_json("standard", total_mean=0.3, total_std=1.7),
        oscaler=scaler_json(
            "feature-wise-minmax",
            mins=[[0.0, 0.001, 0.002, 0.0]],
            maxs=[[0.05, 0.07, 0.04, 0.03]],
        ),
    ),
    "tanh-minmax-in-standard-out": dict(
        sizes=(N_FEATURES, 9, N_ENERGIES),
        activations="Tanh",
        include_output=True,
        iscaler=scaler_json(
            "feature-wise-minmax",
            mins=[(INPUT_MEANS - 2 * INPUT_STDS).tolist()],
            maxs=[(INPUT_MEANS + 2 * INPUT_STDS).tolist()],
        ),
        oscaler=scaler_json("feature-wise-standard", means=[[0.01] * 4], stds=[[0.02] * 4]),
    ),
}


@pytest.mark.parametrize("case", sorted(PIPELINES))
def test_imported_bundle_predicts_what_mala_predicts(tmp_path, capsys, case):
    spec = PIPELINES[case]
    params = params_dict(spec["sizes"], spec["activations"], spec["include_output"], TWOJMAX)
    path, params, state = build(tmp_path, params, iscaler=spec["iscaler"], oscaler=spec["oscaler"])
    out = tmp_path / "model.safetensors"

    assert run_cli(path, out, "--pseudo-dir", PSEUDO_DIR) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed
    assert " -> ".join(map(str, spec["sizes"])) in printed
    assert "twojmax 2" in printed and "298 K" in printed and "Al (3 e" in printed

    bundle = Bundle.load(out)
    x = np.random.default_rng(7).normal(INPUT_MEANS, 2 * INPUT_STDS, size=(257, N_FEATURES))
    ours = predict_ldos(bundle.network, bundle.input_scaler, bundle.output_scaler, x)
    mala = mala_predict(state, params, spec["iscaler"], spec["oscaler"], x)
    assert ours.dtype == np.float32
    assert_close(ours, mala)
    # the network is not trivially constant: predictions differ between rows
    assert np.ptp(mala, axis=0).min() > 0


def test_bundle_records_what_the_archive_and_info_say(tmp_path, capsys):
    path, _, _ = build(tmp_path)
    out = tmp_path / "model.safetensors"
    assert run_cli(path, out, "--pseudo-dir", PSEUDO_DIR) == 0
    bundle = Bundle.load(out)

    assert bundle.energy_grid == EnergyGrid(-5.0, 0.1, N_ENERGIES)
    assert bundle.temperature_k == 298.0
    np.testing.assert_allclose(bundle.grid_spacing, np.diag(CELL) / np.asarray(GRID))
    assert bundle.ecutrho_ry == pytest.approx(160.0)  # info.json's Ry, via eV and back
    assert bundle.electrons_per_atom == {"Al": 3.0}
    upf = PSEUDO_DIR / UPF_NAME
    record = bundle.pseudopotentials["Al"]
    assert record.filename == UPF_NAME
    assert record.sha256 == hashlib.sha256(upf.read_bytes()).hexdigest()
    assert record.text == upf.read_text()

    d = bundle.descriptors
    assert (d.twojmax, d.rcutfac, d.switchflag) == (TWOJMAX, 4.2, True)
    assert (d.elements, d.radii, d.weights) == (("Al",), (0.5,), (1.0,))
    assert (d.rfac0, d.rmin0, d.bzeroflag, d.wselfallflag) == (0.99363, 0.0, False, False)
    assert bundle.network.activations == ("relu", "relu")
    assert next(bundle.network.parameters()).dtype == torch.float32

    prov = bundle.provenance
    assert prov["imported_from"] == "MALA" and prov["archive"] == "al_model.zip"
    assert prov["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert set(prov["mala_params"]) == {"network", "descriptors", "targets", "data"}
    assert prov["mala_params"]["descriptors"]["bispectrum_cutoff"] == 4.2
    assert prov["restrict_targets"] == "zero_out_negative"
    assert "restrict_targets" in capsys.readouterr().out  # reported, since not applied


@pytest.mark.parametrize("activation", sorted(MALA_ACTIVATION_NAMES))
def test_network_reproduces_the_state_dict_forward(tmp_path, activation):
    params = params_dict((N_FEATURES, 11, 6, N_ENERGIES), activation, True, TWOJMAX)
    path, params, state = build(tmp_path, params)
    network = network_from_mala(read_mala_archive(path))
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(64, N_FEATURES)).astype(np.float32))
    with torch.no_grad():
        expected = mala_forward(state, params, x)
        got = network(x)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    # Identity adds no module: the Sequential holds only the Linears and real activations
    n_modules = 3 + (0 if activation == "Identity" else 3)
    assert len(network.layers) == n_modules


def test_scalers_transform_with_malas_formulas(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, N_FEATURES))
    archive = read_mala_archive(build(tmp_path, iscaler=DEFAULT_ISCALER)[0])
    ours = scaler_from_mala(archive.input_scaler)
    # MALA: (x - mean) / torch.std, with std taken as stored (n - 1 estimate)
    np.testing.assert_allclose(ours.transform(x), (x - INPUT_MEANS) / INPUT_STDS, rtol=1e-12)
    np.testing.assert_allclose(ours.inverse_transform(ours.transform(x)), x, rtol=1e-12)
    assert ours.count == 1 and ours.per_feature

    y = rng.uniform(0, 0.06, size=(40, N_ENERGIES))
    minmax = scaler_from_mala(archive.output_scaler)
    expected = (y - OUTPUT_MIN) / (OUTPUT_MAX - OUTPUT_MIN)
    np.testing.assert_allclose(minmax.transform(y), expected, rtol=1e-12)
    assert not minmax.per_feature

    plain = read_mala_archive(build(tmp_path, name="plain", iscaler=scaler_json("None"))[0])
    none = scaler_from_mala(plain.input_scaler)
    np.testing.assert_array_equal(none.transform(x), x)


# --------------------------------------------------------------------------------------
# 2. Legacy archives: pickled scalers (MALA < 1.4.0)
# --------------------------------------------------------------------------------------


def test_legacy_pickled_scalers_archive_imports(tmp_path):
    iblob, oblob, expected = pickled_scalers()
    path, params, state = build(
        tmp_path,
        name="old",
        skip=(".iscaler.json", ".oscaler.json"),
        extra={"old.iscaler.pkl": iblob, "old.oscaler.pkl": oblob},
    )
    out = tmp_path / "old.safetensors"
    assert run_cli(path, out, "--pseudo", f"Al={PSEUDO_DIR / UPF_NAME}") == 0
    bundle = Bundle.load(out)

    iscaler = scaler_json(
        "feature-wise-standard", means=expected["means"].tolist(), stds=expected["stds"].tolist()
    )
    oscaler = scaler_json(
        "feature-wise-minmax", mins=expected["mins"].tolist(), maxs=expected["maxs"].tolist()
    )
    x = np.random.default_rng(4).normal(size=(100, N_FEATURES))
    ours = predict_ldos(bundle.network, bundle.input_scaler, bundle.output_scaler, x)
    assert_close(ours, mala_predict(state, params, iscaler, oscaler, x))


# --------------------------------------------------------------------------------------
# 3. What is missing or wrong is named, with the fix
# --------------------------------------------------------------------------------------


def test_missing_temperature_names_the_option(tmp_path, capsys):
    path, _, _ = build(tmp_path, info=mala_info(temperature=None))
    out = tmp_path / "m.safetensors"
    assert run_cli(path, out, "--pseudo-dir", PSEUDO_DIR) == 1
    err = capsys.readouterr().err
    assert "electronic temperature" in err and "fix: pass --temperature K" in err
    assert not out.exists()

    assert run_cli(path, out, "--pseudo-dir", PSEUDO_DIR, "--temperature", "933") == 0
    assert Bundle.load(out).temperature_k == 933.0


def test_options_win_over_the_info_and_stand_in_for_a_missing_one(tmp_path):
    path, _, _ = build(tmp_path, skip=(".info.json",))
    out = tmp_path / "m.safetensors"
    args = ["--pseudo", f"Al={PSEUDO_DIR / UPF_NAME}", "--temperature", "500"]
    assert run_cli(path, out, *args, "--grid-spacing", "0.2") == 0
    bundle = Bundle.load(out)
    assert bundle.grid_spacing == (0.2, 0.2, 0.2) and bundle.ecutrho_ry is None
    assert bundle.temperature_k == 500.0

    assert run_cli(path, out, *args, "--grid-spacing", "0.2", "0.21", "0.22") == 0
    assert Bundle.load(out).grid_spacing == (0.2, 0.21, 0.22)

    # a separate info.json replaces the archive's (here: the missing one)
    info = tmp_path / "snap.info.json"
    info.write_text(json.dumps(mala_info(temperature=100.0)))
    assert run_cli(path, out, "--pseudo-dir", PSEUDO_DIR, "--info", info) == 0
    bundle = Bundle.load(out)
    assert bundle.temperature_k == 100.0 and bundle.ecutrho_ry == pytest.approx(160.0)

    # options win over the archive's info.json
    path, _, _ = build(tmp_path, name="with_info")
    assert run_cli(path, out, *args, "--grid-spacing", "0.3", "--ecutrho-ry", "200") == 0
    bundle = Bundle.load(out)
    assert bundle.temperature_k == 500.0 and bundle.grid_spacing == (0.3, 0.3, 0.3)
    assert bundle.ecutrho_ry == 200.0 and bundle.provenance["sources"]["temperature"] == "option"


def test_missing_grid_spacing_and_elements_name_the_options(tmp_path, capsys):
    path, _, _ = build(tmp_path, skip=(".info.json",))
    out = tmp_path / "m.safetensors"
    assert run_cli(path, out, "--pseudo", f"Al={PSEUDO_DIR / UPF_NAME}", "--temperature", "5") == 1
    assert "fix: pass --grid-spacing H" in capsys.readouterr().err
    assert run_cli(path, out, "--temperature", "5", "--grid-spacing", "0.2") == 1
    assert "fix: pass --pseudo El=PATH" in capsys.readouterr().err
    assert run_cli(path, out, "--temperature", "5", "--grid-spacing", "0", "--pseudo", "Al") == 1
    assert "expected EL=PATH" in capsys.readouterr().err
    assert not out.exists()


def test_missing_pseudopotential_names_the_fix(tmp_path, capsys):
    path, _, _ = build(tmp_path)
    out = tmp_path / "m.safetensors"
    assert run_cli(path, out) == 1
    err = capsys.readouterr().err
    assert "no pseudopotential for Al" in err
    assert "pass --pseudo-dir DIR holding it, or pass --pseudo Al=PATH" in err
    assert UPF_NAME in err

    empty = tmp_path / "pseudo"
    empty.mkdir()
    assert run_cli(path, out, "--pseudo-dir", empty) == 1
    err = capsys.readouterr().err
    assert f"{UPF_NAME} is not in {empty}" in err and "fix: put" in err
    assert not out.exists()


def test_pseudopotential_must_agree_with_the_info(tmp_path, capsys):
    path, _, _ = build(tmp_path, info=mala_info(electrons_per_atom=11.0))
    out = tmp_path / "m.safetensors"
    assert run_cli(path, out, "--pseudo-dir", PSEUDO_DIR) == 1
    err = capsys.readouterr().err
    assert "[electrons_per_atom]" in err and "11 valence electrons" in err and "Al: 3" in err
    assert "fix: give the pseudopotentials the model's training data were computed with" in err

    # a UPF of the wrong element (a copy relabelled Cu)
    text = (PSEUDO_DIR / UPF_NAME).read_text().replace('element="Al"', 'element="Cu"')
    (tmp_path / "Cu.UPF").write_text(text)
    path, _, _ = build(tmp_path)
    assert run_cli(path, out, "--pseudo", f"Al={tmp_path / 'Cu.UPF'}") == 1
    assert "pseudopotential for Cu, given for Al" in capsys.readouterr().err
    assert not out.exists()


def test_unknown_activation_names_the_fix(tmp_path, capsys):
    params = params_dict(activations="Swishy", twojmax=TWOJMAX)
    path, _, _ = build(tmp_path, params, state_dict=mala_state_dict(params_dict(activations=None)))
    out = tmp_path / "m.safetensors"
    assert run_cli(path, out, "--pseudo-dir", PSEUDO_DIR) == 1
    err = capsys.readouterr().err
    assert "unknown activation 'Swishy'" in err and "fix: use one of" in err and "LeakyReLU" in err
    assert not out.exists()

    with pytest.raises(InputError, match="'PReLU' has no nearsight counterpart") as exc:
        nearsight_activation("PReLU")
    assert "leakyrelu" not in exc.value.fix and "LeakyReLU" in exc.value.fix
    assert nearsight_activation(None) == nearsight_activation("Identity") == "none"


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("descriptors", "descriptor_type", "AtomicDensity", "descriptor type 'AtomicDensity'"),
        ("targets", "target_type", "DOS", "target type 'DOS'"),
        ("descriptors", "custom_lammps_compute_file", "in.mine", "custom LAMMPS compute file"),
        ("descriptors", "bispectrum_switchflag", 2, "switchflag must be 0 or 1"),
    ],
)
def test_models_nearsight_cannot_run_are_refused(tmp_path, capsys, section, key, value, message):
    params = params_dict(twojmax=TWOJMAX)
    params[section][key] = value
    path, _, _ = build(tmp_path, params)
    out = tmp_path / "m.safetensors"
    assert run_cli(path, out, "--pseudo-dir", PSEUDO_DIR) == 1
    err = capsys.readouterr().err
    assert message in err and "fix:" in err and f"[{section}.{key}]" in err
    assert not out.exists()


def test_switchflag_and_weights_follow_params(tmp_path):
    params = params_dict(twojmax=TWOJMAX)
    params["descriptors"]["bispectrum_switchflag"] = 0
    params["descriptors"]["bispectrum_element_weights"] = [0.5, 2.0]
    path, _, _ = build(tmp_path, params)
    result = import_mala(path, pseudo_dir=PSEUDO_DIR)
    assert result.bundle.descriptors.switchflag is False
    # one element: MALA's script fixes wj = 1 whatever the list says
    assert result.bundle.descriptors.weights == (1.0,)
    assert result.sources["temperature"].endswith("al_model.info.json")

    # several elements: LAMMPS types (and weights) in alphabetical order, as ASE numbers them
    archive = read_mala_archive(path)
    config = descriptors_from_mala(archive, ["O", "Ba"])
    assert (config.elements, config.weights, config.radii) == (("Ba", "O"), (0.5, 2.0), (0.5, 0.5))
    with pytest.raises(InputError, match="one number for each of the elements Ba, O, Sr") as err:
        descriptors_from_mala(archive, ["O", "Ba", "Sr"])
    assert err.value.field == "descriptors.bispectrum_element_weights"


# --------------------------------------------------------------------------------------
# 4. A failed conversion writes nothing
# --------------------------------------------------------------------------------------


def test_failed_conversion_leaves_no_output(tmp_path, capsys):
    path, _, _ = build(tmp_path, info=mala_info(temperature=None))
    out = tmp_path / "out" / "model.safetensors"
    assert run_cli(path, out, "--pseudo-dir", PSEUDO_DIR) == 1
    assert not out.exists()

    # an existing model is left as it was
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(b"previous model")
    assert run_cli(path, out, "--pseudo-dir", PSEUDO_DIR) == 1
    assert out.read_bytes() == b"previous model"
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.safetensors"]


def test_crash_while_writing_leaves_no_partial_file(tmp_path, monkeypatch):
    import safetensors.numpy

    path, _, _ = build(tmp_path)
    out = tmp_path / "model.safetensors"

    def crash(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.numpy, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        run_cli(path, out, "--pseudo-dir", PSEUDO_DIR)
    assert list(tmp_path.glob("*.safetensors*")) == []
    assert list(tmp_path.glob(".model.safetensors.*")) == []
