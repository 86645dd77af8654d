"""Fermi-Dirac integrals of a density of states sampled on a uniform energy grid.

A density of states ``D`` (states/eV) sampled at the energies of an
:class:`~nearsight.grid.EnergyGrid` is integrated against the Fermi-Dirac occupation
``f(ε) = 1 / (1 + exp((ε - μ) / kT))`` to give, in eV and electrons,

- the electron count ``N = ∫ f D dε``,
- the band energy ``E_b = ∫ ε f D dε``,
- the entropy contribution ``-TS = ∫ kT [f ln f + (1 - f) ln(1 - f)] D dε`` (≤ 0 for D ≥ 0),
- the slope ``dN/dμ = ∫ f (1 - f) / kT D dε``.

All four are linear in ``D``, so each is a weight vector: ``N = weights.number @ D``, and the
same weights turn an LDOS ``[nx, ny, nz, ne]`` into the density by ``ldos @ weights.number``.

At room temperature kT ≈ 0.026 eV is a quarter of the usual 0.1 eV grid spacing, so
sampling ``f`` on the grid (trapezoid, Simpson) misplaces the Fermi step by a fraction of a
grid spacing. The default ``"analytic"`` method instead takes ``D`` to be the piecewise-linear
interpolant of its samples (zero outside ``[e_min, e_max]``) and integrates it against ``f``
exactly with complete Fermi-Dirac integrals, i.e. polylogarithms ``Li_n(-e^{-x})``,
``x = (ε - μ) / kT``; its only error is the interpolation of ``D`` itself.

Numerics of ``"analytic"``: every interval is split at ``μ``. A piece above ``μ`` is
integrated with antiderivatives in ``L_n(x) = Li_n(-e^{-x})``, ``x ≥ 0``, which are bounded and
decay like ``e^{-x}``. A piece below ``μ`` is mirrored to ``x ≥ 0``: there ``f = 1 - f(-x)``
(integrate the polynomial exactly, subtract the small hole part), while the entropy density
and ``f (1 - f)`` are even in ``x``. Deep states (``x ≈ -400``) thus never produce the large,
nearly cancelling polynomial parts of ``L_n(x < 0)``, and ``exp`` never overflows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import brentq
from scipy.special import bernoulli, expit, zeta

from nearsight.errors import InputError
from nearsight.grid import EnergyGrid
from nearsight.physics._backend import to_numpy

METHODS = ("analytic", "trapezoid", "simpson")
"""Integration methods accepted by :func:`integration_weights`."""

_BRACKET_KT = 40.0
"""The Fermi level is sought in ``[e_min - 40 kT, e_max + 40 kT]``; e^-40 ≈ 4e-18."""

_SERIES_TERMS = 56
"""Terms of ``Σ z^k / k^n`` for ``|z| ≤ 1/2``: the tail is below 2^-56 ≈ 1.4e-17."""

_ETA_TERMS = 32
"""Terms of the η series for ``|t| ≤ ln 2``: they shrink like (ln 2 / π)^k, 0.22^32 ≈ 1e-21."""

_SERIES_COEFFS = {
    order: 1.0 / np.arange(_SERIES_TERMS, 0, -1, dtype=float) ** order for order in (2, 3)
}
"""``1 / k^order`` for ``k = _SERIES_TERMS, ..., 1``, highest first for Horner's rule."""


def _eta_values(order: int) -> np.ndarray:
    """``η(order - k)`` for ``k < _ETA_TERMS``, the Dirichlet eta function (alternating ζ)."""
    eta = np.empty(_ETA_TERMS)
    # η(s) = (1 - 2^{1-s}) ζ(s) for s ≥ 2, η(1) = ln 2, η(0) = 1/2, and for m ≥ 1
    # η(-m) = (2^{m+1} - 1) B_{m+1} / (m + 1); scipy's B_1 = -1/2 convention makes η(0) a
    # special case.
    b = bernoulli(_ETA_TERMS + 1)
    for k in range(_ETA_TERMS):
        s = order - k
        if s >= 2:
            eta[k] = (1.0 - 2.0 ** (1 - s)) * zeta(s)
        elif s == 1:
            eta[k] = np.log(2.0)
        elif s == 0:
            eta[k] = 0.5
        else:
            m = -s
            eta[k] = (2.0 ** (m + 1) - 1.0) * b[m + 1] / (m + 1)
    return eta


