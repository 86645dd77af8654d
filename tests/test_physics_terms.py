"""Hartree, exchange-correlation and core density on their own, and the errors the energy
code raises for bad input. The QE comparisons are in test_energy_qe.py."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from conftest import LDA_UPF, PBE_NLCC_UPF, REPO

from nearsight.errors import InputError
from nearsight.grid import EnergyGrid
from nearsight.io.dataset import read_snapshot
from nearsight.io.upf import read_upf
from nearsight.physics.core_density import core_density, radial_transform
from nearsight.physics.energy import density_terms, total_energy
from nearsight.physics.hartree import COULOMB_EV_ANGSTROM, hartree
from nearsight.physics.reciprocal import ReciprocalGrid
from nearsight.physics.structure_factor import structure_factor_direct
from nearsight.physics.system import EnergySystem
from nearsight.physics.xc import exchange_correlation

torch = pytest.importorskip("torch", reason="torch is installed with the [ml] extra")

CELLS = {
    "hexagonal": np.array([[3.0, 0.0, 0.0], [-1.5, 1.5 * np.sqrt(3), 0.0], [0.0, 0.0, 4.8]]),
    "triclinic": np.array([[3.2, 0.0, 0.0], [0.9, 2.9, 0.0], [0.6, -0.7, 3.5]]),
}


def _gaussians(cell, shape, positions, charges, width):
    """Periodic Gaussian charges sampled on the grid (images within 4 cells), 1/Å³."""
    n = np.indices(shape).reshape(3, -1).T / np.array(shape)
    points = n @ cell
    out = np.zeros(len(points))
    shifts = np.array(np.meshgrid(*[range(-2, 3)] * 3, indexing="ij")).reshape(3, -1).T @ cell
    norm = (2 * np.pi * width**2) ** -1.5
    for pos, z in zip(positions, charges, strict=True):
        for shift in shifts:
            d2 = np.sum((points - pos - shift) ** 2, axis=1)
            out += z * norm * np.exp(-d2 / (2 * width**2))
    return out.reshape(shape)


def _gaussian_hartree(cell, positions, charges, width):
    """(2π/Ω) Σ_{G≠0} |S(G)|² e^{-G²s²} / G² by explicit G vectors, in eV."""
    b = 2 * np.pi * np.linalg.inv(cell).T
    m = np.array(np.meshgrid(*[range(-25, 26)] * 3, indexing="ij")).reshape(3, -1).T
    g = m @ b
    g2 = np.sum(g**2, axis=1)
    keep = g2 > 0
    s = np.exp(-1j * g[keep] @ np.asarray(positions).T) @ np.asarray(charges)
    volume = abs(np.linalg.det(cell))
    total = np.sum(np.abs(s) ** 2 * np.exp(-g2[keep] * width**2) / g2[keep])
    return 2 * np.pi / volume * total * COULOMB_EV_ANGSTROM


@pytest.mark.parametrize("name", sorted(CELLS))
def test_hartree_of_gaussians_in_any_cell(name):
    """FFT Poisson solve against the closed form; 1e-9 relative is the sampling limit."""
    cell = CELLS[name]
    positions = np.array([[0.1, 0.2, 0.3], [1.0, 1.1, 2.2]])
    charges = np.array([1.0, 2.0])
    shape = (36, 36, 48)
    density = _gaussians(cell, shape, positions, charges, 0.45)
    energy, potential = hartree(density, cell)
    expected = _gaussian_hartree(cell, positions, charges, 0.45)
    assert energy == pytest.approx(expected, rel=1e-9)
    # v_H is dE_H/dn per volume: ∫ v_H n = 2 E_H.
    voxel = abs(np.linalg.det(cell)) / np.prod(shape)
    assert np.sum(potential * density) * voxel == pytest.approx(2 * energy, rel=1e-12)


def test_hartree_with_torch_matches_numpy_and_differentiates():
    cell = CELLS["triclinic"]
    rng = np.random.default_rng(0)
    density = rng.random((10, 12, 14))
    energy, potential = hartree(density, cell)
    tensor = torch.tensor(density, requires_grad=True)
    energy_t, potential_t = hartree(tensor, cell)
    energy_t.backward()
    voxel = abs(np.linalg.det(cell)) / density.size
    assert float(energy_t.detach()) == pytest.approx(energy, rel=1e-13)
    np.testing.assert_allclose(potential_t.detach().numpy(), potential, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tensor.grad.numpy(), potential * voxel, rtol=1e-10, atol=1e-14)


def test_core_density_holds_the_core_charge_and_matches_the_direct_sum():
    pseudo = read_upf(PBE_NLCC_UPF)
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    atoms.positions[1] += [0.1, -0.05, 0.2]
    shape = (24, 24, 24)
    n_core = core_density(atoms, shape, {"Al": pseudo}, ecutrho_ry=80.0)
    voxel = atoms.get_volume() / np.prod(shape)
    per_atom = radial_transform(pseudo, np.array([0.0]))[0]
    assert n_core.sum() * voxel == pytest.approx(4 * per_atom, rel=1e-12)
    # Same field as the explicit O(N_atoms x N_G) structure factor.
    rgrid = ReciprocalGrid.of(atoms.cell[:], shape)
    s = structure_factor_direct(atoms.positions, rgrid)
    keep = rgrid.within(80.0)
    coefficients = np.zeros(rgrid.half_shape, dtype=complex)
    coefficients[keep] = radial_transform(pseudo, np.sqrt(rgrid.g2[keep])) * s[keep]
    direct = np.fft.irfftn(coefficients / atoms.get_volume(), s=shape, axes=(0, 1, 2))
    np.testing.assert_allclose(n_core, direct * np.prod(shape), atol=1e-9 * n_core.max())


def test_core_density_is_none_without_core_correction():
    atoms = bulk("Al", "fcc", a=4.05)
    assert core_density(atoms, (15, 15, 15), {"Al": read_upf(LDA_UPF)}) is None


def test_xc_potential_is_the_derivative_of_the_energy():
    """v_xc by libxc against a finite difference of E_xc (LDA and PBE, core included)."""
    cell = CELLS["hexagonal"]
    shape = (16, 16, 24)
    positions = np.array([[0.0, 0.0, 0.0], [1.5, 0.866, 2.4]])
    density = _gaussians(cell, shape, positions, [1.5, 1.5], 0.6) + 0.01
    core = _gaussians(cell, shape, positions, [0.5, 0.5], 0.3)
    voxel = abs(np.linalg.det(cell)) / np.prod(shape)
    rng = np.random.default_rng(1)
    direction = rng.random(shape) * density
    for name in ("PZ", "PBE"):
        result = exchange_correlation(density, cell, name, core_density=core)
        h = 1e-5
        plus = exchange_correlation(density + h * direction, cell, name, core_density=core)
        minus = exchange_correlation(density - h * direction, cell, name, core_density=core)
        numeric = (plus.energy - minus.energy) / (2 * h)
        analytic = np.sum(result.potential * direction) * voxel
        assert analytic == pytest.approx(numeric, rel=1e-6), name
        assert result.potential_integral == pytest.approx(
            np.sum(result.potential * density) * voxel, rel=1e-12
        )


# --- bad input -------------------------------------------------------------------------


def _system(atoms=None, pseudo=None, **kwargs):
    atoms = atoms if atoms is not None else bulk("Al", "fcc", a=4.05)
    return EnergySystem.create(atoms, {"Al": pseudo or read_upf(LDA_UPF)}, 300.0, **kwargs)


def test_unsupported_functional_is_refused():
    pseudo = dataclasses.replace(read_upf(LDA_UPF), functional="BLYP")
    with pytest.raises(InputError, match="BLYP.*not supported"):
        _system(pseudo=pseudo)


@pytest.mark.parametrize("kind", ["US", "PAW"])
def test_ultrasoft_and_paw_are_refused(kind):
    pseudo = dataclasses.replace(read_upf(LDA_UPF), pseudo_type=kind)
    with pytest.raises(InputError, match=f"is {kind}.*norm-conserving"):
        _system(pseudo=pseudo)


def test_missing_pseudopotential_and_mixed_functionals_are_refused():
    atoms = Atoms("AlCu", positions=[[0, 0, 0], [1, 1, 1]], cell=np.eye(3) * 4, pbc=True)
    with pytest.raises(InputError, match="no pseudopotential for Cu"):
        EnergySystem.create(atoms, {"Al": read_upf(LDA_UPF)}, 300.0)
    cu = dataclasses.replace(read_upf(PBE_NLCC_UPF), element="Cu")
    with pytest.raises(InputError, match="different functionals"):
        EnergySystem.create(atoms, {"Al": read_upf(LDA_UPF), "Cu": cu}, 300.0)


def test_negative_cell_volume_is_refused():
    atoms = bulk("Al", "fcc", a=4.05)
    atoms.set_cell(-atoms.cell[:], scale_atoms=False)
    with pytest.raises(InputError, match="cell volume must be positive"):
        _system(atoms=atoms)


FLAT_GRID = EnergyGrid(-4.0, 0.1, 121)


def _flat_ldos(value=1e-3):
    """A uniform LDOS on a 6³ grid of the 1-atom fcc cell."""
    return np.full((6, 6, 6, FLAT_GRID.n), value), FLAT_GRID


def test_ldos_with_nan_is_refused():
    ldos, grid = _flat_ldos()
    ldos[1, 2, 3, 4] = np.nan
    with pytest.raises(InputError, match="NaN"):
        total_energy(ldos, grid, _system())


def test_electron_count_outside_the_window_is_refused():
    ldos, grid = _flat_ldos(value=1e-5)  # about 0.2 states in the window, 3 electrons needed
    with pytest.raises(InputError, match="window"):
        total_energy(ldos, grid, _system())


def test_ldos_and_energy_grid_must_match():
    ldos, _ = _flat_ldos()
    with pytest.raises(InputError, match="LDOS has 121 energies but the energy grid has 50"):
        total_energy(ldos, EnergyGrid(-4.0, 0.1, 50), _system())


def test_grid_too_coarse_for_the_cutoff_is_refused():
    density = np.full((6, 6, 6), 0.05)
    with pytest.raises(InputError, match="too coarse for ecutrho"):
        density_terms(density, _system(ecutrho_ry=80.0))


# --- torch ------------------------------------------------------------------------------


def test_total_energy_with_torch_matches_numpy_and_its_gradient_is_exact():
    """On a bundled snapshot: same terms from a tensor, and d A / d LDOS (Fermi level, xc
    kernel and all) against a central difference along a random direction. The difference
    step 1e-4 leaves an O(h²) error far under the 1e-6 asserted."""
    snap = read_snapshot(REPO / "examples" / "al" / "data" / "al4_000.h5")
    system = EnergySystem.from_snapshot(snap)
    ldos = snap.ldos.astype(np.float64)
    reference, density = total_energy(ldos, snap.energy_grid, system)
    tensor = torch.tensor(ldos, requires_grad=True)
    terms, density_t = total_energy(tensor, snap.energy_grid, system)
    for name, value in reference.as_dict().items():
        ours = terms.as_dict()[name]
        ours = float(ours.detach()) if torch.is_tensor(ours) else ours
        assert ours == pytest.approx(value, rel=1e-12, abs=1e-12), name
    np.testing.assert_allclose(density_t.detach().numpy(), density, rtol=1e-13)
    terms.total_energy.backward()
    direction = np.random.default_rng(0).standard_normal(ldos.shape) * ldos
    h = 1e-4
    plus, _ = total_energy(ldos + h * direction, snap.energy_grid, system)
    minus, _ = total_energy(ldos - h * direction, snap.energy_grid, system)
    numeric = (plus.total_energy - minus.total_energy) / (2 * h)
    assert float(np.sum(tensor.grad.numpy() * direction)) == pytest.approx(numeric, rel=1e-6)
