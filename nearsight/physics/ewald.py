"""Ion-ion (Ewald) energy of point charges in a periodic cell, as Quantum ESPRESSO defines it.

QE's ``PW/src/ewald.f90`` computes, in Hartree atomic units,

    E = (2π/Ω) Σ_{G≠0} |S_Z(G)|² exp(-G²/4α) / G²
        - π (ΣZ)² / (2Ωα)
        - √(α/π) Σ_i Z_i²
        + ½ Σ'_{i,j,R} Z_i Z_j erfc(√α |R_i - R_j + R|) / |R_i - R_j + R|,

with ``S_Z(G) = Σ_i Z_i exp(iG·R_i)`` and the primed sum leaving out ``i = j`` at ``R = 0``.
For a charged cell the second term is the energy of a uniform neutralising background; for
a neutral one it vanishes. The value does not depend on the splitting parameter α.

QE truncates both sums (G inside its ``ecutrho`` sphere, pairs within ``4/√α``), which
moves its printed value by up to a few µeV for small cells. Here both sums are converged
for the same α, in work linear in the number of atoms: ``S_Z`` comes from the
Gaussian-spreading :func:`~nearsight.physics.structure_factor.structure_factor` on an FFT
grid that holds every G with ``exp(-G²/4α) > 1e-16``, and the pairs with
``erfc(√α r) > 1e-16`` from ASE's binned neighbour list. The result is independent of α to
~1e-14 relative.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft
from ase import Atoms
from ase.neighborlist import neighbor_list
from scipy.special import erfc, erfcinv

from nearsight.errors import InputError
from nearsight.physics.reciprocal import ReciprocalGrid
from nearsight.physics.structure_factor import checked_positions, structure_factor
from nearsight.units import BOHR_ANGSTROM, HARTREE_EV

__all__ = ["ewald_energy", "qe_ewald_alpha"]

_G_CUTOFF = math.sqrt(math.log(1e16))
"""G_max / (2√α): exp(-G²/4α) ≤ 1e-16 beyond the reciprocal grid's inscribed sphere."""
_R_CUTOFF = float(erfcinv(1e-16))
"""√α r_c: erfc(√α r) ≤ 1e-16 beyond the real-space cut-off."""
_ALPHA_DENSITY = 6.0
"""Default α = _ALPHA_DENSITY × (N/Ω)^(2/3), Bohr⁻² (see :func:`ewald_energy`)."""


def qe_ewald_alpha(total_charge: float, ecutrho_ry: float) -> float:
    """The α (Bohr⁻²) that pw.x chooses for a cell of ionic charge ``total_charge``.

    QE starts at 2.9 and lowers α by 0.1 until the G-space sum's truncation bound
    ``2 (ΣZ)² √(2α/2π) erfc(√(ecutrho / 4α))`` is ≤ 1e-7; the repeated subtraction is
    copied so that α is the same float as QE's.

    Args:
        total_charge: ΣZ over the atoms of the cell (e).
        ecutrho_ry: QE's ``ecutrho`` in Ry (the largest G² in Bohr⁻²).

    Raises:
        InputError: for a non-positive cutoff, or when no α > 0 passes (QE stops there too).
    """
    if not (math.isfinite(ecutrho_ry) and ecutrho_ry > 0):
        raise InputError(
            f"ecutrho must be a positive number of Ry, got {ecutrho_ry}",
            field="ecutrho_ry",
            fix="give QE's charge-density cutoff ecutrho in Ry",
        )
    if not math.isfinite(total_charge):
        raise InputError(f"total charge must be finite, got {total_charge}", field="charges")
    alpha = 2.9
    while True:
        alpha -= 0.1
        if alpha <= 0.0:
            raise InputError(
                f"no Ewald alpha > 0 converges for total charge {total_charge} and "
                f"ecutrho {ecutrho_ry} Ry (pw.x stops with 'optimal alpha not found')",
                field="ecutrho_ry",
                fix="raise ecutrho, or pass alpha explicitly",
            )
        bound = (
            2.0
            * total_charge**2
            * math.sqrt(2.0 * alpha / (2.0 * math.pi))
            * math.erfc(math.sqrt(ecutrho_ry / 4.0 / alpha))
        )
        if bound <= 1e-7:
            return alpha