_ETA_COEFFS = {
    order: _eta_values(order) / np.cumprod(np.r_[1.0, np.arange(1.0, _ETA_TERMS)])
    for order in (2, 3)
}
"""``η(order - k) / k!`` for the series ``Li_s(-e^t) = -Σ_k η(s - k) t^k / k!``."""


def _polylog_tail(order: int, x: np.ndarray) -> np.ndarray:
    """``Li_order(-e^{-x})`` for ``x ≥ 0`` (order 1, 2 or 3); bounded, ~ ``-e^{-x}`` for large x."""
    if order == 1:
        return -np.log1p(np.exp(-x))
    out = np.empty_like(x)
    far = x >= np.log(2.0)
    # |z| ≤ 1/2: the defining series, by Horner, keeps full relative accuracy as z -> 0.
    z = -np.exp(-x[far])
    acc = np.zeros_like(z)
    for c in _SERIES_COEFFS[order]:
        acc = acc * z + c
    out[far] = acc * z
    # 1/2 < |z| ≤ 1: expand around z = -1 in t = -x, where the series converges fast.
    t = -x[~far]
    acc = np.zeros_like(t)
    for c in _ETA_COEFFS[order][::-1]:
        acc = acc * t + c
    out[~far] = -acc
    return out


def polylog_neg_exp(order: int, x: ArrayLike) -> np.ndarray:
    """``Li_order(-e^{-x})`` for order 1, 2 or 3 and any real ``x`` (array of x's shape).

    For ``x < 0`` the inversion formulas (``y = -x > 0``)
    ``Li1(-e^y) = -y + Li1(-e^{-y})``, ``Li2(-e^y) = -π²/6 - y²/2 - Li2(-e^{-y})``,
    ``Li3(-e^y) = -π² y/6 - y³/6 + Li3(-e^{-y})`` reduce everything to ``|z| ≤ 1``, so
    nothing overflows; the absolute error there is about 1e-16 and the relative error
    about 1e-15 everywhere.
    """
    if order not in (1, 2, 3):
        raise ValueError(f"order must be 1, 2 or 3, got {order}")
    x = np.asarray(x, dtype=float)
    y = np.abs(x)
    tail = _polylog_tail(order, y)
    if order == 1:
        mirrored = -y + tail
    elif order == 2:
        mirrored = -(np.pi**2) / 6 - y**2 / 2 - tail
    else:
        mirrored = -(np.pi**2) * y / 6 - y**3 / 6 + tail
    return np.where(x < 0, mirrored, tail)


def fermi_function(energies_ev: ArrayLike, mu_ev: float, kt_ev: float) -> np.ndarray:
    """Occupation ``1 / (1 + exp((ε - μ) / kT))`` of ``energies_ev`` (eV, any shape).

    Accurate to full relative precision for any ``x = (ε - μ) / kT`` (no overflow); needs
    ``kt_ev > 0``.
    """
    _check_kt(kt_ev)
    return expit(-(np.asarray(energies_ev, dtype=float) - mu_ev) / kt_ev)


@dataclass(frozen=True)
class IntegrationWeights:
    """Weights that integrate a DOS ``D`` [n] (states/eV) sampled on an energy grid.

    Attributes:
        number: [n], eV; ``N = number @ D`` electrons.
        band: [n], eV²; ``E_b = band @ D`` eV.
        entropy: [n], eV²; ``-TS = entropy @ D`` eV.
        number_slope: [n], dimensionless; ``dN/dμ = number_slope @ D`` electrons/eV, equal to
            the derivative of ``number`` with respect to the Fermi energy.
    """

    number: np.ndarray
    band: np.ndarray
    entropy: np.ndarray
    number_slope: np.ndarray


@dataclass(frozen=True)
class BandObservables:
    """Fermi level and band quantities of one DOS (eV; count in electrons).

    ``number_of_electrons`` is the count integrated at the found ``fermi_energy``, which
    differs from the target only by the root-finder's tolerance.
    """

    fermi_energy: float
    number_of_electrons: float
    band_energy: float
    entropy_contribution: float


