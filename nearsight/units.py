"""Unit conversions, in one place.

nearsight works in eV, Å and K. Quantum ESPRESSO writes Rydberg and Bohr; those are
converted at the ``io/`` boundary with the constants below. The values are CODATA 2018,
the set Quantum ESPRESSO 6.x uses, so converted numbers agree with QE's own printouts.
"""

from __future__ import annotations

HARTREE_EV = 27.211386245988
"""One Hartree in eV."""
RYDBERG_EV = HARTREE_EV / 2.0
"""One Rydberg in eV."""
BOHR_ANGSTROM = 0.529177210903
"""One Bohr radius in Å."""
BOLTZMANN_EV_PER_K = 8.617333262e-5
"""Boltzmann constant in eV/K."""

BOHR3_ANGSTROM3 = BOHR_ANGSTROM**3
"""One Bohr³ in Å³."""


def ry_to_ev(value):
    """Rydberg -> eV (scalars or arrays)."""
    return value * RYDBERG_EV


def ev_to_ry(value):
    """eV -> Rydberg (scalars or arrays)."""
    return value / RYDBERG_EV


def bohr_to_angstrom(value):
    """Bohr -> Å (scalars or arrays)."""
    return value * BOHR_ANGSTROM


def angstrom_to_bohr(value):
    """Å -> Bohr (scalars or arrays)."""
    return value / BOHR_ANGSTROM


def kelvin_to_ev(temperature_k: float) -> float:
    """Thermal energy k_B T in eV for a temperature in K."""
    return temperature_k * BOLTZMANN_EV_PER_K


def kelvin_to_ry(temperature_k: float) -> float:
    """Thermal energy k_B T in Ry for a temperature in K (QE's ``degauss``)."""
    return kelvin_to_ev(temperature_k) / RYDBERG_EV
