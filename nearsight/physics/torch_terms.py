"""Differentiable versions of the terms whose kernels are not torch code.

The Fermi level comes from root finding and the exchange-correlation from libxc; both run in
numpy, so autograd needs their derivatives spelled out:

- Fermi level: N(μ, D) = N_e fixes μ, so dμ/dD = -w_N / (dN/dμ) (implicit function).
  :func:`fermi_weights` returns the integration weights at μ(D) with that chain rule; the
  μ-derivatives of the band and entropy weights are central differences (h = 1e-5 kT,
  relative error ~1e-10).
- Exchange-correlation: dE_xc/dn = v_xc, and d(∫ v_xc n)/dn = v_xc + K n with K the xc
  kernel; K n is the directional derivative of v_xc along n, taken as a central difference
  (relative step 1e-4, error ~1e-8).

Imported only when the input is a torch tensor.
"""

from __future__ import annotations

import numpy as np
import torch

from nearsight.grid import EnergyGrid
from nearsight.physics.fermi import fermi_level, integration_weights
from nearsight.physics.xc import exchange_correlation

_FERMI_STEP_KT = 1e-5
_XC_STEP = 1e-4


def _weights(grid: EnergyGrid, mu: float, kt: float, method: str) -> np.ndarray:
    w = integration_weights(grid, mu, kt, method)
    return np.stack([w.number, w.band, w.entropy])


class _FermiWeights(torch.autograd.Function):
    @staticmethod
    def forward(ctx, dos, grid, n_electrons, kt, method):
        dos_np = dos.detach().cpu().numpy()
        mu = fermi_level(dos_np, grid, n_electrons, kt, method)
        w = integration_weights(grid, mu, kt, method)
        h = _FERMI_STEP_KT * kt
        slope = (_weights(grid, mu + h, kt, method) - _weights(grid, mu - h, kt, method)) / (2 * h)
        # N(μ, D) = N_e held fixed: dμ/dD_i = -w_N[i] / (dN/dμ).
        d_mu_d_dos = -w.number / float(w.number_slope @ dos_np)
        ctx.save_for_backward(
            torch.as_tensor(slope, device=dos.device),
            torch.as_tensor(d_mu_d_dos, device=dos.device),
        )
        out = torch.as_tensor(np.stack([w.number, w.band, w.entropy]), device=dos.device)
        return out, torch.tensor(mu, dtype=torch.float64, device=dos.device)

    @staticmethod
    def backward(ctx, grad_weights, grad_mu):
        slope, d_mu_d_dos = ctx.saved_tensors
        d_loss_d_mu = (grad_weights * slope).sum() + grad_mu
        return d_loss_d_mu * d_mu_d_dos, None, None, None, None


def fermi_weights(
    dos: torch.Tensor, grid: EnergyGrid, n_electrons: float, kt: float, method: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights [3, ne] (number, band, entropy) at the Fermi level of ``dos``, and μ (eV).

    Differentiable with respect to ``dos`` [ne] (float64), through μ(D).
    """
    return _FermiWeights.apply(dos, grid, n_electrons, kt, method)


class _XCTerms(torch.autograd.Function):
    @staticmethod
    def forward(ctx, density, cell, functional, core, ecutrho_ry):
        n = density.detach().cpu().numpy()

        def run(field):
            return exchange_correlation(
                field, cell, functional, core_density=core, ecutrho_ry=ecutrho_ry
            )

        result = run(n)
        kernel_n = (run(n * (1 + _XC_STEP)).potential - run(n * (1 - _XC_STEP)).potential) / (
            2 * _XC_STEP
        )
        voxel = abs(float(np.linalg.det(cell))) / n.size
        ctx.save_for_backward(
            torch.as_tensor(result.potential * voxel, device=density.device),
            torch.as_tensor((result.potential + kernel_n) * voxel, device=density.device),
        )
        energy = torch.tensor(result.energy, dtype=torch.float64, device=density.device)
        integral = torch.tensor(
            result.potential_integral, dtype=torch.float64, device=density.device
        )
        return energy, integral

    @staticmethod
    def backward(ctx, grad_energy, grad_integral):
        d_energy, d_integral = ctx.saved_tensors
        return grad_energy * d_energy + grad_integral * d_integral, None, None, None, None


def xc_terms(
    density: torch.Tensor,
    cell: np.ndarray,
    functional: str,
    core: np.ndarray | None,
    ecutrho_ry: float | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """E_xc[n + n_core] and ∫ v_xc n (eV) as differentiable functions of ``density``."""
    return _XCTerms.apply(density, np.asarray(cell, dtype=float), functional, core, ecutrho_ry)
