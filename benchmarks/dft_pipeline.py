"""Wall time of the DFT data pipeline and the size of what it writes.

    python benchmarks/dft_pipeline.py            # 4, 8 and 32 atoms, 1 and 2 MPI ranks (~25 min)
    python benchmarks/dft_pipeline.py --quick    # 4 and 8 atoms, 1 and 2 ranks (~1.5 min)

For fcc Al cells built from examples/al/al4.toml (same cutoff, LDOS window and k-point
density), runs pw.x, pp.x density and pp.x LDOS through `run_snapshot`, then prints a table:
seconds per stage, seconds per LDOS energy, the snapshot file size against the raw float32
LDOS, and how fast the file reads back. Writes benchmarks/results/dft_pipeline.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from nearsight.config import load_config
from nearsight.dft.runner import check_qe, run_snapshot
from nearsight.dft.snapshots import perfect_crystal, thermal_displacements
from nearsight.io.dataset import open_snapshot

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "dft_pipeline.json"

# (supercell of the 4-atom cubic cell, k-points): the k-point density stays that of 4x4x4.
CASES = {4: ((1, 1, 1), (4, 4, 4)), 8: ((2, 1, 1), (2, 4, 4)), 32: ((2, 2, 2), (2, 2, 2))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 and 8 atoms only")
    args = parser.parse_args()
    base_config, base_dir = load_config(ROOT / "examples" / "al" / "al4.toml")
    check_qe(base_config.dft)
    sizes = [4, 8] if args.quick else [4, 8, 32]
    ranks_list = [1, 2]
    records = []
    for natoms in sizes:
        supercell, kpoints = CASES[natoms]
        for ranks in ranks_list:
            snaps = dataclasses.replace(
                base_config.snapshots,
                supercell=supercell,
                source="thermal",
                debye_temperature_k=428.0,
            )
            config = dataclasses.replace(
                base_config,
                snapshots=snaps,
                dft=dataclasses.replace(base_config.dft, kpoints=kpoints, mpi_ranks=ranks),
            )
            rng = np.random.default_rng(0)
            atoms = thermal_displacements(perfect_crystal(snaps), snaps, rng)
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "snap.h5"
                start = time.perf_counter()
                run = run_snapshot(
                    atoms, config, base_dir / config.dft.pseudo_dir, out, Path(tmp) / "work"
                )
                total = time.perf_counter() - start
                start = time.perf_counter()
                with open_snapshot(out) as f:
                    f.load()
                read_s = time.perf_counter() - start
                n_e = config.ldos.count
                raw_mb = np.prod(run.grid_shape) * n_e * 4 / 2**20
                records.append(
                    {
                        "atoms": natoms,
                        "mpi_ranks": ranks,
                        "grid": list(run.grid_shape),
                        "kpoints": list(kpoints),
                        "ldos_energies": n_e,
                        "pw_seconds": round(run.pw_seconds, 2),
                        "pp_density_seconds": round(run.pp_density_seconds, 2),
                        "pp_ldos_seconds": round(run.pp_ldos_seconds, 2),
                        "ldos_seconds_per_energy": round(run.pp_ldos_seconds / n_e, 4),
                        "total_seconds": round(total, 2),
                        "file_mb": round(out.stat().st_size / 2**20, 2),
                        "raw_ldos_mb": round(float(raw_mb), 2),
                        "read_seconds": round(read_s, 3),
                    }
                )
                print(f"done: {natoms} atoms, {ranks} rank(s), {total:.1f} s", flush=True)
    header = (
        f"{'atoms':>5} {'ranks':>5} {'grid':>9} {'pw.x s':>7} {'dens s':>7} {'LDOS s':>7} "
        f"{'s/energy':>8} {'total s':>7} {'file MB':>7} {'raw MB':>7} {'read s':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in records:
        print(
            f"{r['atoms']:>5} {r['mpi_ranks']:>5} {'x'.join(map(str, r['grid'])):>9} "
            f"{r['pw_seconds']:>7.1f} {r['pp_density_seconds']:>7.1f} "
            f"{r['pp_ldos_seconds']:>7.1f} {r['ldos_seconds_per_energy']:>8.3f} "
            f"{r['total_seconds']:>7.1f} {r['file_mb']:>7.2f} {r['raw_ldos_mb']:>7.2f} "
            f"{r['read_seconds']:>6.2f}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"cases": records}, indent=1) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
