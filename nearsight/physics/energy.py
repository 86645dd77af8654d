"""The total free energy from an LDOS or the density terms from a density.

Harris-Foulkes form (paper 002, Eq. 15, with QE's ion-ion term):

    A = E_b − TS − E_H[n] + E_xc[n + n_core] − ∫ v_xc[n + n_core] n + E_ewald,

where E_b, −TS and the Fermi level come from the DOS D(ε) = ∫ d(ε, r) dr and the density
n(r) = ∫ f(ε) d(ε, r) dε. QE prints the same sum as one-electron + Hartree + xc + Ewald +
smearing terms, with one-electron = E_b − 2 E_H − ∫ v_xc n (:attr:`EnergyTerms.one_electron`).

Every step is linear in the number of atoms except the FFTs (N log N).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from nearsight.errors import InputError
from nearsight.grid import EnergyGrid
from nearsight.physics import _backend as bk
from nearsight.physics.core_density import core_density
from nearsight.physics.ewald import ewald_energy
from nearsight.physics.fermi import band_observables, integration_weights
from nearsight.physics.hartree import hartree
from nearsight.physics.reciprocal import ReciprocalGrid
from nearsight.physics.system import EnergySystem
from nearsight.physics.xc import exchange_correlation

_DENSITY_BLOCK = 4096
"""Grid points per block in :func:`density_from_ldos` (4096 × 176 × 8 B ≈ 6 MB)."""


@dataclass(frozen=True)
class DensityTerms:
    """Energy terms that need only the density (eV; 0-d tensors for a tensor density)."""

    hartree: float
    xc: float
    xc_potential_integral: float
    ewald: float


@dataclass(frozen=True)
class EnergyTerms:
    """Every term of the total free energy (eV; electrons for the count).

    Floats, or 0-d float64 tensors when the LDOS was a tensor.
    """

    fermi_energy: float
    number_of_electrons: float
    band_energy: float
    entropy_contribution: float
    hartree: float
    xc: float
    xc_potential_integral: float
    ewald: float
    total_energy: float

    @property
    def one_electron(self) -> float:
        """QE's "one-electron contribution": E_b − 2 E_H − ∫ v_xc n (eV)."""
        return self.band_energy - 2.0 * self.hartree - self.xc_potential_integral

    def as_dict(self) -> dict[str, float]:
        """The terms by name, with ``one_electron`` added."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return values | {"one_electron": self.one_electron}


def _check_grid(name: str, array: np.ndarray, ndim: int) -> None:
    if array.ndim != ndim:
        raise InputError(
            f"{name} must have {ndim} axes, got shape {tuple(array.shape)}",
            field=name,
            fix="give grid data as " + ("[nx, ny, nz, ne]" if ndim == 4 else "[nx, ny, nz]"),
        )
    values = bk.to_numpy(array)
    # Plane by plane: a boolean mask of a whole large LDOS would cost a quarter of its size.
    if not all(np.isfinite(values[i]).all() for i in range(values.shape[0])):
        raise InputError(
            f"{name} contains NaN or infinite values",
            field=name,
            fix="check the files or the model that produced it",
        )


def density_terms(density: bk.Array, system: EnergySystem) -> DensityTerms:
    """Hartree, exchange-correlation (with core correction) and Ewald energies.

    Args:
        density: valence density [nx, ny, nz] in 1/Å³ on the system's cell; numpy, or a
            torch tensor for differentiable terms (0-d tensors; Ewald stays a float).
        system: atoms, pseudopotentials and cutoff.
    """
    _check_grid("density", density, 3)
    density = bk.float64(density)
    cell = np.asarray(system.atoms.cell[:])
    shape = tuple(int(n) for n in density.shape)
    _check_cutoff(system, shape)
    cutoff = system.ecutrho_ry
    core = core_density(system.atoms, shape, system.pseudopotentials, ecutrho_ry=cutoff)
    if bk.is_tensor(density):
        from nearsight.physics.torch_terms import xc_terms

        e_xc, v_xc_n = xc_terms(density, cell, system.functional, core, cutoff)
    else:
        xc = exchange_correlation(
            density, cell, system.functional, core_density=core, ecutrho_ry=cutoff
        )
        e_xc, v_xc_n = xc.energy, xc.potential_integral
    e_h, _ = hartree(density, cell, ecutrho_ry=cutoff)
    e_ewald = ewald_energy(system.atoms.positions, cell, system.charges, ecutrho_ry=cutoff)
    return DensityTerms(e_h, e_xc, v_xc_n, e_ewald)


def _check_cutoff(system: EnergySystem, shape: tuple[int, ...]) -> None:
    """The grid must hold QE's density sphere, or the core density would be cut short."""
    if system.ecutrho_ry is None:
        return
    rgrid = ReciprocalGrid.of(system.atoms.cell[:], shape)
    sphere = rgrid.within(system.ecutrho_ry)
    if np.any(sphere & rgrid.nyquist):
        raise InputError(
            f"grid {shape} is too coarse for ecutrho = {system.ecutrho_ry} Ry: the density "
            "sphere reaches the grid's Nyquist frequency",
            field="grid",
            fix="use the FFT grid pw.x chose for this cutoff (its 'FFT dimensions' line)",
        )


