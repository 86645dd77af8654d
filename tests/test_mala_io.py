"""MALA snapshots and model archives: read back what MALA 1.4.0 writes, never run a pickle.

The fixtures copy MALA 1.4.0's formats by hand (MALA is not installed here): the
``Target.write_additional_calculation_data`` keys of ``*.info.json``, the ``Runner.save_run``
zip members, ``Parameters.save`` sections, ``FeedForwardNet``'s ModuleList state dict saved
with ``torch.save(..., _use_new_zipfile_serialization=False)``, and ``DataScaler.save`` in
its JSON form and (before 1.4.0) as ``pickle.dump(scaler, protocol=4)``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import pickle
import subprocess
import sys
import types
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from nearsight.errors import InputError
from nearsight.grid import EnergyGrid
from nearsight.io.mala import (
    MalaSnapshotFiles,
    read_mala_archive,
    read_mala_info,
    read_mala_snapshot,
)
from nearsight.units import RYDBERG_EV

GRID = (3, 4, 2)
N_FEATURES = 5
N_ENERGIES = 4
CELL = np.diag([4.05, 4.2, 3.9])
RNG = np.random.default_rng(3)


# --------------------------------------------------------------------------------------
# Snapshot fixtures
# --------------------------------------------------------------------------------------


def info_dict(grid=GRID) -> dict:
    """An info.json as MALA's Target.write_additional_calculation_data writes it."""
    positions = [[0.1, 0.2, 0.3], [2.0, 2.1, 1.9]]
    voxel = (CELL / np.asarray(grid)[:, None]).tolist()
    return {
        "fermi_energy_dft": 7.81,
        "temperature": 298.0,
        "number_of_electrons_exact": 6.0,
        "band_energy_dft_calculation": 12.5,
        "total_energy_dft_calculation": -1043.25,
        "grid_dimensions": list(grid),
        "electrons_per_atom": 3.0,
        "number_of_electrons_from_eigenvals": 5.9999,
        "ibrav": 0,
        "ecutwfc": 40.0,
        "ecutrho": 160.0,
        "degauss": 0.0018,
        "pseudopotentials": {"Al": "Al.pbe-n-rrkjus_psl.1.0.0.UPF"},
        "entropy_contribution_dft_calculation": -0.002,
        "one_electron_contribution": 10.0,
        "hartree_contribution": 1.0,
        "xc_contribution": -20.0,
        "ewald_contribution": -1034.25,
        "voxel": {"array": voxel},
        "atoms": {
            "numbers": [13, 13],
            "positions": positions,
            "cell": CELL.tolist(),
            "pbc": [True, True, True],
        },
        "atomic_forces_dft": [[0.01, 0.0, -0.02], [-0.01, 0.0, 0.02]],
    }


def descriptor_array(grid=GRID, n_features=N_FEATURES) -> np.ndarray:
    """[nx, ny, nz, 3 + F] float32: Cartesian grid coordinates (Å), then descriptors."""
    nx, ny, nz = grid
    i, j, k = np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij")
    voxel = CELL / np.asarray(grid)[:, None]
    xyz = np.stack([i, j, k], axis=-1) @ voxel
    features = RNG.normal(size=(*grid, n_features))
    return np.concatenate([xyz, features], axis=-1).astype(np.float32)


def ldos_array(grid=GRID, n_energies=N_ENERGIES) -> np.ndarray:
    """[nx, ny, nz, E] float32 in 1/(eV·Å³)."""
    return RNG.uniform(0, 0.05, size=(*grid, n_energies)).astype(np.float32)


@pytest.fixture
def snapshot(tmp_path):
    """MALA's DataConverter naming: X.in.npy, X.out.npy, X.info.json side by side."""
    inputs, outputs = descriptor_array(), ldos_array()
    np.save(tmp_path / "Al_snapshot0.in.npy", inputs)
    np.save(tmp_path / "Al_snapshot0.out.npy", outputs)
    (tmp_path / "Al_snapshot0.info.json").write_text(json.dumps(info_dict(), indent=4))
    return tmp_path / "Al_snapshot0.in.npy", inputs, outputs


