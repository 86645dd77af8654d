"""Exchange-correlation energy and potential through libxc, with QE's conventions.

The functional is evaluated on the total density ``n + n_core`` (the non-linear core
correction); gradients and the divergence of the GGA term are taken by FFT over the same G
vectors QE uses (its ``ecutrho`` sphere when given). libxc comes from the ``pyscf`` wheel,
which bundles it (``pyscf.dft.libxc.eval_xc``).

QE's small-density rules are kept: the local part is evaluated at ``|n|`` and weighted by the
signed ``n`` (``v_of_rho``), points below 1e-10 Bohr⁻³ contribute nothing, and the gradient
correction is switched off below 1e-6 Bohr⁻³ (``gradcorr``'s ``epsr``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nearsight.errors import InputError
from nearsight.physics import _backend as bk
from nearsight.physics.reciprocal import ReciprocalGrid
from nearsight.units import BOHR_ANGSTROM, HARTREE_EV

_VANISHING_DENSITY = 1e-10
"""Bohr⁻³; QE's ``vanishing_charge`` in ``v_of_rho``."""
_GRADIENT_DENSITY = 1e-6
"""Bohr⁻³; QE's ``epsr`` in ``gradcorr``."""


@dataclass(frozen=True)
class Functional:
    """A functional as QE names it and as libxc evaluates it."""

    name: str
    libxc_code: str
    is_gga: bool


FUNCTIONALS: dict[str, Functional] = {
    "PZ": Functional("PZ", "LDA_X,LDA_C_PZ", False),
    "PW": Functional("PW", "LDA_X,LDA_C_PW", False),
    "PBE": Functional("PBE", "GGA_X_PBE,GGA_C_PBE", True),
    "PBESOL": Functional("PBESOL", "GGA_X_PBE_SOL,GGA_C_PBE_SOL", True),
}
"""Supported functionals, keyed by the canonical names of :func:`nearsight.io.upf.canonical_xc`."""


def functional(name: str) -> Functional:
    """The :class:`Functional` for a canonical QE name; InputError for anything else."""
    key = name.upper()
    if key not in FUNCTIONALS:
        raise InputError(
            f"exchange-correlation functional {name!r} is not supported",
            field="functional",
            fix=f"use a pseudopotential generated with one of {', '.join(FUNCTIONALS)}",
        )
    return FUNCTIONALS[key]


@dataclass(frozen=True)
class XCResult:
    """Exchange-correlation energy and potential on a grid.

    Attributes:
        energy: E_xc[n + n_core] in eV.
        potential: v_xc [nx, ny, nz] in eV.
        potential_integral: ∫ v_xc n dr over the valence density n only (eV), the
            double-counting term of the Harris-Foulkes energy (QE's ``deband`` part).
    """

    energy: float
    potential: np.ndarray
    potential_integral: float


def _gradient(field: np.ndarray, rgrid: ReciprocalGrid, mask: np.ndarray) -> np.ndarray:
    """∇ of a real periodic field by FFT, [3, nx, ny, nz] in (field units)/Bohr."""
    coefficients = bk.rfftn(field) * mask
    out = np.empty((3, *field.shape))
    for axis in range(3):
        g = rgrid.component(axis) * BOHR_ANGSTROM
        out[axis] = bk.irfftn(1j * g * coefficients, field.shape)
    return out


def _divergence(vector: np.ndarray, rgrid: ReciprocalGrid, mask: np.ndarray) -> np.ndarray:
    """∇· of a real periodic vector field [3, nx, ny, nz] by FFT, in (units)/Bohr."""
    total = np.zeros(rgrid.half_shape, dtype=complex)
    for axis in range(3):
        g = rgrid.component(axis) * BOHR_ANGSTROM
        total += 1j * g * bk.rfftn(vector[axis])
    return bk.irfftn(total * mask, vector.shape[1:])


def exchange_correlation(
    density: np.ndarray,
    cell: np.ndarray,
    functional_name: str,
    *,
    core_density: np.ndarray | None = None,
    ecutrho_ry: float | None = None,
) -> XCResult:
    """E_xc, v_xc and ∫ v_xc n of a valence density with an optional core density.

    Args:
        density: valence density n [nx, ny, nz], 1/Å³.
        cell: lattice vectors as rows [3, 3], Å.
        functional_name: canonical QE name ("PZ", "PW", "PBE", "PBESOL").
        core_density: n_core [nx, ny, nz], 1/Å³, for pseudopotentials with a non-linear
            core correction; None when none has one.
        ecutrho_ry: QE's density cutoff; gradients keep only G inside it. None keeps every
            G but the unpaired Nyquist ones.

    Returns:
        :class:`XCResult` in eV.
    """
    xc = functional(functional_name)
    from pyscf.dft import libxc  # imported here: pyscf takes ~0.5 s to load

    density = np.asarray(density, dtype=np.float64)
    shape = density.shape
    total = density if core_density is None else density + np.asarray(core_density, float)
    rgrid = ReciprocalGrid.of(cell, shape)
    voxel_bohr3 = rgrid.grid.voxel_volume / BOHR_ANGSTROM**3

    n_au = (total * BOHR_ANGSTROM**3).ravel()
    magnitude = np.abs(n_au)
    alive = magnitude > _VANISHING_DENSITY
    eps = np.zeros_like(n_au)
    v_rho = np.zeros_like(n_au)
    if xc.is_gga:
        mask = rgrid.within(ecutrho_ry) & ~rgrid.nyquist
        grad = _gradient(total * BOHR_ANGSTROM**3, rgrid, mask).reshape(3, -1)
        gradient_on = n_au > _GRADIENT_DENSITY
        rho = np.zeros((4, n_au.size))
        rho[0] = magnitude
        rho[1:, gradient_on] = grad[:, gradient_on]
        e, (vrho, vsigma, *_), *_ = libxc.eval_xc(xc.libxc_code, rho[:, alive], deriv=1)
        eps[alive], v_rho[alive] = e, vrho
        # dE/dn for a GGA: ∂e/∂n − ∇·(2 ∂e/∂σ ∇n), with σ = |∇n|².
        flux = np.zeros((3, n_au.size))
        sig = np.zeros(n_au.size)
        sig[alive] = vsigma
        flux[:, gradient_on] = 2.0 * sig[gradient_on] * grad[:, gradient_on]
        v_au = v_rho - _divergence(flux.reshape(3, *shape), rgrid, mask).ravel()
    else:
        e, (vrho, *_), *_ = libxc.eval_xc(xc.libxc_code, magnitude[alive], deriv=1)
        eps[alive], v_rho[alive] = e, vrho
        v_au = v_rho
    energy = float(np.sum(eps * n_au)) * voxel_bohr3 * HARTREE_EV
    potential = (v_au * HARTREE_EV).reshape(shape)
    potential_integral = float(np.sum(potential * density)) * rgrid.grid.voxel_volume
    return XCResult(energy, potential, potential_integral)