def ewald_energy(
    positions: np.ndarray,
    cell: np.ndarray,
    charges: np.ndarray,
    *,
    ecutrho_ry: float | None = None,
    alpha: float | None = None,
) -> float:
    """The ion-ion energy of QE's ``ewald contribution`` (eV), converged for the chosen α.

    α is, in order of precedence: ``alpha`` as given; QE's choice
    (:func:`qe_ewald_alpha`) for ``ecutrho_ry``; else ``6 (N/Ω)^(2/3)`` Bohr⁻² for N atoms
    in volume Ω (Bohr³). That default ties the screening length ``1/√(2α)`` to the mean
    distance between atoms, so the work per atom stays fixed as the cell grows: about 60
    neighbours within the real-space cut-off and 850 reciprocal grid points per atom
    (orthogonal cells). The factor 6 minimised the total time for 4096 atoms of fcc Al,
    where the neighbour list and the Gaussian spreading of the structure factor dominate.
    The energy does not depend on α (to ~1e-14 relative); α only sets where the work goes.

    Args:
        positions: Cartesian positions [N, 3], Å; atoms outside the cell are wrapped.
        cell: lattice vectors as rows [3, 3], Å, right-handed.
        charges: ionic (valence) charge Z of each atom [N], e, e.g. the UPF ``z_valence``.
        ecutrho_ry: QE's ``ecutrho`` (Ry), to use QE's α.
        alpha: the Ewald splitting parameter, Bohr⁻².

    Returns:
        The energy of the cell in eV.

    Raises:
        InputError: for positions, cell, charges or α that are not finite, of the wrong
            shape, a cell with non-positive volume, or no α > 0 from QE's rule.
    """
    positions, cell, charges = _validated(positions, cell, charges)
    volume = float(np.linalg.det(cell)) / BOHR_ANGSTROM**3
    if alpha is None:
        if ecutrho_ry is not None:
            alpha = qe_ewald_alpha(float(np.sum(charges)), ecutrho_ry)
        else:
            alpha = _ALPHA_DENSITY * (len(charges) / volume) ** (2.0 / 3.0)
    if not (math.isfinite(alpha) and alpha > 0):
        raise InputError(
            f"alpha must be a positive number of Bohr⁻², got {alpha}",
            field="alpha",
            fix="leave alpha out to have it chosen",
        )
    energy = (
        _reciprocal_sum(positions, cell, charges, alpha, volume)
        + _real_space_sum(positions, cell, charges, alpha)
        - math.pi * float(np.sum(charges)) ** 2 / (2.0 * volume * alpha)
        - math.sqrt(alpha / math.pi) * float(np.sum(charges**2))
    )
    return energy * HARTREE_EV


def _reciprocal_sum(
    positions: np.ndarray, cell: np.ndarray, charges: np.ndarray, alpha: float, volume: float
) -> float:
    """``(2π/Ω) Σ_{G≠0} |S_Z(G)|² exp(-G²/4α) / G²`` in Hartree (α in Bohr⁻², Ω in Bohr³)."""
    g_max = 2.0 * math.sqrt(alpha) * _G_CUTOFF / BOHR_ANGSTROM
    # |m_i| ≤ K_i on axis i holds the ball |G| ≤ 2π K_i / |a_i|, so this grid holds the sphere.
    lengths = np.linalg.norm(cell, axis=1)
    shape = tuple(
        scipy.fft.next_fast_len(2 * math.ceil(g_max * length / (2.0 * math.pi)) + 1, real=True)
        for length in lengths
    )
    rgrid = ReciprocalGrid.of(cell, shape)
    s2 = np.abs(structure_factor(positions, rgrid, charges)) ** 2
    g2 = rgrid.g2 * BOHR_ANGSTROM**2
    kernel = np.zeros(rgrid.half_shape)
    nonzero = g2 > 0
    kernel[nonzero] = np.exp(-g2[nonzero] / (4.0 * alpha)) / g2[nonzero]
    return 2.0 * math.pi / volume * float(np.sum(rgrid.multiplicity * kernel * s2))


def _real_space_sum(
    positions: np.ndarray, cell: np.ndarray, charges: np.ndarray, alpha: float
) -> float:
    """``½ Σ'_{i,j,R} Z_i Z_j erfc(√α d) / d`` in Hartree over pairs with ``erfc > 1e-16``."""
    cutoff = _R_CUTOFF / math.sqrt(alpha) * BOHR_ANGSTROM
    atoms = Atoms(positions=positions, cell=cell, pbc=True)
    # Ordered pairs (i, j) and (j, i) both come back, and the images of an atom itself
    # (i = i at R ≠ 0) too; the ½ of the formula undoes the double count.
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    d = d / BOHR_ANGSTROM
    return 0.5 * float(np.sum(charges[i] * charges[j] * erfc(math.sqrt(alpha) * d) / d))


def _validated(
    positions: np.ndarray, cell: np.ndarray, charges: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked float64 copies; positions wrapped into the cell."""
    positions = checked_positions(positions)
    if len(positions) == 0:
        raise InputError("no atoms: the Ewald energy needs at least one", field="positions")
    cell = np.asarray(cell, dtype=float)
    charges = np.asarray(charges, dtype=float)
    if cell.shape != (3, 3) or not np.all(np.isfinite(cell)):
        raise InputError(
            f"cell must be a finite 3x3 matrix, got shape {cell.shape}",
            field="cell",
            fix="give the three lattice vectors (Å) as rows",
        )
    volume = float(np.linalg.det(cell))
    if not volume > 0:
        raise InputError(
            f"cell volume must be positive, got {volume:.6g} Å³",
            field="cell",
            fix="give a right-handed cell with non-zero volume",
        )
    if charges.shape != (len(positions),) or not np.all(np.isfinite(charges)):
        raise InputError(
            f"charges must be {len(positions)} finite numbers (one per atom), got shape "
            f"{charges.shape}",
            field="charges",
            fix="give the valence charge Z of each atom, in the order of positions",
        )
    fractional = positions @ np.linalg.inv(cell)
    positions = (fractional - np.floor(fractional)) @ cell
    return positions, cell, charges