def test_snapshot_files_find_siblings_and_read_flat_rows(snapshot):
    in_path, inputs, outputs = snapshot
    with MalaSnapshotFiles(in_path) as files:
        assert files.out_path == in_path.with_name("Al_snapshot0.out.npy")
        assert files.info_path == in_path.with_name("Al_snapshot0.info.json")
        assert files.grid_shape == GRID
        assert files.n_points == 24
        assert files.n_features == N_FEATURES
        assert files.n_energies == N_ENERGIES
        flat_in = inputs.reshape(-1, 3 + N_FEATURES)
        flat_out = outputs.reshape(-1, N_ENERGIES)
        features = files.features(5, 17)
        assert features.dtype == np.float32 and features.shape == (12, N_FEATURES)
        np.testing.assert_array_equal(features, flat_in[5:17, 3:])
        np.testing.assert_array_equal(files.targets(5, 17), flat_out[5:17])
        np.testing.assert_array_equal(files.features(), flat_in[:, 3:])
        # x slowest: point 1 is (0, 0, 1)
        np.testing.assert_allclose(files.coordinates(1, 2)[0], [0, 0, CELL[2, 2] / 2], rtol=1e-6)
        np.testing.assert_allclose(files.coordinates()[-1], [8.1 / 3, 3 * 4.2 / 4, 3.9 / 2])
        assert files.temperature == 298.0
        assert files.atoms is not None and len(files.atoms) == 2
        with pytest.raises(IndexError):
            files.features(0, 25)


def test_info_json_keys_and_units(snapshot):
    in_path = snapshot[0]
    info = read_mala_info(in_path.with_name("Al_snapshot0.info.json"))
    assert info.fermi_energy == 7.81 and info.temperature == 298.0
    assert info.total_energy == -1043.25 and info.band_energy == 12.5
    assert info.grid_dimensions == GRID
    assert info.energy_contributions["ewald_contribution"] == -1034.25
    assert info.ecutwfc == pytest.approx(40.0 * RYDBERG_EV)
    assert info.degauss == pytest.approx(0.0018 * RYDBERG_EV)
    assert info.pseudopotentials == {"Al": "Al.pbe-n-rrkjus_psl.1.0.0.UPF"}
    np.testing.assert_allclose(info.atoms.positions, [[0.1, 0.2, 0.3], [2.0, 2.1, 1.9]])
    np.testing.assert_allclose(info.cell, CELL)
    np.testing.assert_allclose(info.voxel * np.asarray(GRID)[:, None], CELL)
    assert info.forces.shape == (2, 3)


def test_read_snapshot_in_memory(snapshot):
    in_path, inputs, outputs = snapshot
    grid = EnergyGrid(-5.0, 0.1, N_ENERGIES)
    snap = read_mala_snapshot(in_path, energy_grid=grid)
    assert snap.grid_shape == GRID and snap.energy_grid == grid
    np.testing.assert_array_equal(snap.features, inputs[..., 3:])
    np.testing.assert_array_equal(snap.coordinates, inputs[..., :3])
    np.testing.assert_array_equal(snap.ldos, outputs)
    assert snap.atoms.get_chemical_symbols() == ["Al", "Al"]


def test_inference_snapshot_without_ldos(tmp_path):
    np.save(tmp_path / "x.in.npy", descriptor_array())
    files = MalaSnapshotFiles(tmp_path / "x.in.npy")
    assert not files.has_targets and files.n_energies is None and files.info is None
    with pytest.raises(InputError, match="no LDOS"):
        files.targets(0, 1)
    assert read_mala_snapshot(tmp_path / "x.in.npy").ldos is None


def test_fortran_ordered_and_xyz_free_files(tmp_path):
    inputs = descriptor_array()[..., 3:]
    outputs = ldos_array()
    np.save(tmp_path / "f.in.npy", np.asfortranarray(inputs))
    np.save(tmp_path / "f.out.npy", np.asfortranarray(outputs))
    files = MalaSnapshotFiles(tmp_path / "f.in.npy", contains_xyz=False)
    np.testing.assert_array_equal(files.features(3, 11), inputs.reshape(-1, N_FEATURES)[3:11])
    np.testing.assert_array_equal(files.targets(3, 11), outputs.reshape(-1, N_ENERGIES)[3:11])
    with pytest.raises(InputError, match="no coordinate"):
        files.coordinates()