def integration_weights(
    energy_grid: EnergyGrid, fermi_energy_ev: float, kt_ev: float, method: str = "analytic"
) -> IntegrationWeights:
    """Weights for ``N``, ``E_b``, ``-TS`` and ``dN/dμ`` at Fermi energy ``fermi_energy_ev``.

    Args:
        energy_grid: the energies of the DOS samples (eV), at least two.
        fermi_energy_ev: μ, eV.
        kt_ev: thermal energy kT > 0, eV.
        method: ``"analytic"`` (exact for the piecewise-linear interpolant of D, zero outside
            the grid), ``"trapezoid"`` (samples of the integrand, end weights 1/2) or
            ``"simpson"`` (composite Simpson; for an even number of samples Simpson on the
            first ``n - 1`` and the trapezoid rule on the last interval).

    Returns:
        The weights, each [n] float64.
    """
    _check_method(method)
    _check_kt(kt_ev)
    if energy_grid.n < 2:
        raise InputError(
            f"an energy grid of {energy_grid.n} point cannot be integrated over",
            field="energy_grid",
            fix="use an energy grid of at least two energies",
        )
    if not np.isfinite(fermi_energy_ev):
        raise InputError(
            f"Fermi energy must be finite, got {fermi_energy_ev}", field="fermi_energy_ev"
        )
    if method == "analytic":
        return _analytic_weights(energy_grid, float(fermi_energy_ev), float(kt_ev))
    return _sampled_weights(energy_grid, float(fermi_energy_ev), float(kt_ev), method)


def _sampled_weights(
    energy_grid: EnergyGrid, mu: float, kt: float, method: str
) -> IntegrationWeights:
    """Trapezoid or Simpson weights: quadrature weights times the integrands at the samples."""
    n, de = energy_grid.n, energy_grid.de
    energies = energy_grid.energies
    quad = np.full(n, de)
    quad[[0, -1]] = de / 2
    if method == "simpson" and n >= 3:
        odd = n if n % 2 == 1 else n - 1
        quad[:odd] = de / 3 * np.where(np.arange(odd) % 2 == 1, 4.0, 2.0)
        quad[[0, odd - 1]] = de / 3
        if odd < n:
            # The trailing interval takes the trapezoid rule; its left end is shared.
            quad[odd - 1] += de / 2
            quad[-1] = de / 2
    x = (energies - mu) / kt
    occupation = expit(-x)
    return IntegrationWeights(
        number=quad * occupation,
        band=quad * energies * occupation,
        entropy=quad * kt * _entropy_density(np.abs(x)),
        number_slope=quad * occupation * expit(x) / kt,
    )


def _entropy_density(y: np.ndarray) -> np.ndarray:
    """``f ln f + (1 - f) ln(1 - f)`` at ``|x| = y ≥ 0`` (even in x): ``L1(y) - y f(y)``, ≤ 0."""
    return _polylog_tail(1, y) - y * expit(-y)


@dataclass(frozen=True)
class _Moments:
    """Moments ``∫_0^l w^k g(s + w) dw`` over pieces ``[s, s + l]`` with ``s ≥ 0`` (each [m])."""

    occupation: tuple[np.ndarray, np.ndarray, np.ndarray]  # g = f, k = 0, 1, 2
    entropy: tuple[np.ndarray, np.ndarray]  # g = f ln f + (1-f) ln(1-f), k = 0, 1
    slope: tuple[np.ndarray, np.ndarray]  # g = f (1 - f) = -df/dx, k = 0, 1


def _moments(s: np.ndarray, length: np.ndarray) -> _Moments:
    """The :class:`_Moments` of pieces starting at ``s ≥ 0`` of ``length`` (units of kT).

    The antiderivatives in ``u = x - s``, with ``L_n = Li_n(-e^{-x})`` and
    ``dL_n/dx = -L_{n-1}``, ``L_0 = -f``, are
    ``∫f = L1``, ``∫u f = u L1 + L2``, ``∫u² f = u² L1 + 2u L2 + 2 L3``;
    ``∫σ = -x L1 - 2 L2``, ``∫u σ = -x u L1 - (3u + s) L2 - 3 L3`` for ``σ = L1 - x f``;
    ``∫f(1-f) = -f``, ``∫u f(1-f) = -u f + L1``. All L_n here are at ``x ≥ 0``, so bounded.
    """
    t = s + length
    l1s, l2s, l3s = (_polylog_tail(n, s) for n in (1, 2, 3))
    l1t, l2t, l3t = (_polylog_tail(n, t) for n in (1, 2, 3))
    fs, ft = expit(-s), expit(-t)
    occupation = (
        l1t - l1s,
        length * l1t + (l2t - l2s),
        length**2 * l1t + 2 * length * l2t + 2 * (l3t - l3s),
    )
    entropy = (
        -t * l1t + s * l1s - 2 * (l2t - l2s),
        -t * length * l1t - (3 * length + s) * l2t + s * l2s - 3 * (l3t - l3s),
    )
    slope = (fs - ft, -length * ft + (l1t - l1s))
    return _Moments(occupation, entropy, slope)


