"""Snapshot generation: reproducible, physically sized, and strict about bad structures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import write

from nearsight.config import SnapshotsConfig
from nearsight.dft.snapshots import debye_displacement_std, make_snapshots, perfect_crystal
from nearsight.errors import InputError


def test_debye_width_of_aluminium() -> None:
    # Al at room temperature: measured RMS displacement about 0.1 Å (B ≈ 0.8 Å²,
    # <u_x²> = B / 8π² = 0.010 Å²); the Debye model with Θ_D = 428 K gives 0.094 Å.
    assert debye_displacement_std("Al", 298.0, 428.0) == pytest.approx(0.0937, abs=5e-4)


def test_thermal_snapshots_are_reproducible_and_sized() -> None:
    cfg = SnapshotsConfig(source="thermal", supercell=(3, 3, 3), count=4, debye_temperature_k=428.0)
    a = make_snapshots(cfg, seed=5, base_dir=Path("."))
    b = make_snapshots(cfg, seed=5, base_dir=Path("."))
    c = make_snapshots(cfg, seed=6, base_dir=Path("."))
    assert len(a) == 4 and len(a[0]) == 108
    np.testing.assert_array_equal(a[3].positions, b[3].positions)
    assert not np.allclose(a[3].positions, c[3].positions)
    disp = np.concatenate([s.positions - perfect_crystal(cfg).positions for s in a])
    # 1296 samples: the standard deviation is within 5% of the model's with high probability.
    assert disp.std() == pytest.approx(debye_displacement_std("Al", 298.0, 428.0), rel=0.05)


def test_md_snapshots_are_reproducible_and_thermal() -> None:
    cfg = SnapshotsConfig(source="md", count=3, md_equilibration=50, md_interval=20)
    a = make_snapshots(cfg, seed=1, base_dir=Path("."))
    b = make_snapshots(cfg, seed=1, base_dir=Path("."))
    assert len(a) == 3 and all(len(s) == 4 for s in a)
    np.testing.assert_array_equal(a[2].positions, b[2].positions)
    assert not np.allclose(a[1].positions, a[2].positions), "frames must differ"
    np.testing.assert_allclose(a[0].cell[:], np.eye(3) * 4.05)
    frac = a[0].get_scaled_positions(wrap=False)
    assert (frac >= 0).all() and (frac < 1).all(), "frames are wrapped into the cell"


def test_files_source_reads_every_frame(tmp_path: Path) -> None:
    frames = [bulk("Al", "fcc", a=4.05, cubic=True) for _ in range(2)]
    frames[1].positions[0] += 0.1
    write(tmp_path / "traj.extxyz", frames)
    cfg = SnapshotsConfig(source="files", files=("traj.extxyz",))
    got = make_snapshots(cfg, seed=0, base_dir=tmp_path)
    assert len(got) == 2
    np.testing.assert_allclose(got[1].positions, frames[1].positions)


def test_bad_structures_are_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        make_snapshots(SnapshotsConfig(source="files", files=("nope.xyz",)), 0, tmp_path)
    write(tmp_path / "molecule.xyz", Atoms("Al2", positions=[[0, 0, 0], [0, 0, 2.5]]))
    with pytest.raises(InputError, match="no 3D cell") as err:
        make_snapshots(SnapshotsConfig(source="files", files=("molecule.xyz",)), 0, tmp_path)
    assert "molecule.xyz" in str(err.value)
    (tmp_path / "garbage.cif").write_text("this is not a cif\n")
    with pytest.raises(InputError, match="ASE cannot read"):
        make_snapshots(SnapshotsConfig(source="files", files=("garbage.cif",)), 0, tmp_path)
    with pytest.raises(InputError, match="unknown element"):
        make_snapshots(SnapshotsConfig(element="Xx"), 0, tmp_path)
    with pytest.raises(InputError, match="EMT has no parameters for Be"):
        make_snapshots(
            SnapshotsConfig(
                element="Be", lattice="hcp", cubic=False, lattice_constant_angstrom=2.29
            ),
            0,
            tmp_path,
        )