def test_missing_files(tmp_path, snapshot):
    with pytest.raises(InputError, match="not found") as err:
        MalaSnapshotFiles(tmp_path / "nothing.in.npy")
    assert err.value.path.endswith("nothing.in.npy")
    with pytest.raises(InputError, match="not found") as err:
        MalaSnapshotFiles(snapshot[0], out_path=tmp_path / "missing.out.npy")
    assert err.value.path.endswith("missing.out.npy")


def test_mismatched_grids_are_refused(tmp_path):
    np.save(tmp_path / "m.in.npy", descriptor_array())
    np.save(tmp_path / "m.out.npy", ldos_array(grid=(3, 4, 3)))
    with pytest.raises(InputError, match="differs from the descriptor grid") as err:
        MalaSnapshotFiles(tmp_path / "m.in.npy")
    assert err.value.path.endswith("m.out.npy")

    np.save(tmp_path / "m.out.npy", ldos_array())
    (tmp_path / "m.info.json").write_text(json.dumps(info_dict(grid=(6, 6, 6))))
    with pytest.raises(InputError) as err:
        MalaSnapshotFiles(tmp_path / "m.in.npy")
    assert err.value.field == "grid_dimensions"

    (tmp_path / "m.info.json").unlink()
    with pytest.raises(InputError, match="energies"):
        MalaSnapshotFiles(tmp_path / "m.in.npy", energy_grid=EnergyGrid(0.0, 0.1, 7))


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((24, 8), np.float32), "4-D"),
        (np.zeros((3, 4, 2, 3), np.float32), "at least 4"),
        (np.zeros((3, 4, 2, 8), np.int64), "not floating point"),
    ],
)
def test_bad_descriptor_arrays(tmp_path, array, message):
    np.save(tmp_path / "b.in.npy", array)
    with pytest.raises(InputError, match=message):
        MalaSnapshotFiles(tmp_path / "b.in.npy")


def test_object_arrays_are_never_unpickled(tmp_path):
    marker = tmp_path / "marker"
    array = np.empty((1, 1, 1, 4), dtype=object)
    array[0, 0, 0, 0] = _Evil(marker)
    np.save(tmp_path / "o.in.npy", array, allow_pickle=True)
    with pytest.raises(InputError, match="Python objects") as err:
        MalaSnapshotFiles(tmp_path / "o.in.npy")
    assert err.value.path.endswith("o.in.npy")
    assert not marker.exists()


# --------------------------------------------------------------------------------------
# Pickles that must never run
# --------------------------------------------------------------------------------------


def _make_marker(path: str) -> None:
    """What a hostile pickle would run: proof of execution if the file appears."""
    Path(path).write_text("executed")


class _Evil:
    """Pickles as a call of ``_make_marker`` (a global outside any allow-list)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (_make_marker, (self.marker,))


class _Call:
    """Pickles as ``func(*args)`` for any importable ``func``; building it runs nothing."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


# --------------------------------------------------------------------------------------
# Archive fixtures
# --------------------------------------------------------------------------------------


def params_dict(
    layer_sizes=(N_FEATURES, 8, N_ENERGIES),
    activations="ReLU",
    include_output=True,
    twojmax=2,
) -> dict:
    """params.json as MALA's Parameters.save writes it (sections end in _parameters_type)."""
    return {
        "comment": "",
        "manual_seed": None,
        "openpmd_configuration": {},
        "openpmd_granularity": 1,
        "use_atomic_density_formula": False,
        "use_ddp": False,
        "use_gpu": False,
        "use_lammps": True,
        "use_mpi": False,
        "verbosity": 1,
        "data": {
            "data_splitting_type": "by_snapshot",
            "input_rescaling_type": "feature-wise-standard",
            "output_rescaling_type": "minmax",
            "snapshot_directories_list": [],
            "use_lazy_loading": False,
            "_parameters_type": "ParametersData",
        },
        "descriptors": {
            "atomic_density_cutoff": 4.2,
            "bispectrum_cutoff": 4.2,
            "bispectrum_element_weights": None,
            "bispectrum_switchflag": 1,
            "bispectrum_twojmax": twojmax,
            "custom_lammps_compute_file": "",
            "descriptor_type": "Bispectrum",
            "descriptors_contain_xyz": True,
            "use_y_splitting": 0,
            "use_z_splitting": True,
            "_parameters_type": "ParametersDescriptors",
        },
        "network": {
            "bidirection": False,
            "dropout": 0.1,
            "layer_activations": activations,
            "layer_activations_include_output_layer": include_output,
            "layer_sizes": list(layer_sizes),
            "loss_function_type": "mse",
            "nn_type": "feed-forward",
            "no_hidden_state": False,
            "num_heads": 10,
            "num_hidden_layers": 1,
            "_parameters_type": "ParametersNetwork",
        },
        "running": {"max_number_epochs": 100, "_parameters_type": "ParametersRunning"},
        "targets": {
            "assume_two_dimensional": False,
            "ldos_gridoffset_ev": -5,
            "ldos_gridsize": layer_sizes[-1],
            "ldos_gridspacing_ev": 0.1,
            "pseudopotential_path": None,
            "restrict_targets": "zero_out_negative",
            "target_type": "LDOS",
            "_parameters_type": "ParametersTargets",
        },
    }


