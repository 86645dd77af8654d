"""How close the total energy from a DFT LDOS comes to QE's, by LDOS spacing and broadening.

    python benchmarks/ldos_broadening.py            # 3 broadenings x 2 spacings (~4 min)
    python benchmarks/ldos_broadening.py --quick    # 0.1 and 0.025 eV at spacing = width

For the first bundled 4-atom Al snapshot (examples/al/al4.toml: PBE with core correction,
4x4x4 k-points, 298 K), runs pw.x + pp.x through the real pipeline once per (degauss_ldos,
delta_e), then computes the Fermi level, band energy and total free energy from the stored
LDOS with each integration method. Prints the differences from QE: E_F (meV), band energy
(meV/atom, against Σ_k w_k Σ_j f(ε) ε from QE's eigenvalues), total energy (meV/atom,
against QE's printed total) and the density against pp.x's (MAPE %). Writes
benchmarks/results/ldos_broadening.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import tempfile
import time
from pathlib import Path

from nearsight.config import load_config
from nearsight.dft.runner import check_qe, run_snapshot
from nearsight.energy_report import density_mape_percent
from nearsight.io.dataset import read_snapshot
from nearsight.physics.energy import total_energy
from nearsight.physics.fermi import METHODS
from nearsight.physics.reference import band_from_eigenvalues
from nearsight.physics.system import EnergySystem

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "ldos_broadening.json"
WINDOW_EV = (-5.0, 9.5)
"""From 1.8 eV under the band bottom to 2 eV over E_F (7.5 eV): 14 widths either side."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two cases only")
    args = parser.parse_args()
    config, base_dir = load_config(ROOT / "examples" / "al" / "al4.toml")
    check_qe(config.dft)
    atoms = read_snapshot(ROOT / "examples" / "al" / "data" / "al4_000.h5", ldos=False).atoms
    if args.quick:
        cases = [(0.1, 0.1), (0.025, 0.025)]
    else:
        cases = [(w, s) for w in (0.1, 0.05, 0.025) for s in (w, w / 2)]
    records = []
    for width, spacing in cases:
        count = math.floor((WINDOW_EV[1] - WINDOW_EV[0]) / spacing + 1e-9) + 1
        ldos = dataclasses.replace(
            config.ldos, emin_ev=WINDOW_EV[0], de_ev=spacing, count=count, degauss_ev=width
        )
        case = dataclasses.replace(config, ldos=ldos)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "snap.h5"
            run = run_snapshot(atoms, case, base_dir / config.dft.pseudo_dir, out, Path(tmp) / "w")
            snap = read_snapshot(out)
        system = EnergySystem.from_snapshot(snap, out)
        qe = snap.qe
        ref = band_from_eigenvalues(
            qe.eigenvalues, qe.k_weights, qe.number_of_electrons, system.kt_ev
        )
        per_atom = 1e3 / len(atoms)
        for method in METHODS:
            start = time.perf_counter()
            terms, density = total_energy(snap.ldos, snap.energy_grid, system, method=method)
            seconds = time.perf_counter() - start
            records.append(
                {
                    "degauss_ldos_ev": width,
                    "delta_e_ev": spacing,
                    "energies": count,
                    "method": method,
                    "fermi_mev": 1e3 * (terms.fermi_energy - qe.fermi_energy),
                    "band_mev_per_atom": per_atom * (terms.band_energy - ref.band_energy),
                    "entropy_mev_per_atom": per_atom
                    * (terms.entropy_contribution - qe.energies["smearing"]),
                    "total_mev_per_atom": per_atom * (terms.total_energy - qe.energies["total"]),
                    "density_mape_percent": density_mape_percent(density, snap.density),
                    "pp_ldos_seconds": run.pp_ldos_seconds,
                    "energy_seconds": seconds,
                }
            )
    _print(records)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"window_ev": WINDOW_EV, "records": records}, indent=2))
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


def _print(records: list[dict]) -> None:
    head = (
        f"{'width eV':>9}{'step eV':>9}{'n_e':>6}{'method':>11}{'ΔE_F meV':>10}"
        f"{'ΔE_b meV/at':>13}{'Δ(-TS)':>9}{'ΔA meV/at':>11}{'n MAPE %':>10}{'pp.x s':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in records:
        print(
            f"{r['degauss_ldos_ev']:>9.4f}{r['delta_e_ev']:>9.4f}{r['energies']:>6d}"
            f"{r['method']:>11}{r['fermi_mev']:>10.2f}{r['band_mev_per_atom']:>13.3f}"
            f"{r['entropy_mev_per_atom']:>9.3f}{r['total_mev_per_atom']:>11.3f}"
            f"{r['density_mape_percent']:>10.3f}{r['pp_ldos_seconds']:>8.1f}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
