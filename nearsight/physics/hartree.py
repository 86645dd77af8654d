"""Hartree energy and potential by an FFT Poisson solve, QE's conventions.

In atomic units ``E_H = (Ω/2) Σ_{G≠0} 4π |n(G)|² / G²`` with ``n(G) = FFT(n) / N_grid``;
the G = 0 term is dropped (it cancels against the ions' background, as in QE). Any cell
shape works because G² comes from the full reciprocal metric.
"""

from __future__ import annotations

import numpy as np

from nearsight.physics import _backend as bk
from nearsight.physics.reciprocal import ReciprocalGrid
from nearsight.units import BOHR_ANGSTROM, HARTREE_EV

COULOMB_EV_ANGSTROM = HARTREE_EV * BOHR_ANGSTROM
"""e²/(4πε₀) in eV·Å: turns ∫∫ n n' / |r - r'| with n in 1/Å³ and r in Å into eV."""


def _coulomb_kernel(rgrid: ReciprocalGrid, ecutrho_ry: float | None) -> np.ndarray:
    """4π e² / G² on the half grid (eV·Å²), zero at G = 0 and outside the cutoff sphere."""
    g2 = rgrid.g2
    keep = rgrid.within(ecutrho_ry) & (g2 > 0)
    kernel = np.zeros(rgrid.half_shape)
    kernel[keep] = 4.0 * np.pi * COULOMB_EV_ANGSTROM / g2[keep]
    return kernel


def hartree(
    density: bk.Array, cell: np.ndarray, *, ecutrho_ry: float | None = None
) -> tuple[bk.Array, bk.Array]:
    """Hartree energy and potential of a periodic density.

    Args:
        density: electron density [nx, ny, nz] in 1/Å³ (numpy or torch, float64).
        cell: lattice vectors as rows [3, 3], Å.
        ecutrho_ry: keep only G inside QE's ``ecutrho`` sphere (Ry); None keeps every G of
            the grid. QE's density has no weight outside its sphere, so both agree on QE
            densities to ~1e-11 eV.

    Returns:
        ``(energy, potential)``: E_H in eV (float, or 0-d tensor) and v_H [nx, ny, nz] in eV,
        the same kind as ``density``.
    """
    density = bk.float64(density)
    shape = tuple(density.shape)
    rgrid = ReciprocalGrid.of(cell, shape)
    n_points = float(np.prod(shape))
    volume = rgrid.grid.volume
    coefficients = bk.rfftn(density) / n_points
    kernel = bk.like(_coulomb_kernel(rgrid, ecutrho_ry), density)
    weights = bk.like(rgrid.multiplicity * np.ones(rgrid.half_shape), density)
    energy = 0.5 * volume * bk.total(weights * kernel * bk.abs2(coefficients))
    potential = bk.irfftn(kernel * coefficients, shape) * n_points
    return energy, potential


def hartree_energy(
    density: bk.Array, cell: np.ndarray, *, ecutrho_ry: float | None = None
) -> bk.Array:
    """E_H in eV of ``density`` [nx, ny, nz] (1/Å³); see :func:`hartree`."""
    return hartree(density, cell, ecutrho_ry=ecutrho_ry)[0]