def mala_state_dict(params: dict) -> dict:
    """The state dict of MALA's FeedForwardNet for ``params`` (its layer-building loop)."""
    torch = pytest.importorskip("torch")
    net = params["network"]
    sizes, acts = net["layer_sizes"], net["layer_activations"]
    layers = torch.nn.ModuleList()
    n = len(sizes) - 1
    for i in range(n):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < n - 1 or net["layer_activations_include_output_layer"]:
            name = acts
            if isinstance(acts, list):
                name = acts[i] if i < len(acts) else None
            if name is not None:
                layers.append(getattr(torch.nn, name)())
    holder = torch.nn.Module()
    holder.layers = layers
    return holder.state_dict()


def scaler_json(typestring: str, **values) -> dict:
    """DataScaler.save(..., "json"): every attribute, tensors as (nested) lists."""
    record = {
        "typestring": typestring,
        "use_ddp": False,
        "scale_standard": "standard" in typestring,
        "scale_minmax": "minmax" in typestring or "normal" in typestring,
        "feature_wise": "feature-wise" in typestring,
        "cantransform": True,
        "means": [],
        "stds": [],
        "maxs": [],
        "mins": [],
        "total_mean": 0.0,
        "total_std": 0.0,
        "total_max": float("-inf"),
        "total_min": float("inf"),
        "total_data_count": 0,
    }
    record.update(values)
    return record


INPUT_MEANS = RNG.normal(size=N_FEATURES)
INPUT_STDS = RNG.uniform(0.5, 2.0, size=N_FEATURES)


def write_archive(
    path: Path,
    params: dict | None = None,
    *,
    skip: tuple[str, ...] = (),
    extra: dict[str, bytes] | None = None,
    state_dict: dict | None = None,
    iscaler: dict | None = None,
) -> tuple[Path, dict]:
    """Runner.save_run's zip: {run}.network.pth, .iscaler.json, .oscaler.json, .params.json."""
    torch = pytest.importorskip("torch")
    params = params_dict() if params is None else params
    state = mala_state_dict(params) if state_dict is None else state_dict
    buffer = io.BytesIO()
    torch.save(state, buffer, _use_new_zipfile_serialization=False)  # as save_network
    run = path.name[: -len(".zip")]
    iscaler = iscaler or scaler_json(
        "feature-wise-standard", means=[INPUT_MEANS.tolist()], stds=[INPUT_STDS.tolist()]
    )
    members = {
        f"{run}.network.pth": buffer.getvalue(),
        f"{run}.iscaler.json": json.dumps(iscaler, indent=4).encode(),
        f"{run}.oscaler.json": json.dumps(
            scaler_json("minmax", total_min=0.0, total_max=0.0625), indent=4
        ).encode(),
        f"{run}.params.json": json.dumps(params, indent=4).encode(),
        f"{run}.info.json": json.dumps(info_dict(), indent=4).encode(),
    }
    members.update(extra or {})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            if not any(name.endswith(s) for s in skip):
                archive.writestr(name, data)
    return path, state