def _analytic_weights(energy_grid: EnergyGrid, mu: float, kt: float) -> IntegrationWeights:
    """Exact weights of the piecewise-linear interpolant of D against the Fermi function.

    Each interval ``[ε_i, ε_{i+1}]`` (``h = Δ/kT`` long in x) is cut at μ into at most two
    pieces. A piece is described from its end nearest μ, energy ``e0``: the mirrored
    coordinate ``w ≥ 0`` runs away from μ (``x = x0 + d w``, ``d = +1`` above μ, ``-1`` below),
    and the piece is ``[|x0|, |x0| + l]`` in ``|x|``. On it the hats are linear in w,
    ``φ_right = (r0 + d w) / h`` and ``φ_left = 1 - φ_right`` with ``r0 = (e0 - ε_i) / kT``,
    and ``ε = e0 + d kT w``.

    The moments are differences of O(1) antiderivatives, so a piece's relative accuracy
    drops like ``1/l²`` once it is shorter than kT: about 4e-12 for ``kT = 200 Δ``, and
    ~1e-15 for ``kT ≤ Δ``; very short pieces next to μ only cost ~1e-16 kT absolute.
    """
    energies = energy_grid.energies
    de = energy_grid.de
    h = de / kt
    lo, hi = energies[:-1], energies[1:]
    index = np.arange(energy_grid.n - 1)

    above = lo >= mu  # whole interval above μ: one piece, from its lower end
    below = hi <= mu  # whole interval below μ: one piece, from its upper end
    cut = ~(above | below)
    # Pieces: whole intervals, then the parts above and below μ of each cut interval.
    interval = np.concatenate([index[above], index[below], index[cut], index[cut]])
    e0 = np.concatenate([lo[above], hi[below], np.full(2 * cut.sum(), mu)])
    d = np.concatenate(
        [np.ones(above.sum()), -np.ones(below.sum()), np.ones(cut.sum()), -np.ones(cut.sum())]
    )
    length = np.concatenate(
        [np.full(above.sum() + below.sum(), h), (hi[cut] - mu) / kt, (mu - lo[cut]) / kt]
    )
    start = np.abs(e0 - mu) / kt
    r0 = (e0 - energies[interval]) / kt

    m = _moments(start, length)
    occ, ent, slope = m.occupation, m.entropy, m.slope
    # Below μ, f = 1 - f(|x|): integrate the polynomial exactly and subtract the hole part.
    is_below = d < 0
    power = (length, length**2 / 2, length**3 / 3)
    occ = tuple(np.where(is_below, p - mk, mk) for p, mk in zip(power, occ, strict=True))

    # ∫ (c0 + c1 w + c2 w²) g dw from the moments; the hats (right; left = 1 - right) and
    # ε times the hats are these polynomials.
    right = (r0 / h, d / h)
    left = ((h - r0) / h, -d / h)
    e_right = (e0 * r0 / h, d * (e0 + kt * r0) / h, np.full_like(e0, kt / h))
    e_left = (e0 * (h - r0) / h, d * (kt * (h - r0) - e0) / h, np.full_like(e0, -kt / h))

    def integral(coeffs: tuple[np.ndarray, ...], moments: tuple[np.ndarray, ...]) -> np.ndarray:
        # Not strict: the linear hats need only the first two of the three f moments.
        return sum(c * mk for c, mk in zip(coeffs, moments, strict=False))

    def scatter(on_left: np.ndarray, on_right: np.ndarray) -> np.ndarray:
        n = energy_grid.n
        return np.bincount(interval, on_left, minlength=n) + np.bincount(
            interval + 1, on_right, minlength=n
        )

    return IntegrationWeights(
        number=kt * scatter(integral(left, occ), integral(right, occ)),
        band=kt * scatter(integral(e_left, occ), integral(e_right, occ)),
        entropy=kt**2 * scatter(integral(left, ent), integral(right, ent)),
        number_slope=scatter(integral(left, slope), integral(right, slope)),
    )


