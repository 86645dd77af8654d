"""QE's values beside ours: its printed terms, and the band energy from its eigenvalues.

QE prints the one-electron, Hartree, xc, Ewald and smearing (−TS) terms and the total, but
not the band energy E_b = Σ_k w_k Σ_j f(ε_kj) ε_kj; that is computed here from the printed
eigenvalues and k-point weights, with the Fermi level refitted to the exact electron count
(QE prints E_F to 0.1 meV, too coarse for a 1e-4 electron count).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from nearsight.errors import InputError
from nearsight.physics.fermi import fermi_function

ENERGY_KEYS = (
    "fermi_energy",
    "number_of_electrons",
    "band_energy",
    "entropy_contribution",
    "one_electron",
    "hartree",
    "xc",
    "ewald",
    "total_energy",
)
"""The observables reported by ``nearsight energy`` and ``predict``, in report order."""


@dataclass(frozen=True)
class EigenvalueBand:
    """Band terms from Kohn-Sham eigenvalues (eV)."""

    fermi_energy: float
    band_energy: float
    entropy_contribution: float


def band_from_eigenvalues(
    eigenvalues: np.ndarray, k_weights: np.ndarray, number_of_electrons: float, kt_ev: float
) -> EigenvalueBand:
    """E_F, E_b and −TS of Fermi-Dirac occupied levels.

    Args:
        eigenvalues: [nk, nbands] eV.
        k_weights: [nk], summing to 2 (spin included), as QE prints them.
        number_of_electrons: the count to fit E_F to.
        kt_ev: k_B T, eV.
    """
    eig = np.asarray(eigenvalues, dtype=float)
    w = np.asarray(k_weights, dtype=float)[:, None]
    if eig.size == 0:
        raise InputError(
            "pw.x printed no eigenvalues",
            field="eigenvalues",
            fix="run pw.x with verbosity='high' (more than 100 k-points hides them)",
        )
    if number_of_electrons >= 2 * eig.shape[1] * (w.sum() / 2):
        raise InputError(
            f"{eig.shape[1]} bands cannot hold {number_of_electrons} electrons",
            field="nbnd",
            fix="run pw.x with more bands",
        )

    def excess(mu: float) -> float:
        return float(np.sum(w * fermi_function(eig, mu, kt_ev))) - number_of_electrons

    lo, hi = eig.min() - 50 * kt_ev, eig.max() + 50 * kt_ev
    mu = brentq(excess, lo, hi, xtol=1e-13, rtol=1e-15, maxiter=400)
    f = fermi_function(eig, mu, kt_ev)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where((f > 0) & (f < 1), f * np.log(f) + (1 - f) * np.log1p(-f), 0.0)
    return EigenvalueBand(
        fermi_energy=mu,
        band_energy=float(np.sum(w * f * eig)),
        entropy_contribution=float(kt_ev * np.sum(w * s)),
    )


def qe_values(
    energies: dict[str, float],
    fermi_energy: float | None,
    number_of_electrons: float,
    band: EigenvalueBand | None,
) -> dict[str, float]:
    """QE's numbers under the keys of :data:`ENERGY_KEYS` (those QE has).

    Args:
        energies: QE's printed terms in eV (``total, one_electron, hartree, xc, ewald,
            smearing``, as :class:`nearsight.io.qe_output.QEEnergies` names them).
        fermi_energy: QE's printed Fermi level (eV).
        number_of_electrons: QE's electron count.
        band: the band terms from QE's eigenvalues, if it printed them.
    """
    out: dict[str, float] = {"number_of_electrons": float(number_of_electrons)}
    if fermi_energy is not None:
        out["fermi_energy"] = float(fermi_energy)
    if band is not None:
        out["band_energy"] = band.band_energy
    renames = {
        "smearing": "entropy_contribution",
        "one_electron": "one_electron",
        "hartree": "hartree",
        "xc": "xc",
        "ewald": "ewald",
        "total": "total_energy",
    }
    for qe_key, key in renames.items():
        value = energies.get(qe_key)
        if value is not None:
            out[key] = float(value)
    return {k: out[k] for k in ENERGY_KEYS if k in out}