def test_archive_round_trip(tmp_path):
    torch = pytest.importorskip("torch")
    path, state = write_archive(tmp_path / "al_model.zip")
    model = read_mala_archive(path)
    assert model.run_name == "al_model"
    assert model.layer_sizes == (N_FEATURES, 8, N_ENERGIES)
    assert model.activations == ("ReLU", "ReLU")
    assert [(layer.index, layer.kind, layer.name) for layer in model.layers] == [
        (0, "linear", "Linear"),
        (1, "activation", "ReLU"),
        (2, "linear", "Linear"),
        (3, "activation", "ReLU"),
    ]
    assert set(model.state_dict) == {
        "layers.0.weight",
        "layers.0.bias",
        "layers.2.weight",
        "layers.2.bias",
    }
    for key, value in state.items():
        assert torch.equal(model.state_dict[key], value)
    assert model.energy_grid == EnergyGrid(-5.0, 0.1, N_ENERGIES)
    assert (model.twojmax, model.cutoff, model.descriptor_type) == (2, 4.2, "Bispectrum")
    assert model.descriptors_contain_xyz and model.restrict_targets == "zero_out_negative"
    scaler = model.input_scaler
    assert (scaler.kind, scaler.feature_wise, scaler.n_features) == ("standard", True, 5)
    np.testing.assert_allclose(scaler.mean, INPUT_MEANS)
    np.testing.assert_allclose(scaler.std, INPUT_STDS)
    assert scaler.min is None and scaler.max is None
    out = model.output_scaler
    assert (out.kind, out.feature_wise) == ("minmax", False)
    np.testing.assert_array_equal(out.min, [0.0])
    np.testing.assert_array_equal(out.max, [0.0625])
    assert model.info.temperature == 298.0 and model.info.grid_dimensions == GRID


@pytest.mark.parametrize(
    ("sizes", "activations", "include_output", "legacy", "linear_at", "after"),
    [
        # MALA default: the activation after every layer, output included
        ((5, 8, 7, 4), "LeakyReLU", True, False, [0, 2, 4], ("LeakyReLU",) * 3),
        ((5, 8, 7, 4), "Sigmoid", False, False, [0, 2, 4], ("Sigmoid", "Sigmoid", None)),
        # a list: one per layer, None skips, a short list leaves the rest bare
        ((5, 8, 7, 4), ["Sigmoid", None, "LeakyReLU"], False, False, [0, 2, 3], ("Sigmoid",)),
        ((5, 8, 7, 4), ["Tanh"], True, False, [0, 2, 3], ("Tanh", None, None)),
        # MALA < 1.3.1: a one-element list meant every layer
        ((5, 8, 7, 4), ["Tanh"], True, True, [0, 2, 4], ("Tanh",) * 3),
        ((5, 4), None, True, False, [0], (None,)),
    ],
)
def test_layer_sequence_matches_mala(
    tmp_path, sizes, activations, include_output, legacy, linear_at, after
):
    params = params_dict(sizes, activations, include_output)
    # the state dict is always the one MALA would build for the model it saved
    saved = params_dict(sizes, activations[0] if legacy else activations, include_output)
    path, _ = write_archive(tmp_path / "m.zip", params, state_dict=mala_state_dict(saved))
    model = read_mala_archive(path, legacy_activation_list=legacy)
    assert [layer.index for layer in model.layers if layer.kind == "linear"] == linear_at
    assert model.activations == after + (None,) * (len(sizes) - 1 - len(after))


def test_legacy_list_without_flag_names_the_fix(tmp_path):
    saved = params_dict((5, 8, 7, 4), "Tanh")
    params = params_dict((5, 8, 7, 4), ["Tanh"])
    path, _ = write_archive(tmp_path / "m.zip", params, state_dict=mala_state_dict(saved))
    with pytest.raises(InputError, match="legacy_activation_list=True") as err:
        read_mala_archive(path)
    assert err.value.path.endswith("m.network.pth")


@pytest.mark.parametrize(
    ("skip", "field"),
    [
        ((".params.json",), "params.json"),
        ((".network.pth",), "network.pth"),
        ((".iscaler.json",), "iscaler.pkl"),
    ],
)
def test_missing_members(tmp_path, skip, field):
    path, _ = write_archive(tmp_path / "m.zip", skip=skip)
    with pytest.raises(InputError, match="no ") as err:
        read_mala_archive(path)
    assert err.value.field == field and err.value.path.endswith("m.zip") and err.value.fix


