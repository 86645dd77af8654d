"""The HDF5 snapshot format: round trip, lazy slabs, and refusal of bad data or files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from ase.build import bulk

from nearsight.errors import InputError
from nearsight.grid import EnergyGrid
from nearsight.io.dataset import (
    PseudoRecord,
    QEReference,
    Snapshot,
    open_snapshot,
    read_snapshot,
    write_snapshot,
)


def make_snapshot(shape=(6, 5, 4), ne=7, seed=0) -> Snapshot:
    rng = np.random.default_rng(seed)
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    qe = QEReference(
        version="6.7MaX",
        energies={"total": -297.7, "hartree": 0.47, "smearing": -0.016},
        fermi_energy=7.53,
        number_of_electrons=12.0,
        fft_grid=shape,
        ecutwfc_ry=20.0,
        ecutrho_ry=80.0,
        degauss_ev=0.0257,
        xc_functional="PBE",
        kpoints=rng.normal(size=(3, 3)),
        k_weights=np.array([0.5, 0.75, 0.75]),
        eigenvalues=rng.normal(size=(3, 10)),
        forces=rng.normal(size=(4, 3)),
        stress=None,
    )
    return Snapshot(
        atoms=atoms,
        grid_shape=shape,
        temperature_k=298.0,
        number_of_electrons=12.0,
        pseudopotentials={"Al": PseudoRecord("Al", "Al.UPF", "ab" * 32, '<UPF version="2.0.1">')},
        ldos=rng.random((*shape, ne)).astype(np.float32),
        energy_grid=EnergyGrid(-4.5, 0.1, ne),
        ldos_broadening_ev=0.2,
        ldos_kernel="fermi-dirac",
        density=rng.random(shape),
        qe=qe,
        provenance={"pw_seconds": 1.5, "qe_version": "6.7MaX"},
    )


def test_round_trip(tmp_path: Path) -> None:
    snap = make_snapshot()
    path = write_snapshot(tmp_path / "s.h5", snap)
    back = read_snapshot(path)
    np.testing.assert_array_equal(back.ldos, snap.ldos)
    np.testing.assert_array_equal(back.density, snap.density)
    np.testing.assert_array_equal(back.atoms.positions, snap.atoms.positions)
    np.testing.assert_array_equal(back.atoms.cell[:], snap.atoms.cell[:])
    assert back.atoms.get_chemical_symbols() == snap.atoms.get_chemical_symbols()
    assert back.energy_grid == snap.energy_grid
    assert back.ldos_broadening_ev == 0.2 and back.ldos_kernel == "fermi-dirac"
    assert back.grid_shape == (6, 5, 4)
    assert back.pseudopotentials == snap.pseudopotentials
    assert back.qe.energies == snap.qe.energies
    assert back.qe.fft_grid == (6, 5, 4)
    np.testing.assert_array_equal(back.qe.eigenvalues, snap.qe.eigenvalues)
    np.testing.assert_array_equal(back.qe.forces, snap.qe.forces)
    assert back.qe.stress is None
    assert back.provenance["pw_seconds"] == 1.5
    assert read_snapshot(path, ldos=False).ldos is None
    assert not list(tmp_path.glob("*.tmp"))


def test_slabs_read_without_the_whole_array(tmp_path: Path) -> None:
    snap = make_snapshot(shape=(8, 6, 5), ne=11)
    path = write_snapshot(tmp_path / "s.h5", snap)
    with open_snapshot(path) as f:
        np.testing.assert_array_equal(f.ldos_slab(2, 5), snap.ldos[2:5])
    with h5py.File(path) as h5:
        ds = h5["ldos"]
        assert ds.chunks[0] == 1, "chunks must be x-slabs so a slab reads alone"
        assert ds.compression == "gzip" and ds.shuffle


def test_summary(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path / "s.h5", make_snapshot())
    with open_snapshot(path) as f:
        s = f.summary()
    assert s["number_of_atoms"] == 4 and s["grid_shape"] == [6, 5, 4]
    assert s["energy_grid_ev"]["n"] == 7 and s["qe"]["energies_ev"]["total"] == -297.7
    assert s["pseudopotentials"]["Al"]["filename"] == "Al.UPF"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.ldos.__setitem__((0, 0, 0, 0), np.nan), "NaN"),
        (lambda s: s.density.__setitem__((1, 1, 1), np.inf), "NaN or inf"),
    ],
)
def test_non_finite_data_is_refused(tmp_path: Path, change, message: str) -> None:
    snap = make_snapshot()
    change(snap)
    with pytest.raises(InputError, match=message):
        write_snapshot(tmp_path / "s.h5", snap)
    assert not list(tmp_path.iterdir()), "nothing may be left behind"


def test_shape_mismatches_are_refused(tmp_path: Path) -> None:
    import dataclasses

    snap = make_snapshot()
    with pytest.raises(InputError, match="does not match grid"):
        write_snapshot(tmp_path / "a.h5", dataclasses.replace(snap, grid_shape=(6, 5, 5)))
    with pytest.raises(InputError, match="energy grid"):
        write_snapshot(
            tmp_path / "b.h5", dataclasses.replace(snap, energy_grid=EnergyGrid(-4.5, 0.1, 8))
        )
    assert not list(tmp_path.iterdir())


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch) -> None:
    path = write_snapshot(tmp_path / "s.h5", make_snapshot(seed=1))
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("nearsight.io.dataset._write_qe", boom)
    with pytest.raises(RuntimeError):
        write_snapshot(path, make_snapshot(seed=2))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.h5"]


def test_bad_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        read_snapshot(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    with pytest.raises(InputError, match="not a readable HDF5") as err:
        read_snapshot(junk)
    assert str(junk) in str(err.value)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as h5:
        h5["x"] = 1
    with pytest.raises(InputError, match="not a nearsight snapshot"):
        read_snapshot(other)
    future = write_snapshot(tmp_path / "future.h5", make_snapshot())
    with h5py.File(future, "a") as h5:
        h5.attrs["format_version"] = 99
    with pytest.raises(InputError, match="version 99"):
        read_snapshot(future)


def test_truncated_file_is_an_error(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path / "s.h5", make_snapshot(shape=(16, 16, 16), ne=20))
    data = path.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as err:
        read_snapshot(cut)
    assert str(cut) in str(err.value)
