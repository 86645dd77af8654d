"""Bispectrum descriptors: nearsight's kernel against LAMMPS compute sna/grid.

    python benchmarks/descriptors.py            # the issue's cases (about 15 min on 2 cores)
    python benchmarks/descriptors.py --quick    # twojmax 6 on a 36³ grid (about 1 min)

fcc Al (a = 4.05 Å, atoms rattled by 0.05 Å, seeded), rcutfac 4.676 with radius 0.5 (cutoff
radius 4.676 Å). Main case: 256 atoms (4x4x4 cubic cells) on a 72³ grid at twojmax 10, 8 and
6; nearsight in float64 and float32 on 1 and 2 threads, LAMMPS on 1 and 2 MPI ranks
(mpirun of the mpich wheel). Every case runs in a fresh process, so its time and peak
resident memory are its own. Scaling: twojmax 6 from 256 to 4,096 atoms at the same grid
density (18 points per 4.05 Å), nearsight float64 on 2 MPI ranks. Also checks that nearsight
matches LAMMPS (max relative difference) on the main case.

nearsight runs on 2 cores either as 2 torch threads in one process or as 2 MPI ranks of
one thread each (the grid split of `nearsight.descriptors.compute`); its kernels are
compiled on the first call, which is timed apart ("warm-up").

Prints a table (seconds, warm-up, grid points per second per core, peak MB per process,
speed-up over LAMMPS at the same number of cores) and writes
benchmarks/results/descriptors.json, one record per case: atoms, shape, twojmax, dtype,
backend, cores, mpi, seconds, warmup_seconds, peak_mb, and for nearsight the LAMMPS seconds
of the same case and cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from ase.build import bulk

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "descriptors.json"
MPIRUN = Path(sys.prefix) / "bin" / "mpirun"
RCUTFAC = 4.676
POINTS_PER_CELL = 18  # 72 points over 4 cubic cells of 4.05 Å


def structure(repeat: list[int]):
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat(tuple(repeat))
    atoms.rattle(0.05, seed=0)
    return atoms


def run_case(case: dict) -> dict:
    """Run one case in this process (the --case mode) and return its timing.

    nearsight's kernels are compiled on their first call (a few seconds with a warm cache,
    15-30 s cold); a call on a 2x2x2 grid first takes that out of the timing and reports
    it as ``warmup_seconds``.
    """
    from nearsight.descriptors.compute import mpi_world

    atoms = structure(case["repeat"])
    shape = tuple(case["shape"])
    comm = mpi_world()
    warmup = 0.0
    if case["backend"] == "lammps":
        from nearsight.descriptors.lammps_backend import bispectrum_lammps
        from nearsight.descriptors.params import BispectrumParams

        params = BispectrumParams(case["twojmax"], RCUTFAC)

        def compute(grid):
            return bispectrum_lammps(atoms, grid, params, comm=comm)
    else:
        import torch

        from nearsight.config import DescriptorsConfig
        from nearsight.descriptors.compute import compute_descriptors

        # Under mpirun each rank is one core; otherwise torch's threads are the cores.
        torch.set_num_threads(1 if comm is not None else case["cores"])
        config = DescriptorsConfig(twojmax=case["twojmax"], rcutfac=RCUTFAC, dtype=case["dtype"])

        def compute(grid):
            return compute_descriptors(atoms, grid, config, comm=comm)

        start = time.perf_counter()
        compute((2, 2, 2))
        warmup = time.perf_counter() - start
    start = time.perf_counter()
    out = compute(shape)
    seconds = time.perf_counter() - start
    if case.get("save") and out is not None:
        np.save(case["save"], out)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "warmup_seconds": warmup, "peak_mb": peak_mb}


def launch(case: dict) -> dict:
    """Run ``case`` in a fresh process (under mpirun for LAMMPS on several cores)."""
    cmd = [sys.executable, __file__, "--case", json.dumps(case)]
    if case.get("mpi") and case["cores"] > 1:
        cmd = [str(MPIRUN), "-n", str(case["cores"]), *cmd]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    return case | json.loads(lines[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="twojmax 6, 36³ grid only")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        result = run_case(json.loads(args.case))
        if os.environ.get("PMI_RANK", "0") == "0":
            print(json.dumps(result))
        return 0

    grid, twojmaxes = (36, [6]) if args.quick else (72, [10, 8, 6])
    records = []
    for twojmax in twojmaxes:
        base = {"repeat": [4, 4, 4], "atoms": 256, "shape": [grid] * 3, "twojmax": twojmax}
        lammps = {}
        for cores in (1, 2):
            case = base | {"backend": "lammps", "dtype": "float64", "cores": cores, "mpi": True}
            rec = launch(case)
            lammps[cores] = rec["seconds"]
            records.append(rec)
            _print(rec)
        for dtype in ("float64", "float32"):
            for cores, mpi in ((1, False), (2, False), (2, True)):
                case = base | {"backend": "nearsight", "dtype": dtype, "cores": cores, "mpi": mpi}
                rec = launch(case)
                rec["lammps_seconds"] = lammps[cores]
                records.append(rec)
                _print(rec)
    accuracy = _accuracy(grid, twojmaxes[0])
    print(f"max relative difference nearsight vs LAMMPS (twojmax {twojmaxes[0]}): {accuracy:.2e}")
    repeats = (
        [[4, 4, 4]] if args.quick else [[4, 4, 4], [8, 4, 4], [8, 8, 4], [8, 8, 8], [16, 8, 8]]
    )
    for repeat in repeats:
        points = POINTS_PER_CELL // (2 if args.quick else 1)
        rec = launch(
            {
                "repeat": repeat,
                "atoms": 4 * int(np.prod(repeat)),
                "shape": [points * r for r in repeat],
                "twojmax": 6,
                "backend": "nearsight",
                "dtype": "float64",
                "cores": 2,
                "mpi": True,
                "scaling": True,
            }
        )
        records.append(rec)
        _print(rec)
    scaling = [r for r in records if r.get("scaling")]
    if len(scaling) > 1:
        p = np.polyfit(
            np.log([r["atoms"] for r in scaling]), np.log([r["seconds"] for r in scaling]), 1
        )[0]
        print(f"scaling with atoms at fixed grid density (twojmax 6): time ∝ N^{p:.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps({"max_relative_difference": accuracy, "records": records}, indent=2)
    )
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


def _accuracy(grid: int, twojmax: int) -> float:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for backend in ("lammps", "nearsight"):
            files[backend] = Path(tmp) / f"{backend}.npy"
            launch(
                {
                    "repeat": [4, 4, 4],
                    "shape": [grid // 2] * 3,
                    "twojmax": twojmax,
                    "backend": backend,
                    "dtype": "float64",
                    "cores": 1,
                    "save": str(files[backend]),
                }
            )
        ours, theirs = np.load(files["nearsight"]), np.load(files["lammps"])
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))


def _print(r: dict) -> None:
    points = int(np.prod(r["shape"]))
    per_core = points / r["seconds"] / r["cores"]
    how = (
        "ranks"
        if r.get("mpi") and r["cores"] > 1
        else "thread"
        if r["backend"] != "lammps"
        else "rank"
    )
    speedup = ""
    if "lammps_seconds" in r:
        speedup = f"  {r['lammps_seconds'] / r['seconds']:5.2f}x LAMMPS"
    print(
        f"{r['backend']:>9} {r['dtype']:>7} {r['cores']} {how:<6} {r['atoms']:>5} atoms "
        f"{'x'.join(map(str, r['shape'])):>11} J={r['twojmax']:<2} {r['seconds']:7.2f} s "
        f"(+{r['warmup_seconds']:4.1f} s warm-up) {per_core:7.0f} pt/s/core "
        f"{r['peak_mb']:6.0f} MB/rank{speedup}",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
