"""Non-linear core-correction density on the grid, QE's construction in linear time.

QE builds n_core(G) = (4π/Ω) ∫ r² ρ_c(r) j₀(Gr) dr · S(G) inside the ``ecutrho`` sphere and
transforms it to the grid (``set_rhoc``/``drhoc``), with its Simpson rule on the UPF radial
mesh cut at 10 Bohr. The radial transform is tabulated once per species on a fine |G| mesh
and interpolated, and the structure factor S(G) comes from Gaussians spread in real space
(:func:`nearsight.physics.structure_factor.structure_factor`), so the cost grows as
N_grid log N_grid instead of N_atoms × N_grid.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from ase import Atoms
from scipy.interpolate import CubicSpline

from nearsight.errors import InputError
from nearsight.io.upf import Pseudopotential
from nearsight.physics import _backend as bk
from nearsight.physics.reciprocal import ReciprocalGrid
from nearsight.physics.structure_factor import structure_factor
from nearsight.units import BOHR_ANGSTROM

_RADIAL_CUTOFF = 10.0 * BOHR_ANGSTROM
"""Å; QE's ``rcut`` for radial integrals of pseudopotential functions."""
_TABLE_STEP = 0.005
"""1/Å; spacing of the |G| table; cubic interpolation error ~ step⁴ (far below 1e-12)."""


def qe_simpson_weights(r: np.ndarray, rab: np.ndarray) -> np.ndarray:
    """Weights of QE's radial Simpson rule on the points ``r`` kept by QE's cutoff.

    QE integrates over the first ``msh`` points (odd, first r > 10 Bohr) with weights
    rab·(1, 4, 2, 4, ..., 4, 1)/3; an even count leaves the last point out, as QE's
    ``simpson`` does.
    """
    msh = int(np.searchsorted(r, _RADIAL_CUTOFF, side="right")) + 1
    msh = min(msh, r.size)
    msh = 2 * ((msh + 1) // 2) - 1
    if msh > r.size:
        msh -= 2
    pattern = np.zeros(r.size)
    pattern[:msh:2] = 2.0
    pattern[1:msh:2] = 4.0
    pattern[0] = 1.0
    pattern[msh - 1] = 1.0
    return pattern * rab / 3.0


def radial_transform(pseudo: Pseudopotential, q: np.ndarray) -> np.ndarray:
    """4π ∫ r² ρ_c(r) j₀(qr) dr for |G| values ``q`` [m] (1/Å): electrons per core."""
    if pseudo.rho_core is None:
        raise InputError(
            f"{pseudo.element} pseudopotential has no core charge",
            path=pseudo.path,
            field="PP_NLCC",
        )
    weights = qe_simpson_weights(pseudo.r, pseudo.rab) * pseudo.r**2 * pseudo.rho_core
    out = np.empty(q.size)
    for start in range(0, q.size, 256):
        qr = np.outer(q[start : start + 256], pseudo.r)
        out[start : start + 256] = np.sinc(qr / np.pi) @ weights
    return 4.0 * np.pi * out


def core_density(
    atoms: Atoms,
    shape: tuple[int, int, int],
    pseudopotentials: Mapping[str, Pseudopotential],
    *,
    ecutrho_ry: float | None = None,
) -> np.ndarray | None:
    """n_core [nx, ny, nz] in 1/Å³, or None when no species has a core correction.

    Args:
        atoms: the structure (Å); every element needs an entry in ``pseudopotentials``.
        shape: the FFT grid.
        pseudopotentials: by element symbol.
        ecutrho_ry: QE's ``ecutrho``; the core density keeps only G inside its sphere, as
            in QE. None keeps every G of the grid but the unpaired Nyquist ones.
    """
    with_core = {el: pp for el, pp in pseudopotentials.items() if pp.core_correction}
    if not with_core:
        return None
    rgrid = ReciprocalGrid.of(atoms.cell[:], shape)
    keep = rgrid.within(ecutrho_ry)
    if ecutrho_ry is None:
        keep = keep & ~rgrid.nyquist
    g = np.sqrt(rgrid.g2)
    table_q = np.arange(0.0, g.max() + 4 * _TABLE_STEP, _TABLE_STEP)
    symbols = np.array(atoms.get_chemical_symbols())
    coefficients = np.zeros(rgrid.half_shape, dtype=complex)
    for element, pseudo in with_core.items():
        selected = symbols == element
        if not selected.any():
            continue
        form = CubicSpline(table_q, radial_transform(pseudo, table_q))(g[keep])
        s = structure_factor(atoms.positions[selected], rgrid)
        coefficients[keep] += form * s[keep]
    coefficients /= rgrid.grid.volume
    return bk.irfftn(coefficients, shape) * float(np.prod(shape))