def test_pickled_params_are_not_read(tmp_path):
    path, _ = write_archive(
        tmp_path / "m.zip", skip=(".params.json",), extra={"m.params.pkl": b"\x80\x04."}
    )
    with pytest.raises(InputError, match="pickled parameters") as err:
        read_mala_archive(path)
    assert "save_run" in err.value.fix


def test_not_a_zip(tmp_path):
    (tmp_path / "m.zip").write_bytes(b"not a zip at all")
    with pytest.raises(InputError, match="not a zip") as err:
        read_mala_archive(tmp_path / "m.zip")
    assert err.value.path.endswith("m.zip")
    with pytest.raises(InputError, match="not found"):
        read_mala_archive(tmp_path / "absent.zip")


def test_unknown_activation_and_scaler_type(tmp_path):
    params = params_dict(activations="Swishy")
    path, _ = write_archive(
        tmp_path / "a.zip", params, state_dict=mala_state_dict(params_dict(activations=None))
    )
    with pytest.raises(InputError, match="unknown activation 'Swishy'") as err:
        read_mala_archive(path)
    assert err.value.field == "network.layer_activations"
    assert err.value.path.endswith("a.params.json")

    path, _ = write_archive(tmp_path / "s.zip", iscaler=scaler_json("robust"))
    with pytest.raises(InputError, match="unknown scaler type 'robust'") as err:
        read_mala_archive(path)
    assert err.value.field == "typestring" and err.value.path.endswith("s.iscaler.json")


def test_inconsistent_model_is_refused(tmp_path):
    params = params_dict()
    params["targets"]["ldos_gridsize"] = 11
    path, _ = write_archive(tmp_path / "e.zip", params)
    with pytest.raises(InputError, match="energy grid has 11") as err:
        read_mala_archive(path)
    assert err.value.field == "targets.ldos_gridsize"

    params = params_dict(twojmax=3)
    path, _ = write_archive(tmp_path / "t.zip", params)
    with pytest.raises(InputError, match="twojmax=3 gives 8"):
        read_mala_archive(path)

    params = params_dict()
    params["network"]["nn_type"] = "transformer"
    path, _ = write_archive(tmp_path / "n.zip", params)
    with pytest.raises(InputError, match="not supported") as err:
        read_mala_archive(path)
    assert err.value.field == "network.nn_type"

    path, _ = write_archive(
        tmp_path / "u.zip", iscaler=scaler_json("feature-wise-standard", cantransform=False)
    )
    with pytest.raises(InputError, match="never fitted"):
        read_mala_archive(path)


def test_malicious_network_weights_do_not_run(tmp_path):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "marker"
    buffer = io.BytesIO()
    torch.save({"layers.0.weight": _Evil(marker)}, buffer, _use_new_zipfile_serialization=False)
    path, _ = write_archive(tmp_path / "w.zip", extra={"w.network.pth": buffer.getvalue()})
    with pytest.raises(InputError, match="cannot read the network weights") as err:
        read_mala_archive(path)
    assert err.value.path.endswith("w.network.pth")
    assert not marker.exists()


# --------------------------------------------------------------------------------------
# Legacy pickled DataScaler (MALA < 1.4.0)
# --------------------------------------------------------------------------------------

SCALER_MODULE = "mala.datahandling.data_scaler"


@contextlib.contextmanager
def fake_mala_data_scaler() -> Iterator[type]:
    """``mala.datahandling.data_scaler.DataScaler`` in sys.modules, removed on exit."""
    names = ("mala", "mala.datahandling", SCALER_MODULE)
    saved = {name: sys.modules.get(name) for name in names}
    module = types.ModuleType(SCALER_MODULE)

    class DataScaler:
        """The attributes MALA 1.4.0's DataScaler.__init__ sets, tensors and all."""

        def __init__(self, typestring: str) -> None:
            import torch

            self.use_ddp = False
            self.typestring = typestring
            self.scale_standard = "standard" in typestring
            self.scale_minmax = "minmax" in typestring or "normal" in typestring
            self.feature_wise = "feature-wise" in typestring
            self.cantransform = False
            self.means = torch.empty(0)
            self.stds = torch.empty(0)
            self.maxs = torch.empty(0)
            self.mins = torch.empty(0)
            self.total_mean = torch.tensor(0)
            self.total_std = torch.tensor(0)
            self.total_max = torch.tensor(float("-inf"))
            self.total_min = torch.tensor(float("inf"))
            self.total_data_count = 0

    DataScaler.__module__ = SCALER_MODULE
    DataScaler.__qualname__ = "DataScaler"
    module.DataScaler = DataScaler
    parent, package = types.ModuleType("mala"), types.ModuleType("mala.datahandling")
    parent.datahandling, package.data_scaler = package, module
    sys.modules.update({"mala": parent, "mala.datahandling": package, SCALER_MODULE: module})
    try:
        yield DataScaler
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