def ldos_to_dos(ldos: bk.Array, voxel_volume: float) -> bk.Array:
    """D(ε) = ∫ d(ε, r) dr: [ne] in states/eV from an LDOS [nx, ny, nz, ne] in 1/(eV·Å³).

    A numpy LDOS of any float type is summed with a float64 accumulator, without a copy.
    """
    if bk.is_tensor(ldos):
        return ldos.sum((0, 1, 2)) * voxel_volume
    return np.sum(ldos, axis=(0, 1, 2), dtype=np.float64) * voxel_volume


def density_from_ldos(ldos: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """n(r) = Σ_i w_i d(ε_i, r): [nx, ny, nz] float64 from an LDOS [nx, ny, nz, ne].

    A float32 LDOS is cast to float64 in blocks of grid points small enough to stay in cache,
    so it is never copied whole and the cost stays linear in the grid size.
    """
    shape = ldos.shape[:3]
    flat = ldos.reshape(-1, ldos.shape[3])
    density = np.empty(flat.shape[0])
    for start in range(0, flat.shape[0], _DENSITY_BLOCK):
        block = flat[start : start + _DENSITY_BLOCK]
        density[start : start + _DENSITY_BLOCK] = block.astype(np.float64, copy=False) @ weights
    return density.reshape(shape)


def harris_foulkes(
    fermi_energy: bk.Array,
    number_of_electrons: bk.Array,
    band_energy: bk.Array,
    entropy_contribution: bk.Array,
    density: DensityTerms,
) -> EnergyTerms:
    """Every term, with A = E_b − TS − E_H + E_xc − ∫v_xc n + E_ewald (eV; floats or 0-d
    tensors), from the band terms of the DOS and the terms of the density."""
    total = (
        band_energy
        + entropy_contribution
        - density.hartree
        + density.xc
        - density.xc_potential_integral
        + density.ewald
    )
    return EnergyTerms(
        fermi_energy=fermi_energy,
        number_of_electrons=number_of_electrons,
        band_energy=band_energy,
        entropy_contribution=entropy_contribution,
        hartree=density.hartree,
        xc=density.xc,
        xc_potential_integral=density.xc_potential_integral,
        ewald=density.ewald,
        total_energy=total,
    )


def total_energy(
    ldos: bk.Array,
    energy_grid: EnergyGrid,
    system: EnergySystem,
    *,
    method: str = "analytic",
) -> tuple[EnergyTerms, bk.Array]:
    """The total free energy and the density from an LDOS.

    Args:
        ldos: [nx, ny, nz, ne] in 1/(eV·Å³) on ``energy_grid``; a numpy array of any float
            dtype (read slab by slab: a float32 LDOS is never copied whole) or a torch
            tensor (converted to float64). Computed in float64 either way.
        energy_grid: the LDOS energies (eV).
        system: atoms, pseudopotentials, temperature, electron count and cutoff.
        method: energy integration, see :func:`nearsight.physics.fermi.integration_weights`.

    Returns:
        ``(terms, density)``: all terms in eV and the density [nx, ny, nz] in 1/Å³. For a
        tensor LDOS every term is a 0-d float64 tensor on the LDOS's device, differentiable
        with respect to the LDOS (the Fermi level included), and the density is a tensor.

    Raises:
        InputError: NaN in the LDOS, an LDOS whose energy axis does not match the grid, an
            electron count the window cannot hold.
    """
    _check_grid("ldos", ldos, 4)
    if ldos.shape[3] != energy_grid.n:
        raise InputError(
            f"LDOS has {ldos.shape[3]} energies but the energy grid has {energy_grid.n}",
            field="energy_grid",
            fix="give the energy grid the LDOS was computed on",
        )
    shape = tuple(int(n) for n in ldos.shape[:3])
    cell = np.asarray(system.atoms.cell[:])
    voxel = float(np.linalg.det(cell)) / float(np.prod(shape))
    kt, n_e = system.kt_ev, system.number_of_electrons
    if bk.is_tensor(ldos):
        from nearsight.physics.torch_terms import fermi_weights

        ldos = bk.float64(ldos)
        dos = ldos_to_dos(ldos, voxel)
        weights, mu = fermi_weights(dos, energy_grid, n_e, kt, method)
        number, band, entropy = (weights[i] @ dos for i in range(3))
        density = ldos @ weights[0]
    else:
        dos = ldos_to_dos(ldos, voxel)
        result = band_observables(dos, energy_grid, n_e, kt, method)
        mu, number = result.fermi_energy, result.number_of_electrons
        band, entropy = result.band_energy, result.entropy_contribution
        density = density_from_ldos(ldos, integration_weights(energy_grid, mu, kt, method).number)
    terms = harris_foulkes(mu, number, band, entropy, density_terms(density, system))
    return terms, density
