"""Time and peak memory of each total-energy term as the cell grows: linear (or N log N) scaling.

    python benchmarks/physics_scaling.py            # 4 to 16384 atoms (~3 min, ~5 GB RAM)
    python benchmarks/physics_scaling.py --quick    # 4 to 2048 atoms (~40 s, ~4.5 GB RAM)

Cells are cubic fcc Al (a = 4.05 Å) repeated n×n×n, n = 1, 2, 4, 8, 16 (4 to 16384 atoms),
every atom moved by a seeded Gaussian of σ = 0.05 Å so that nothing is symmetric, on a grid
of 16n points per axis (16 per 4.05 Å: the grid grows with the cell). The valence density
is synthetic, 3 electrons per atom, uniform times (1 + 0.2 cos cos cos); the pseudopotential
is examples/al/pseudo/Al.pbe-nlcc-rrkj.UPF (PBE with core correction).

Cutoff: this grid's Nyquist frequency lies at G² = 43.1 Ry, inside QE's ecutrho = 80 Ry
sphere, so ``nearsight.physics.energy`` would refuse it (``_check_cutoff``). The grid kernels
(core density, Hartree, xc) are therefore called with ``ecutrho_ry=None`` (every G but the
unpaired Nyquist ones), which costs the same as a sphere mask. Ewald is timed with its
default α and, as a separate row, with QE's α for ecutrho = 80 Ry (which shrinks as the
total charge grows, so its work per atom is not fixed). The default-α Ewald is also split
into its reciprocal and real-space sums (private helpers of ``nearsight.physics.ewald``).

The LDOS (176 energies, float32 as in the datasets) of 16384 atoms would take 12 GB, so it
is streamed in x-slabs of at most 2^21 grid points; each slab is filled with seeded random
numbers (not timed) and only ``ldos_to_dos`` and ``density_from_ldos`` (what
``total_energy`` uses: float64 weights, one x-plane cast to float64 at a time) are timed,
summed over slabs; the row "density_f32" is ``slab @ weights`` with float32 weights, the
cheapest possible product, for comparison.
Memory for these rows is that of one slab and its temporaries; time is the sum over slabs of
the best of 3 runs each (the 2.8 GB float64 copy of a full slab varied from 0.6 to 3.4 s
from run to run on the 2-core VM this was written on).

Wall time is the best of 3 runs up to 2048 atoms and of 1 run above; peak memory is what
tracemalloc sees (numpy's allocations are traced) in one untimed run made first, above what
was allocated before the call. That run doubles as a warm-up: first-touched memory costs
page faults, which made single cold runs of the 16384-atom cell up to 1.6x slower.

Prints one table of seconds, peak MB and µs per atom per term and size, and one of fitted
exponents p of time ∝ N^p (least squares in log-log, over the three largest sizes and over
all), against the expectation: N log N for the FFT-based terms (shown as the exponent that
N·log N_grid itself has over the three largest sizes; "ok" up to 0.1 above it), ≤ 1.1 for
the others. Writes benchmarks/results/physics_scaling.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.build import bulk

from nearsight.grid import EnergyGrid
from nearsight.io.upf import Pseudopotential, read_upf
from nearsight.physics.core_density import core_density
from nearsight.physics.energy import density_from_ldos, ldos_to_dos
from nearsight.physics.ewald import (
    _ALPHA_DENSITY,
    _real_space_sum,
    _reciprocal_sum,
    _validated,
    ewald_energy,
)
from nearsight.physics.fermi import band_observables, integration_weights
from nearsight.physics.hartree import hartree
from nearsight.physics.reciprocal import ReciprocalGrid
from nearsight.physics.structure_factor import structure_factor
from nearsight.physics.xc import exchange_correlation
from nearsight.units import BOHR_ANGSTROM, kelvin_to_ev

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "physics_scaling.json"
PSEUDO = ROOT / "examples" / "al" / "pseudo" / "Al.pbe-nlcc-rrkj.UPF"

LATTICE_A = 4.05
"""Å, cubic fcc Al."""
POINTS_PER_CELL = 16
"""Grid points per axis per conventional cell."""
DISPLACEMENT_A = 0.05
"""Å, standard deviation of the random displacements."""
ELECTRONS_PER_ATOM = 3.0
ECUTRHO_QE_RY = 80.0
"""The examples' ecutrho, used only for QE's Ewald α."""
ENERGY_GRID = EnergyGrid(-5.0, 0.1, 176)
FERMI_GUESS_EV = 7.5
TEMPERATURE_K = 298.0
SLAB_POINTS = 1 << 21
"""Grid points per LDOS slab."""
SLAB_REPEATS = 3
"""Best of this many runs per LDOS slab, whatever the cell."""
REPEAT_UP_TO_ATOMS = 2048
"""Best of 3 runs up to this many atoms, 1 run above."""
FULL_SIZES = (1, 2, 4, 8, 16)
QUICK_SIZES = (1, 2, 4, 8)

TERMS: dict[str, bool] = {
    "structure_factor": True,
    "core_density": True,
    "hartree": True,
    "xc_pbe_core": True,
    "ewald": True,
    "ewald_reciprocal": True,
    "ewald_real_space": False,
    "ewald_qe_alpha": True,
    "ldos_to_dos": False,
    "density": False,
    "density_f32": False,
    "band_observables": False,
}
"""Every timed term, in table order, and whether it is FFT-based (expected N log N)."""


def measure(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """Best wall time of ``repeats`` runs, peak traced MB of one run before them, a result.

    The traced run comes first so that it also warms up: memory a process touches for the
    first time costs page faults (in a VM, possibly the host's too), which a single timed
    run would otherwise pay.
    """
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    result = fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    del result
    best, _, result = measure_time(fn, repeats)
    return best, peak / 2**20, result


def measure_time(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """Best wall time of ``repeats`` runs and the last result; no memory tracing."""
    best, result = math.inf, None
    for _ in range(repeats):
        del result
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, 0.0, result


def make_atoms(n: int) -> Atoms:
    """Cubic fcc Al repeated n×n×n with seeded random displacements."""
    atoms = bulk("Al", "fcc", a=LATTICE_A, cubic=True).repeat(n)
    rng = np.random.default_rng(n)
    atoms.positions += rng.normal(0.0, DISPLACEMENT_A, atoms.positions.shape)
    return atoms


def make_density(atoms: Atoms, shape: tuple[int, int, int]) -> np.ndarray:
    """Positive valence density (1/Å³), 3 electrons per atom: uniform × (1 + 0.2 cos cos cos)."""
    mean = ELECTRONS_PER_ATOM * len(atoms) / atoms.get_volume()
    waves = [np.cos(2.0 * np.pi * np.arange(m) / POINTS_PER_CELL) for m in shape]
    modulation = waves[0][:, None, None] * waves[1][None, :, None] * waves[2][None, None, :]
    return mean * (1.0 + 0.2 * modulation)


def ldos_terms(
    shape: tuple[int, int, int], volume: float, natoms: int
) -> tuple[dict[str, tuple[float, float]], np.ndarray]:
    """Seconds (summed over slabs) and peak MB (one slab) of the LDOS reductions; the DOS.

    Each slab is at most the grid of 2048 atoms, so each takes the best of 3 runs.

    The synthetic LDOS is uniform random in [0, 2m) with m such that the DOS holds 3
    electrons per atom below 7.5 eV.
    """
    nx, ny, nz = shape
    ne = ENERGY_GRID.n
    voxel = volume / math.prod(shape)
    planes = max(1, min(nx, SLAB_POINTS // (ny * nz)))
    scale = 2.0 * ELECTRONS_PER_ATOM * natoms / ((FERMI_GUESS_EV - ENERGY_GRID.e_min) * volume)
    number = integration_weights(ENERGY_GRID, FERMI_GUESS_EV, kelvin_to_ev(TEMPERATURE_K)).number
    number32 = number.astype(np.float32)
    buffer = np.empty((planes, ny, nz, ne), dtype=np.float32)
    rng = np.random.default_rng(0)
    dos = np.zeros(ne)
    seconds = {"ldos_to_dos": 0.0, "density": 0.0, "density_f32": 0.0}
    peak_mb = dict.fromkeys(seconds, 0.0)
    for start in range(0, nx, planes):
        slab = buffer[: min(planes, nx - start)]
        rng.random(out=slab, dtype=np.float32)
        slab *= np.float32(scale)
        ops: dict[str, Callable[[], np.ndarray]] = {
            "ldos_to_dos": lambda slab=slab: ldos_to_dos(slab, voxel),
            "density": lambda slab=slab: density_from_ldos(slab, number),
            "density_f32": lambda slab=slab: slab @ number32,
        }
        for key, op in ops.items():
            if start == 0:
                best, extra_mb, result = measure(op, SLAB_REPEATS)
                peak_mb[key] = buffer.nbytes / 2**20 + extra_mb
            else:
                best, _, result = measure_time(op, SLAB_REPEATS)
            seconds[key] += best
            if key == "ldos_to_dos":
                dos += result
            del result
    del buffer
    return {key: (seconds[key], peak_mb[key]) for key in seconds}, dos


def run_size(n: int, pseudo: Pseudopotential) -> list[dict[str, Any]]:
    """Every term for the n×n×n cell: one record per term."""
    atoms = make_atoms(n)
    natoms = len(atoms)
    shape = (POINTS_PER_CELL * n,) * 3
    cell = np.asarray(atoms.cell[:])
    repeats = 3 if natoms <= REPEAT_UP_TO_ATOMS else 1
    density = make_density(atoms, shape)
    charges = np.full(natoms, pseudo.z_valence)
    positions, _, _ = _validated(atoms.positions, cell, charges)
    volume_bohr3 = atoms.get_volume() / BOHR_ANGSTROM**3
    alpha = _ALPHA_DENSITY * (natoms / volume_bohr3) ** (2.0 / 3.0)  # ewald_energy's default

    results: dict[str, tuple[float, float]] = {}

    def timed(key: str, fn: Callable[[], Any]) -> Any:
        best, peak, result = measure(fn, repeats)
        results[key] = (best, peak)
        return result

    timed(
        "structure_factor",
        lambda: structure_factor(atoms.positions, ReciprocalGrid.of(cell, shape)),
    )
    core = timed("core_density", lambda: core_density(atoms, shape, {"Al": pseudo}))
    timed("hartree", lambda: hartree(density, cell))
    timed("xc_pbe_core", lambda: exchange_correlation(density, cell, "PBE", core_density=core))
    timed("ewald", lambda: ewald_energy(atoms.positions, cell, charges))
    timed(
        "ewald_reciprocal",
        lambda: _reciprocal_sum(positions, cell, charges, alpha, volume_bohr3),
    )
    timed("ewald_real_space", lambda: _real_space_sum(positions, cell, charges, alpha))
    timed(
        "ewald_qe_alpha",
        lambda: ewald_energy(atoms.positions, cell, charges, ecutrho_ry=ECUTRHO_QE_RY),
    )
    ldos_results, dos = ldos_terms(shape, atoms.get_volume(), natoms)
    results |= ldos_results
    kt = kelvin_to_ev(TEMPERATURE_K)
    timed(
        "band_observables",
        lambda: band_observables(dos, ENERGY_GRID, ELECTRONS_PER_ATOM * natoms, kt),
    )
    grid = "x".join(map(str, shape))
    return [
        {
            "term": term,
            "atoms": natoms,
            "grid": grid,
            "seconds": results[term][0],
            "peak_mb": results[term][1],
            "repeats": SLAB_REPEATS if term in ldos_results else repeats,
        }
        for term in TERMS
    ]


def exponent(atoms: list[int], seconds: list[float]) -> float:
    """p of seconds ∝ atoms^p, least squares in log-log."""
    return float(np.polyfit(np.log(atoms), np.log(seconds), 1)[0])


def nlogn_exponent(atoms: list[int]) -> float:
    """The exponent that N·log(N_grid) itself shows over ``atoms`` (grid ∝ atoms)."""
    points_per_atom = POINTS_PER_CELL**3 / 4
    cost = [a * math.log(a * points_per_atom) for a in atoms]
    return exponent(atoms, cost)


def machine() -> dict[str, Any]:
    """What the timings were taken on."""
    try:
        memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        memory_gb = None
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gb": round(memory_gb, 1) if memory_gb else None,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="stop at 2048 atoms")
    args = parser.parse_args()
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    pseudo = read_upf(PSEUDO)
    from pyscf.dft import libxc  # noqa: F401  (loaded once, outside the xc timing)

    total_start = time.perf_counter()
    records: list[dict[str, Any]] = []
    for n in sizes:
        start = time.perf_counter()
        records += run_size(n, pseudo)
        print(
            f"done: {4 * n**3} atoms, grid {(POINTS_PER_CELL * n,) * 3}, "
            f"{time.perf_counter() - start:.1f} s",
            flush=True,
        )
    total_seconds = time.perf_counter() - total_start

    header = f"{'term':<17} {'atoms':>6} {'grid':>11} {'seconds':>9} {'peak MB':>9} {'µs/atom':>9}"
    print()
    print(header)
    print("-" * len(header))
    for term in TERMS:
        for r in (r for r in records if r["term"] == term):
            print(
                f"{term:<17} {r['atoms']:>6} {r['grid']:>11} {r['seconds']:>9.4f} "
                f"{r['peak_mb']:>9.1f} {1e6 * r['seconds'] / r['atoms']:>9.1f}"
            )

    exponents: dict[str, dict[str, Any]] = {}
    all_atoms = [4 * n**3 for n in sizes]
    largest = all_atoms[-3:]
    header = f"{'term':<17} {'expected':>16} {'p largest 3':>11} {'p all':>7} {'verdict':>8}"
    print()
    print(f"time ∝ N^p; largest 3 = {largest} atoms, all = {all_atoms} atoms")
    print(header)
    print("-" * len(header))
    for term, fft in TERMS.items():
        seconds = {r["atoms"]: r["seconds"] for r in records if r["term"] == term}
        p3 = exponent(largest, [seconds[a] for a in largest])
        p_all = exponent(all_atoms, [seconds[a] for a in all_atoms])
        bound = nlogn_exponent(largest) + 0.1 if fft else 1.1
        expected = f"N log N ({nlogn_exponent(largest):.2f})" if fft else "<= 1.1"
        verdict = "ok" if p3 <= bound else "ABOVE"
        print(f"{term:<17} {expected:>16} {p3:>11.3f} {p_all:>7.3f} {verdict:>8}")
        exponents[term] = {
            "largest3": round(p3, 4),
            "all": round(p_all, 4),
            "expected": "N log N" if fft else "<= 1.1",
        }
    print(f"\ntotal runtime {total_seconds:.1f} s")

    for r in records:
        r["seconds"] = round(r["seconds"], 6)
        r["peak_mb"] = round(r["peak_mb"], 2)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": machine(),
        "quick": args.quick,
        "total_seconds": round(total_seconds, 1),
        "records": records,
        "exponents": exponents,
    }
    RESULTS.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