def pickled_scalers() -> tuple[bytes, bytes, dict]:
    """DataScaler.save(..., "pickle"): ``pickle.dump(scaler, protocol=4)`` of fitted scalers."""
    torch = pytest.importorskip("torch")
    data = torch.from_numpy(RNG.normal(size=(50, N_FEATURES)).astype(np.float32))
    with fake_mala_data_scaler() as data_scaler:
        inputs = data_scaler("feature-wise-standard")
        inputs.means = torch.mean(data, 0, keepdim=True)  # [1, F], as DataScaler.fit
        inputs.stds = torch.std(data, 0, keepdim=True)
        inputs.cantransform = True
        outputs = data_scaler("feature-wise-minmax")
        big = torch.rand(3, N_ENERGIES, dtype=torch.float64)
        outputs.mins = big[1]  # a view: storage offset N_ENERGIES into a shared storage
        outputs.maxs = big.t()[:, 2] + 1  # contiguous copy
        outputs.cantransform = True
        blobs = pickle.dumps(inputs, protocol=4), pickle.dumps(outputs, protocol=4)
    assert SCALER_MODULE not in sys.modules
    expected = {
        "means": inputs.means.numpy().ravel(),
        "stds": inputs.stds.numpy().ravel(),
        "mins": big[1].numpy(),
        "maxs": big[2].numpy() + 1,
    }
    return blobs[0], blobs[1], expected


def test_legacy_pickled_scalers_read_without_mala(tmp_path):
    iblob, oblob, expected = pickled_scalers()
    if importlib.util.find_spec("mala") is None:
        with pytest.raises(ModuleNotFoundError):  # the real class is not importable here
            pickle.loads(iblob)
    path, _ = write_archive(
        tmp_path / "old.zip",
        skip=(".iscaler.json", ".oscaler.json"),
        extra={"old.iscaler.pkl": iblob, "old.oscaler.pkl": oblob},
    )
    model = read_mala_archive(path)
    scaler = model.input_scaler
    assert scaler.source.endswith("old.iscaler.pkl")
    assert (scaler.kind, scaler.feature_wise, scaler.typestring) == (
        "standard",
        True,
        "feature-wise-standard",
    )
    np.testing.assert_array_equal(scaler.mean, expected["means"])
    np.testing.assert_array_equal(scaler.std, expected["stds"])
    out = model.output_scaler
    assert (out.kind, out.feature_wise) == ("minmax", True)
    assert out.min.dtype == np.float64
    np.testing.assert_array_equal(out.min, expected["mins"])
    np.testing.assert_array_equal(out.max, expected["maxs"])


def _archive_with_iscaler_pickle(tmp_path: Path, blob: bytes) -> Path:
    path, _ = write_archive(
        tmp_path / "bad.zip", skip=(".iscaler.json",), extra={"bad.iscaler.pkl": blob}
    )
    return path


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "subprocess.Popen", "local"])
def test_hostile_scaler_pickles_are_refused(tmp_path, kind):
    marker = tmp_path / "marker"
    payload = {
        "os.system": _Call(os.system, f"touch {marker}"),
        "builtins.eval": _Call(eval, f"open({str(marker)!r}, 'w')"),
        "subprocess.Popen": _Call(subprocess.Popen, ["touch", str(marker)]),
        "local": _Evil(marker),
    }[kind]
    blob = pickle.dumps(payload, protocol=4)
    path = _archive_with_iscaler_pickle(tmp_path, blob)
    with pytest.raises(InputError, match="not allowed") as err:
        read_mala_archive(path)
    refused = {
        "os.system": f"{os.system.__module__}.system",  # posix.system on Linux
        "builtins.eval": "builtins.eval",
        "subprocess.Popen": "subprocess.Popen",
        "local": f"{__name__}._make_marker",
    }[kind]
    assert err.value.field == refused
    assert err.value.path.endswith("bad.iscaler.pkl")
    assert not marker.exists()