def fermi_level(
    dos: np.ndarray,
    energy_grid: EnergyGrid,
    number_of_electrons: float,
    kt_ev: float,
    method: str = "analytic",
    tol: float = 1e-12,
) -> float:
    """The Fermi energy μ (eV) at which the DOS holds ``number_of_electrons``.

    Args:
        dos: D [n] (states/eV) on ``energy_grid``; a numpy array or a torch tensor.
        energy_grid: the energies of the samples (eV).
        number_of_electrons: the target count, > 0.
        kt_ev: thermal energy kT > 0, eV.
        method: one of :data:`METHODS`, see :func:`integration_weights`.
        tol: absolute tolerance on μ, eV.

    ``N(μ)`` is sought in ``[e_min - 40 kT, e_max + 40 kT]`` by Brent's method. It is
    non-decreasing, hence the root unique up to gaps in the DOS, only if ``D ≥ 0``; samples
    of a predicted DOS may be slightly negative and are accepted, but then the root found is
    one of possibly several.

    Raises:
        InputError: bad inputs, or a count the energy window cannot hold.
    """
    dos = _check_dos(dos, energy_grid)
    _check_method(method)
    _check_kt(kt_ev)
    if not (np.isfinite(number_of_electrons) and number_of_electrons > 0):
        raise InputError(
            f"number of electrons must be finite and > 0, got {number_of_electrons}",
            field="number_of_electrons",
            fix="give the number of valence electrons of the cell",
        )

    def count(mu: float) -> float:
        return float(integration_weights(energy_grid, mu, kt_ev, method).number @ dos)

    bottom = energy_grid.e_min - _BRACKET_KT * kt_ev
    top = energy_grid.e_max + _BRACKET_KT * kt_ev
    n_top = count(top)
    if n_top < number_of_electrons:
        raise InputError(
            f"the energy window [{energy_grid.e_min:g}, {energy_grid.e_max:g}] eV holds only "
            f"{n_top:.6g} electrons, fewer than the {number_of_electrons:.6g} asked for",
            field="energy_grid",
            fix="extend the energy window higher (raise e_max: more LDOS energies, "
            "ldos.count) so that it covers the Fermi level with room to spare",
        )
    n_bottom = count(bottom)
    if n_bottom > number_of_electrons:
        raise InputError(
            f"with the Fermi level {_BRACKET_KT:g} kT below the energy window "
            f"[{energy_grid.e_min:g}, {energy_grid.e_max:g}] eV the DOS still holds "
            f"{n_bottom:.6g} electrons, more than the {number_of_electrons:.6g} asked for",
            field="number_of_electrons",
            fix="check the number of electrons, or lower e_min (ldos.emin_ev)",
        )
    return float(brentq(lambda mu: count(mu) - number_of_electrons, bottom, top, xtol=tol))


def band_observables(
    dos: np.ndarray,
    energy_grid: EnergyGrid,
    number_of_electrons: float,
    kt_ev: float,
    method: str = "analytic",
) -> BandObservables:
    """Fermi level, count, band energy and ``-TS`` (eV) of a DOS [n] (states/eV).

    The arguments and errors are those of :func:`fermi_level`.
    """
    dos = _check_dos(dos, energy_grid)
    mu = fermi_level(dos, energy_grid, number_of_electrons, kt_ev, method)
    weights = integration_weights(energy_grid, mu, kt_ev, method)
    return BandObservables(
        fermi_energy=mu,
        number_of_electrons=float(weights.number @ dos),
        band_energy=float(weights.band @ dos),
        entropy_contribution=float(weights.entropy @ dos),
    )


def _check_dos(dos: np.ndarray, energy_grid: EnergyGrid) -> np.ndarray:
    dos = np.asarray(to_numpy(dos), dtype=float)
    if dos.shape != (energy_grid.n,):
        raise InputError(
            f"DOS has shape {dos.shape}, the energy grid has {energy_grid.n} energies",
            field="dos",
            fix=f"give one DOS value per energy, shape ({energy_grid.n},)",
        )
    if not np.all(np.isfinite(dos)):
        raise InputError(
            f"DOS has {np.count_nonzero(~np.isfinite(dos))} non-finite values (NaN or inf)",
            field="dos",
            fix="check the model's prediction or the LDOS files it was summed from",
        )
    return dos


def _check_kt(kt_ev: float) -> None:
    if not (np.isfinite(kt_ev) and kt_ev > 0):
        raise InputError(
            f"kT must be finite and > 0 eV, got {kt_ev}",
            field="kt_ev",
            fix="give a positive electronic temperature (room temperature: kT = 0.0257 eV)",
        )


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise InputError(
            f"unknown integration method {method!r}",
            field="method",
            fix=f"use one of {', '.join(METHODS)}",
        )
