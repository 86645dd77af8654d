"""Fermi-Dirac integration: exact for the interpolated DOS, and better than sampling f."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from scipy.special import expit

from nearsight.errors import InputError
from nearsight.grid import EnergyGrid
from nearsight.physics.fermi import (
    METHODS,
    band_observables,
    fermi_function,
    fermi_level,
    integration_weights,
    polylog_neg_exp,
)
from nearsight.units import kelvin_to_ev

KT_ROOM = kelvin_to_ev(298.0)


def quadrature(
    energy_grid: EnergyGrid,
    dos,
    mu: float,
    kt: float,
    panels: int = 8,
    order: int = 20,
) -> np.ndarray:
    """[N, E_b, -TS, dN/dμ] of ``dos`` against f by composite Gauss-Legendre on the window.

    ``dos`` is samples [n] (then the piecewise-linear interpolant is integrated) or a
    callable. Every grid interval, cut at μ, gets ``panels`` panels of ``order`` nodes: the
    integrand is smooth on each, and the poles of f lie πkT ≈ 0.08 eV off the real axis at
    room temperature, far beyond a 0.0125 eV panel, so this converges to rounding.
    """
    e = energy_grid.energies
    nodes, node_weights = np.polynomial.legendre.leggauss(order)
    cuts = np.unique(np.r_[e, np.clip(mu, e[0], e[-1])])
    edges = np.concatenate(
        [np.linspace(a, b, panels + 1)[:-1] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
        + [cuts[-1:]]
    )
    a, b = edges[:-1, None], edges[1:, None]
    eps = (a + b) / 2 + (b - a) / 2 * nodes
    w = (b - a) / 2 * node_weights
    d = dos(eps) if callable(dos) else np.interp(eps, e, dos)
    x = (eps - mu) / kt
    f, hole = expit(-x), expit(x)
    # f ln f + (1-f) ln(1-f) with ln f = -ln(1 + e^x): no 1 - f rounding for deep states.
    sigma = -(f * np.logaddexp(0, x) + hole * np.logaddexp(0, -x))
    return np.array(
        [
            np.sum(w * f * d),
            np.sum(w * eps * f * d),
            np.sum(w * kt * sigma * d),
            np.sum(w * f * hole / kt * d),
        ]
    )


def integrals(energy_grid: EnergyGrid, dos, mu: float, kt: float, method: str) -> np.ndarray:
    """[N, E_b, -TS, dN/dμ] from the weights of ``method``."""
    w = integration_weights(energy_grid, mu, kt, method)
    return np.array([w.number @ dos, w.band @ dos, w.entropy @ dos, w.number_slope @ dos])


def reference_polylog(order: int, x: float) -> float:
    z = -mpmath.exp(-mpmath.mpf(x))
    if order == 1:
        # mpmath's Li1 is -log(1 - z) at working precision, which rounds to 0 for |z| < 1e-40.
        return float(-mpmath.log1p(-z))
    return float(mpmath.polylog(order, z))


@pytest.mark.parametrize("order", [1, 2, 3])
def test_polylog_matches_mpmath(order: int) -> None:
    ln2 = np.log(2.0)
    xs = np.r_[
        np.linspace(-700.0, 700.0, 141),
        [0.0, 1e-9, -1e-9, 0.3, -0.3, 2.0, -2.0, 36.0, -36.0],
        [ln2, -ln2, np.nextafter(ln2, 0), np.nextafter(ln2, 1), np.nextafter(-ln2, 0)],
    ]
    with mpmath.workdps(40):
        ref = np.array([reference_polylog(order, x) for x in xs])
    got = polylog_neg_exp(order, xs)
    assert got.shape == xs.shape
    # No L_n(x) changes sign or vanishes (|L_n| >= e^-700 ~ 1e-304), so relative error is
    # meaningful everywhere.
    np.testing.assert_allclose(got, ref, rtol=1e-13, atol=0)
    with pytest.raises(ValueError, match="order"):
        polylog_neg_exp(4, 1.0)


def test_fermi_function_is_stable() -> None:
    e = np.array([-1e3, -1.0, 0.0, 1.0, 1e3])
    with np.errstate(all="raise"):
        f = fermi_function(e, 0.0, KT_ROOM)
    assert f[2] == 0.5 and f[0] == 1.0 and f[-1] == 0.0
    np.testing.assert_allclose(f + fermi_function(-e, 0.0, KT_ROOM), 1.0, rtol=1e-15)
    assert fermi_function(1.0, 0.0, KT_ROOM) == pytest.approx(np.exp(-1.0 / KT_ROOM), rel=1e-12)
    with pytest.raises(InputError, match="kT"):
        fermi_function(e, 0.0, 0.0)


@pytest.mark.parametrize(
    "mu",
    [
        -3.0,  # on a grid point
        -3.0 + 0.0371,  # between grid points
        -3.0 + 1e-11,  # a sliver of an interval on one side
        -10.0,  # on the lower edge
        -10.3,  # below the window: everything nearly empty
        5.4,  # above the window: entropy and slope from the tail only
    ],
)
def test_analytic_weights_integrate_the_interpolant_exactly(mu: float) -> None:
    grid = EnergyGrid(-10.0, 0.1, 151)
    dos = np.random.default_rng(7).uniform(0.2, 3.0, grid.n)
    ref = quadrature(grid, dos, mu, KT_ROOM)
    # The reference is converged: twice the panels, more nodes, same numbers.
    np.testing.assert_allclose(
        quadrature(grid, dos, mu, KT_ROOM, panels=16, order=24), ref, rtol=1e-13
    )
    got = integrals(grid, dos, mu, KT_ROOM, "analytic")
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=0)
    assert got[2] < 0


def test_analytic_beats_sampling_on_a_smooth_dos() -> None:
    """Errors against the true smooth DOS, worst over the position of μ in an interval.

    Measured (eV or electrons; worst of 10 positions of μ in [7.0, 7.1), kT = 298 K):

        method      N        E_b      -TS      dN/dμ
        analytic    1.6e-5   6.5e-4   1.4e-7   6.6e-5
        trapezoid   2.5e-3   1.7e-2   1.6e-4   1.6e-1
        simpson     1.2e-2   8.2e-2   6.5e-4   4.5e-1

    The analytic error is the interpolation error of D alone (hardly changes with μ), so
    the integral of ε D over the whole occupied band dominates E_b; the sampled methods add
    the error of sampling a Fermi step only ~4 kT wide per grid spacing, which depends on
    where μ falls (trapezoid is nearly exact for N when μ sits on or midway between grid
    points). The bounds leave a margin of 2-3x over the measured ratios (N 0.006,
    E_b 0.04, -TS 0.0009, dN/dμ 0.0004).
    """

    def smooth_dos(e: np.ndarray) -> np.ndarray:
        # Free-electron sqrt DOS from a band bottom below the window, gently modulated.
        return 0.3 * np.sqrt(e + 8.0) * (1.0 + 0.1 * np.sin(e))

    grid = EnergyGrid(-5.0, 0.1, 176)
    dos = smooth_dos(grid.energies)
    errors = {method: [] for method in METHODS}
    for mu in 7.0 + 0.01 * np.arange(10):
        truth = quadrature(grid, smooth_dos, mu, KT_ROOM, panels=50)
        for method in METHODS:
            errors[method].append(np.abs(integrals(grid, dos, mu, KT_ROOM, method) - truth))
    worst = {method: np.max(e, axis=0) for method, e in errors.items()}
    for method, e in worst.items():
        print(f"{method:10s} N {e[0]:.1e}  E_b {e[1]:.1e}  -TS {e[2]:.1e}  dN/dmu {e[3]:.1e}")
    bounds = np.array([0.02, 0.1, 0.003, 0.002])
    assert np.all(worst["analytic"] < bounds * worst["trapezoid"])
    assert np.all(worst["analytic"] < bounds * worst["simpson"])
    assert worst["analytic"][0] < 3e-5 and worst["analytic"][1] < 1e-3


def test_sommerfeld_limit_and_entropy_sign() -> None:
    # μ mid-interval and kT <= 1e-3 eV: the interpolant is linear, D0 + D1 (ε - μ), over
    # >= 50 kT on either side, so N = ∫_{e_min}^μ D + (π²/6) kT² D1 and
    # -TS = -(π²/3) kT² D0 hold up to e^-50.
    grid = EnergyGrid(-2.0, 0.1, 41)
    dos = np.random.default_rng(3).uniform(0.5, 2.0, grid.n)
    mu = 0.05
    i = np.searchsorted(grid.energies, mu) - 1
    d1 = (dos[i + 1] - dos[i]) / grid.de
    d0 = dos[i] + d1 * (mu - grid.energies[i])
    below = np.trapezoid(dos[: i + 1], dx=grid.de) + (mu - grid.energies[i]) * (dos[i] + d0) / 2
    for kt in (1e-3, 1e-4, 1e-6):
        n, _, minus_ts, _ = integrals(grid, dos, mu, kt, "analytic")
        assert minus_ts == pytest.approx(-(np.pi**2) / 3 * kt**2 * d0, rel=1e-12)
        assert n == pytest.approx(below + np.pi**2 / 6 * kt**2 * d1, rel=1e-13)
    entropies = [integrals(grid, dos, mu, kt, "analytic")[2] for kt in (0.3, 0.1, 0.0257, 1e-3)]
    assert all(s < 0 for s in entropies)
    assert np.all(np.diff(entropies) > 0)  # rises to 0 as kT -> 0
    assert entropies[-1] > -1e-5


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mu", [-3.0, -2.9629])
def test_number_slope_is_the_derivative_of_the_count(method: str, mu: float) -> None:
    grid = EnergyGrid(-10.0, 0.1, 151)
    dos = np.random.default_rng(11).uniform(0.2, 3.0, grid.n)
    step = 1e-5
    slope = (
        integrals(grid, dos, mu + step, KT_ROOM, method)[0]
        - integrals(grid, dos, mu - step, KT_ROOM, method)[0]
    ) / (2 * step)
    assert integrals(grid, dos, mu, KT_ROOM, method)[3] == pytest.approx(slope, rel=1e-7)


@pytest.mark.parametrize("n", [7, 8])
def test_sampled_weights_integrate_polynomials(n: int) -> None:
    # μ far above the window: f = 1, so the number weights are plain quadrature weights.
    grid = EnergyGrid(1.0, 0.5, n)
    e = grid.energies
    length = grid.e_max - grid.e_min
    trapezoid = integration_weights(grid, 100.0, KT_ROOM, "trapezoid").number
    simpson = integration_weights(grid, 100.0, KT_ROOM, "simpson").number
    assert trapezoid @ e == pytest.approx((grid.e_max**2 - grid.e_min**2) / 2, rel=1e-14)
    assert simpson.sum() == pytest.approx(length, rel=1e-14)
    # Odd n: Simpson, exact for cubics. Even n: Simpson (exact) up to the second-last point,
    # then the trapezoid rule on the last interval.
    if n % 2 == 1:
        cubic = (e[-1] ** 4 - e[0] ** 4) / 4
    else:
        cubic = (e[-2] ** 4 - e[0] ** 4) / 4 + grid.de * (e[-2] ** 3 + e[-1] ** 3) / 2
    assert simpson @ e**3 == pytest.approx(cubic, rel=1e-14)


def test_fermi_level_of_a_constant_dos() -> None:
    # A constant DOS c on the window holds c kT [ln(1 + e^{(μ-e_min)/kT}) - (same at e_max)].
    grid = EnergyGrid(-5.0, 0.1, 101)
    c, mu0 = 2.0, 1.23456789
    target = (
        c
        * KT_ROOM
        * (
            np.logaddexp(0, (mu0 - grid.e_min) / KT_ROOM)
            - np.logaddexp(0, (mu0 - grid.e_max) / KT_ROOM)
        )
    )
    dos = np.full(grid.n, c)
    obs = band_observables(dos, grid, target, KT_ROOM)
    assert obs.fermi_energy == pytest.approx(mu0, abs=1e-9)
    assert obs.number_of_electrons == pytest.approx(target, rel=1e-10)
    ref = quadrature(grid, dos, obs.fermi_energy, KT_ROOM)
    assert obs.band_energy == pytest.approx(ref[1], rel=1e-10)
    # Far from the window's edges the Sommerfeld result is exact for a constant DOS.
    assert obs.entropy_contribution == pytest.approx(-(np.pi**2) / 3 * KT_ROOM**2 * c, rel=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_fermi_level_hits_the_count(method: str) -> None:
    grid = EnergyGrid(-5.0, 0.1, 176)
    dos = np.random.default_rng(5).uniform(0.0, 4.0, grid.n)
    dos[10:13] = -0.05  # a predicted DOS may dip below zero; it is accepted
    mu = fermi_level(dos, grid, 20.5, KT_ROOM, method)
    count = integration_weights(grid, mu, KT_ROOM, method).number @ dos
    assert count == pytest.approx(20.5, rel=1e-10)
    assert grid.e_min < mu < grid.e_max


def test_fermi_level_names_a_window_too_small() -> None:
    grid = EnergyGrid(-5.0, 0.1, 51)
    dos = np.ones(grid.n)
    with pytest.raises(InputError, match="holds only 5 electrons") as info:
        fermi_level(dos, grid, 8.0, KT_ROOM)
    assert info.value.field == "energy_grid" and "higher" in info.value.fix
    assert "e_max" in info.value.fix
    with pytest.raises(InputError, match="below the energy window") as info:
        fermi_level(dos, grid, 1e-30, KT_ROOM)
    assert info.value.field == "number_of_electrons"


@pytest.mark.parametrize(
    ("kwargs", "field", "match"),
    [
        ({"dos": np.ones(50)}, "dos", "shape"),
        ({"dos": np.ones((51, 1))}, "dos", "shape"),
        ({"dos": np.r_[np.ones(50), np.nan]}, "dos", "non-finite"),
        ({"dos": np.r_[np.ones(50), np.inf]}, "dos", "non-finite"),
        ({"kt_ev": 0.0}, "kt_ev", "kT"),
        ({"kt_ev": -0.1}, "kt_ev", "kT"),
        ({"kt_ev": np.nan}, "kt_ev", "kT"),
        ({"kt_ev": np.inf}, "kt_ev", "kT"),
        ({"number_of_electrons": 0.0}, "number_of_electrons", "electrons"),
        ({"number_of_electrons": np.nan}, "number_of_electrons", "electrons"),
        ({"method": "gauss"}, "method", "gauss"),
    ],
)
def test_fermi_level_rejects_bad_input(kwargs: dict, field: str, match: str) -> None:
    args = {
        "dos": np.ones(51),
        "energy_grid": EnergyGrid(-5.0, 0.1, 51),
        "number_of_electrons": 2.0,
        "kt_ev": KT_ROOM,
    } | kwargs
    with pytest.raises(InputError, match=match) as info:
        fermi_level(**args)
    assert info.value.field == field and info.value.fix
    if field == "method":
        assert all(m in info.value.fix for m in METHODS)
