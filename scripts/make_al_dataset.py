"""Regenerate the bundled Al dataset in examples/al/data with Quantum ESPRESSO.

    python scripts/make_al_dataset.py            # both configs, about 2 minutes on 2 cores
    python scripts/make_al_dataset.py --mpi 2    # pw.x and pp.x on 2 MPI ranks

Runs the same pipeline as `nearsight dft` on examples/al/al4.toml (training snapshots)
and examples/al/al8.toml (larger cells for size transfer), then prints the wall times and
file sizes that the README quotes.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from nearsight.config import load_config
from nearsight.dft.runner import run_dft
from nearsight.dft.snapshots import make_snapshots

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "al"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mpi", type=int, default=1, help="MPI ranks for pw.x and pp.x")
    parser.add_argument("--configs", nargs="+", default=["al4.toml", "al8.toml"])
    args = parser.parse_args()
    rows = []
    for name in args.configs:
        config, base = load_config(EXAMPLES / name)
        config = dataclasses.replace(
            config, dft=dataclasses.replace(config.dft, mpi_ranks=args.mpi)
        )
        structures = make_snapshots(config.snapshots, config.seed, base)

        def done(i, run, name=name):
            size = run.path.stat().st_size / 2**20
            rows.append(
                (
                    run.path.name,
                    run.number_of_atoms,
                    run.grid_shape,
                    run.pw_seconds,
                    run.pp_density_seconds,
                    run.pp_ldos_seconds,
                    size,
                )
            )
            print(f"{name}: {run.path.name} done", file=sys.stderr, flush=True)

        run_dft(config, structures, base, on_done=done)
    print(
        f"{'file':<12s} {'atoms':>5s} {'grid':>10s} {'pw.x s':>7s} {'dens s':>7s} "
        f"{'LDOS s':>7s} {'MB':>6s}"
    )
    for file, nat, grid, pw, dens, ldos, size in rows:
        print(
            f"{file:<12s} {nat:>5d} {'x'.join(map(str, grid)):>10s} {pw:>7.1f} {dens:>7.1f} "
            f"{ldos:>7.1f} {size:>6.2f}"
        )
    print(f"total size: {sum(r[-1] for r in rows):.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