def test_hostile_global_inside_a_scaler_is_refused(tmp_path):
    """A forbidden call hidden in a DataScaler attribute is refused, not run."""
    marker = tmp_path / "marker"
    with fake_mala_data_scaler() as data_scaler:
        scaler = data_scaler("standard")
        scaler.total_mean = _Evil(marker)
        blob = pickle.dumps(scaler, protocol=4)
    with pytest.raises(InputError, match="_make_marker"):
        read_mala_archive(_archive_with_iscaler_pickle(tmp_path, blob))
    assert not marker.exists()


def test_hostile_global_inside_tensor_bytes_is_refused(tmp_path):
    """``torch.storage._load_from_bytes`` is ours: its payload is unpickled restrictedly too."""
    torch = pytest.importorskip("torch")
    marker = tmp_path / "marker"
    inner = b"".join(
        pickle.dumps(part, protocol=2)
        for part in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}, _Evil(marker))
    )
    with fake_mala_data_scaler() as data_scaler:
        scaler = data_scaler("standard")
        scaler.total_mean = _Call(torch.storage._load_from_bytes, inner)
        blob = pickle.dumps(scaler, protocol=4)
    with pytest.raises(InputError, match="_make_marker") as err:
        read_mala_archive(_archive_with_iscaler_pickle(tmp_path, blob))
    assert err.value.path.endswith("bad.iscaler.pkl")
    assert not marker.exists()


def test_other_class_in_scaler_pickle_is_refused(tmp_path):
    with fake_mala_data_scaler():
        blob = pickle.dumps({"typestring": "standard"}, protocol=4)  # a dict, no DataScaler
    with pytest.raises(InputError, match="not a MALA DataScaler"):
        read_mala_archive(_archive_with_iscaler_pickle(tmp_path, blob))


# --------------------------------------------------------------------------------------
# MALA snapshots as training and test data
# --------------------------------------------------------------------------------------


def test_mala_snapshot_as_a_point_source(snapshot):
    """A MALA snapshot feeds the loader and the metrics (band terms only: no pseudos)."""
    from nearsight.analysis.metrics import evaluate
    from nearsight.config import DescriptorsConfig
    from nearsight.data.scaling import Scaler
    from nearsight.data.sources import open_source
    from nearsight.grid import EnergyGrid
    from nearsight.model.network import FeedForward

    path, inputs, outputs = snapshot
    grid = EnergyGrid(-2.0, 2.0, N_ENERGIES)
    with pytest.raises(InputError, match="energy grid"):
        open_source(path, DescriptorsConfig())
    with open_source(path, DescriptorsConfig(), energy_grid=grid) as src:
        np.testing.assert_array_equal(src.features(0, 5), inputs.reshape(-1, 8)[:5, 3:])
        np.testing.assert_array_equal(src.targets(3, 7), outputs.reshape(-1, N_ENERGIES)[3:7])
        snap = src.snapshot()
        assert snap.number_of_electrons == 6.0 and len(snap.atoms) == 2
        net = FeedForward([N_FEATURES, 3, N_ENERGIES], "tanh", seed=0)
        for p in net.parameters():  # a flat LDOS of 0.05/(eV·Å³): 20 electrons in the window
            p.data.zero_()
        net.layers[-1].bias.data[:] = 0.05
        scaler = Scaler("none").partial_fit(np.zeros((1, 1)))
        [result] = evaluate(net, scaler, scaler, [src])
    assert set(result.errors) == {"band_energy_mev_per_atom_vs_ldos", "fermi_energy_mev_vs_ldos"}


def test_mala_snapshot_without_info_is_refused(snapshot):
    from nearsight.data.sources import MalaSource
    from nearsight.grid import EnergyGrid

    path = snapshot[0]
    path.with_name("Al_snapshot0.info.json").unlink()
    with pytest.raises(InputError, match="info.json"):
        MalaSource(path, EnergyGrid(-2.0, 2.0, N_ENERGIES))
