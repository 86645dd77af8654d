"""Tests of ``nearsight.physics.structure_factor``.

The plane-wave sum is checked against numpy's FFT of point weights on grid points (the sign
and layout convention); the linear-scaling Gaussian method is checked against the plane-wave
sum on cubic, hexagonal and strongly triclinic cells, even and odd grids, grids smaller than
a Gaussian's window, and atoms far outside the cell.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from nearsight.errors import InputError
from nearsight.physics.reciprocal import ReciprocalGrid
from nearsight.physics.structure_factor import structure_factor, structure_factor_direct

TRICLINIC = np.array([[4.0, 0.0, 0.0], [3.5, 2.0, 0.0], [-1.8, 1.7, 3.0]])

CASES = {
    "cubic even": (np.eye(3) * 5.0, (16, 16, 16)),
    "cubic odd": (np.eye(3) * 5.0, (15, 17, 13)),
    "hcp Mg": (bulk("Mg", "hcp").cell[:], (15, 15, 24)),
    "triclinic": (TRICLINIC, (18, 21, 19)),
    "triclinic coarse": (TRICLINIC, (3, 2, 5)),
}


@pytest.mark.parametrize("name", CASES)
def test_gaussian_spreading_matches_plane_wave_sum(name: str) -> None:
    cell, shape = CASES[name]
    rgrid = ReciprocalGrid.of(cell, shape)
    rng = np.random.default_rng(7)
    # Fractional coordinates in [-1.5, 2.5): most atoms lie in other images of the cell.
    positions = rng.uniform(-1.5, 2.5, size=(40, 3)) @ cell
    weights = rng.normal(size=40)
    direct = structure_factor_direct(positions, rgrid, weights)
    fast = structure_factor(positions, rgrid, weights)
    assert fast.shape == direct.shape == rgrid.half_shape
    assert fast.dtype == np.complex128
    assert np.max(np.abs(fast - direct)) <= 1e-10 * np.sum(np.abs(weights))


def test_atom_on_the_cell_boundary() -> None:
    # -1e-17 wraps to fractional 1.0 exactly, the upper edge of the wrapped range.
    cell, shape = CASES["cubic odd"]
    rgrid = ReciprocalGrid.of(cell, shape)
    positions = np.array([[-1e-17, 0.0, 5.0], [2.5, 2.5, 2.5]])
    direct = structure_factor_direct(positions, rgrid)
    assert np.max(np.abs(structure_factor(positions, rgrid) - direct)) <= 2e-10


@pytest.mark.parametrize("shape", [(6, 5, 8), (5, 7, 7)])
def test_plane_wave_sum_is_the_fft_of_point_weights(shape: tuple[int, int, int]) -> None:
    """S(G) = Σ w exp(-iG·R) is numpy's forward FFT of the weights on grid points."""
    rgrid = ReciprocalGrid.of(TRICLINIC, shape)
    rng = np.random.default_rng(3)
    points = rng.integers(0, shape, size=(12, 3))
    weights = rng.normal(size=12)
    on_grid = np.zeros(shape)
    np.add.at(on_grid, tuple(points.T), weights)
    positions = (points / np.asarray(shape)) @ TRICLINIC
    expected = np.fft.rfftn(on_grid)
    assert np.allclose(structure_factor_direct(positions, rgrid, weights), expected, atol=1e-12)
    assert np.allclose(structure_factor(positions, rgrid, weights), expected, atol=1e-10)


def test_default_weights_are_ones() -> None:
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    rgrid = ReciprocalGrid.of(atoms.cell[:], (8, 8, 8))
    s = structure_factor(atoms.positions, rgrid)
    assert s[0, 0, 0] == pytest.approx(4.0, abs=1e-12)
    # fcc: the simple-cubic reflections with mixed-parity m vanish, (2, 0, 0) does not.
    assert abs(s[1, 0, 0]) < 1e-12
    assert s[2, 0, 0] == pytest.approx(4.0, abs=1e-12)
    assert np.allclose(s, structure_factor(atoms.positions, rgrid, np.ones(4)), atol=0)


def test_no_atoms_give_zero() -> None:
    rgrid = ReciprocalGrid.of(TRICLINIC, (4, 4, 4))
    empty = np.zeros((0, 3))
    assert not np.any(structure_factor(empty, rgrid))
    assert not np.any(structure_factor_direct(empty, rgrid))


@pytest.mark.parametrize("function", [structure_factor, structure_factor_direct])
def test_bad_input(function) -> None:
    rgrid = ReciprocalGrid.of(TRICLINIC, (4, 4, 4))
    positions = np.zeros((3, 3))
    with pytest.raises(InputError, match="shape"):
        function(np.zeros((3, 2)), rgrid)
    with pytest.raises(InputError, match="NaN"):
        function(np.array([[0.0, np.nan, 0.0]]), rgrid)
    with pytest.raises(InputError, match="weights"):
        function(positions, rgrid, np.ones(2))
    with pytest.raises(InputError, match="weights"):
        function(positions, rgrid, np.array([1.0, np.inf, 0.0]))
    with pytest.raises(InputError, match="real"):
        function(positions, rgrid, np.ones(3, dtype=complex))
