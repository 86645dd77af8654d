"""The ``nearsight`` command line: the only module that parses arguments and prints for people."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nearsight import __version__
from nearsight.errors import NearsightError

REPO_EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DEFAULT_DEMO_DATA = REPO_EXAMPLES / "al" / "data"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except NearsightError as err:
        print(f"nearsight: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nearsight: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nearsight",
        description="Machine-learning surrogates for DFT: Quantum ESPRESSO data, descriptors, "
        "models and electronic structure at any length scale.",
    )
    p.add_argument("--version", action="version", version=f"nearsight {__version__}")
    sub = p.add_subparsers(metavar="COMMAND")

    dft = sub.add_parser(
        "dft",
        help="run pw.x + pp.x on snapshots and write one dataset file per snapshot",
        description="Make atomic snapshots as [snapshots] says (or read --structure files), run "
        "pw.x (SCF, Fermi-Dirac smearing at the snapshot temperature) and pp.x (density and "
        "LDOS on the same FFT grid) for each, and write {output_dir}/{name}_NNN.h5.",
    )
    dft.add_argument("config", type=Path, help="TOML config (see `nearsight config defaults`)")
    dft.add_argument("-o", "--output-dir", type=Path, help="overrides output_dir of the config")
    dft.add_argument(
        "--structure",
        type=Path,
        nargs="+",
        metavar="FILE",
        help="ASE-readable structure files to run instead of [snapshots]",
    )
    dft.add_argument("--mpi", type=int, metavar="N", help="run pw.x and pp.x on N MPI ranks")
    dft.add_argument(
        "--keep-workdir",
        action="store_true",
        help="keep QE's inputs, outputs and cubes beside each snapshot",
    )
    dft.set_defaults(func=_cmd_dft)

    ds = sub.add_parser("dataset", help="inspect snapshot files")
    ds_sub = ds.add_subparsers(metavar="ACTION")
    info = ds_sub.add_parser("info", help="print a summary of snapshot files")
    info.add_argument("files", type=Path, nargs="+", help="snapshot .h5 files")
    info.add_argument("--json", action="store_true", help="print one JSON object per file")
    info.set_defaults(func=_cmd_dataset_info)

    cube = ds_sub.add_parser(
        "cube",
        help="write a snapshot's density (or one LDOS energy) as a Gaussian cube file",
        description="Cube files open in VESTA, OVITO and ASE; values are written in QE's "
        "units (density in electrons/Bohr³, LDOS in states/(Ry·Bohr³)), lengths in Bohr.",
    )
    cube.add_argument("file", type=Path, help="snapshot .h5 file")
    cube.add_argument("-o", "--output", type=Path, required=True, help="cube file to write")
    cube.add_argument(
        "--ldos-energy",
        type=float,
        metavar="EV",
        help="write the LDOS at the grid energy nearest to EV (eV) instead",
    )
    cube.set_defaults(func=_cmd_dataset_cube)

    energy = sub.add_parser(
        "energy",
        help="total free energy and its terms from an LDOS (or density), beside QE's",
        description=textwrap.fill(
            "Compute the Fermi level, band energy, -TS, Hartree, exchange-correlation "
            "and Ewald energies and the total free energy from a snapshot's LDOS, or from pp.x "
            "cube files with the pw.x output, and print them beside QE's printed values with the "
            "difference in meV/atom (meV for the Fermi level). With only a density (a snapshot "
            "without LDOS, or --density without --ldos) the density terms are printed; with both, "
            "the density from the LDOS is compared with pp.x's (MAPE).",
            width=88,
        ),
        epilog="examples:\n"
        "  nearsight energy examples/al/data/al4_000.h5\n"
        "  nearsight energy --qe-output scf.out --ldos 'ldos*.cube' --pseudo-dir pseudo --json\n"
        "  nearsight energy --qe-output scf.out --density density.cube --pseudo-dir pseudo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    energy.add_argument("dataset", type=Path, nargs="?", help="snapshot .h5 file")
    energy.add_argument("--qe-output", type=Path, metavar="PW.OUT", help="pw.x output file")
    energy.add_argument(
        "--ldos", metavar="GLOB", help="pp.x LDOS cube files (plot_num=3), a quoted glob"
    )
    energy.add_argument("--density", type=Path, metavar="CUBE", help="pp.x density cube")
    energy.add_argument(
        "--energy-grid",
        type=float,
        nargs=3,
        metavar=("EMIN", "DE", "N"),
        help="energies of the LDOS cubes (eV, eV, count); default: read from the cubes",
    )
    energy.add_argument(
        "--pseudo-dir", type=Path, metavar="DIR", help="directory of the pw.x run's UPF files"
    )
    energy.add_argument(
        "--temperature",
        type=float,
        metavar="K",
        help="electronic temperature; default: the snapshot's, or pw.x's Fermi-Dirac degauss",
    )
    energy.add_argument(
        "--method",
        choices=("analytic", "trapezoid", "simpson"),
        default="analytic",
        help="energy integration against the Fermi function (default: analytic)",
    )
    energy.add_argument("--json", action="store_true", help="print one JSON object")
    energy.set_defaults(func=_cmd_energy)

    desc = sub.add_parser(
        "descriptors",
        help="bispectrum descriptors of every grid point (LAMMPS sna/grid conventions)",
        description=textwrap.fill(
            "Compute the bispectrum (SNAP) descriptors at every point of the real-space grid, "
            "exactly as LAMMPS compute sna/grid defines them, in LAMMPS's feature order. With a "
            "structure file (any ASE-readable file with a cell) it writes [nx, ny, nz, F] "
            "float64 to OUT.npy; with a snapshot .h5 file it stores them in the snapshot, on "
            "its grid. Parameters come from [descriptors] of --config, then the options. Run "
            "under `mpirun -n N` to split the grid over N ranks.",
            width=88,
        ),
        epilog="examples:\n"
        "  nearsight descriptors cell.cif --grid 48 48 48 --twojmax 10 --rcut 4.676 -o b.npy\n"
        "  nearsight descriptors examples/al/data/al4_000.h5 --twojmax 6\n"
        "  mpirun -n 2 nearsight descriptors big.xyz --grid 96 96 96 -o b.npy",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    desc.add_argument("input", type=Path, help="structure file, or snapshot .h5 file")
    desc.add_argument("--grid", type=int, nargs=3, metavar=("NX", "NY", "NZ"))
    desc.add_argument("--twojmax", type=int, help="2 J_max (default 10)")
    desc.add_argument(
        "--rcut",
        type=float,
        metavar="R",
        help="rcutfac in Å; with the default radius 0.5 the cutoff radius (default 4.67637)",
    )
    desc.add_argument("--config", type=Path, help="TOML config with a [descriptors] section")
    desc.add_argument("--backend", choices=("nearsight", "lammps"))
    desc.add_argument("--dtype", choices=("float64", "float32"))
    desc.add_argument("--device", help="torch device, e.g. cuda (default cpu)")
    desc.add_argument("-o", "--output", type=Path, help=".npy file (required for a structure)")
    desc.set_defaults(func=_cmd_descriptors)

    acsd = sub.add_parser(
        "acsd",
        help="choose the descriptor cutoff and twojmax without training (ACSD)",
        description=textwrap.fill(
            "Scan the bispectrum cutoff radius and 2·J_max on a snapshot with an LDOS: for "
            "each pair, sample grid-point pairs (200 x 200 by default), compare their cosine "
            "similarities in descriptor and LDOS space and report the average distance (ACSD, "
            "paper 000 Eq. 8-9). The lowest ACSD is the choice. Prints the table, marks the "
            "optimum and writes a heatmap.",
            width=88,
        ),
    )
    acsd.add_argument("snapshot", type=Path, help="snapshot .h5 file with an LDOS")
    acsd.add_argument(
        "--rcut",
        type=float,
        nargs="+",
        default=[3.0, 4.0, 4.676, 5.0, 6.0],
        metavar="R",
        help="cutoff radii to try, Å (rcutfac with radius 0.5)",
    )
    acsd.add_argument(
        "--twojmax",
        type=int,
        nargs="+",
        default=[2, 4, 6, 8],
        metavar="J",
        help="2 J_max values to try",
    )
    acsd.add_argument("--points", type=int, default=200, help="sampled points (default 200)")
    acsd.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    acsd.add_argument("--config", type=Path, help="TOML config with a [descriptors] section")
    acsd.add_argument("--backend", choices=("nearsight", "lammps"))
    acsd.add_argument(
        "--plot", type=Path, default=Path("acsd.png"), help="heatmap PNG (default acsd.png)"
    )
    acsd.add_argument("--json", action="store_true", help="print one JSON object")
    acsd.set_defaults(func=_cmd_acsd)

    cfg = sub.add_parser("config", help="show the default config or check one")
    cfg_sub = cfg.add_subparsers(metavar="ACTION")
    defaults = cfg_sub.add_parser("defaults", help="print every setting with its default (TOML)")
    defaults.set_defaults(func=_cmd_config_defaults)
    check = cfg_sub.add_parser("check", help="validate a config file and print it in full")
    check.add_argument("config", type=Path)
    check.set_defaults(func=_cmd_config_check)

    demo = sub.add_parser("demo", help="the main job on the bundled Al data")
    demo.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DEMO_DATA,
        help="directory of snapshot files (default: the bundled Al data)",
    )
    demo.set_defaults(func=_cmd_demo)
    return p


def _cmd_dft(args: argparse.Namespace) -> int:
    from ase.io import read
    from tqdm import tqdm

    from nearsight.config import load_config
    from nearsight.dft.runner import check_qe, run_dft
    from nearsight.dft.snapshots import make_snapshots

    config, base_dir = load_config(args.config)
    if args.mpi is not None:
        config = dataclasses.replace(
            config, dft=dataclasses.replace(config.dft, mpi_ranks=args.mpi)
        )
    if args.keep_workdir:
        config = dataclasses.replace(config, dft=dataclasses.replace(config.dft, keep_workdir=True))
    check_qe(config.dft)
    if args.structure:
        structures = [atoms for path in args.structure for atoms in read(path, index=":")]
    else:
        structures = make_snapshots(config.snapshots, config.seed, base_dir)
    bar = tqdm(total=len(structures), unit="snapshot", desc="DFT", file=sys.stderr)

    def done(i: int, run) -> None:
        bar.update(1)
        bar.write(
            f"{run.path.name}: {run.number_of_atoms} atoms, grid {run.grid_shape}, "
            f"E_QE = {run.total_energy_ev:.6f} eV, pw.x {run.pw_seconds:.1f} s, "
            f"pp.x density {run.pp_density_seconds:.1f} s, LDOS {run.pp_ldos_seconds:.1f} s"
        )

    runs = run_dft(config, structures, base_dir, args.output_dir, on_done=done)
    bar.close()
    total = sum(r.pw_seconds + r.pp_density_seconds + r.pp_ldos_seconds for r in runs)
    print(
        f"wrote {len(runs)} snapshots to {runs[0].path.parent if runs else '-'} "
        f"({total:.1f} s of QE)"
    )
    return 0


def _cmd_dataset_info(args: argparse.Namespace) -> int:
    from nearsight.io.dataset import open_snapshot

    for path in args.files:
        with open_snapshot(path) as snap:
            summary = snap.summary()
        if args.json:
            print(json.dumps(summary))
        else:
            print(_format_summary(summary))
    return 0


def _cmd_dataset_cube(args: argparse.Namespace) -> int:
    import numpy as np

    from nearsight.io.cube import write_cube
    from nearsight.io.dataset import open_snapshot

    with open_snapshot(args.file) as snap:
        atoms = snap.atoms()
        if args.ldos_energy is None:
            data = snap.load(ldos=False).density
            if data is None:
                raise NearsightError(f"{args.file} has no density")
            write_cube(
                args.output,
                atoms,
                data,
                quantity="density",
                comment=(f"nearsight density of {args.file.name}", ""),
            )
            print(f"wrote the density of {args.file} to {args.output}")
            return 0
        grid = snap.energy_grid
        if grid is None:
            raise NearsightError(f"{args.file} has no LDOS")
        index = int(np.clip(round((args.ldos_energy - grid.e_min) / grid.de), 0, grid.n - 1))
        energy = float(grid.energies[index])
        data = snap.ldos_at(index)
    write_cube(
        args.output,
        atoms,
        data,
        quantity="ldos",
        energy_ev=energy,
        comment=(f"nearsight LDOS of {args.file.name}", ""),
    )
    print(f"wrote the LDOS at {energy:.4f} eV of {args.file} to {args.output}")
    return 0


def _format_summary(s: dict) -> str:
    lines = [
        f"{s['file']}  ({s['file_size_mb']:.2f} MB)",
        f"  atoms        {s['formula']} ({s['number_of_atoms']} atoms)",
        "  cell (Å)     "
        + "  ".join("[" + ", ".join(f"{x:.4f}" for x in row) + "]" for row in s["cell_angstrom"]),
        f"  grid         {' x '.join(str(n) for n in s['grid_shape'])}",
        f"  temperature  {s['temperature_k']:g} K, {s['number_of_electrons']:g} electrons",
    ]
    if "energy_grid_ev" in s:
        g = s["energy_grid_ev"]
        lines.append(
            f"  LDOS         {g['n']} energies, {g['e_min']:.3f} to {g['e_max']:.3f} eV step "
            f"{g['de']:g} eV, {s['ldos_kernel']} broadening {s['ldos_broadening_ev']:g} eV"
        )
    else:
        lines.append("  LDOS         none")
    lines.append(f"  density      {'yes' if s['has_density'] else 'no'}")
    if "descriptors" in s:
        d = s["descriptors"]
        lines.append(
            f"  descriptors  {d.get('kind', '?')}, {d['features']} features, "
            f"twojmax {d.get('twojmax', '?')}, rcutfac {d.get('rcutfac', '?')} "
            f"({d.get('backend', '?')}, {d.get('dtype', '?')})"
        )
    for el, p in s.get("pseudopotentials", {}).items():
        lines.append(f"  pseudo       {el}: {p['filename']} (sha256 {p['sha256'][:12]}…)")
    if "qe" in s:
        q = s["qe"]
        lines.append(
            f"  QE           {q['version']}, {q['xc_functional']}, "
            f"E_F = {q['fermi_energy_ev']:.4f} eV"
        )
        for key, value in q["energies_ev"].items():
            lines.append(f"    {key:<14s} {value:16.6f} eV")
    prov = s.get("provenance", {})
    if "pw_seconds" in prov:
        lines.append(
            f"  QE wall time pw.x {prov['pw_seconds']:.1f} s, pp.x density "
            f"{prov.get('pp_density_seconds', 0):.1f} s, LDOS "
            f"{prov.get('pp_ldos_seconds', 0):.1f} s"
        )
    return "\n".join(lines)


def _cmd_energy(args: argparse.Namespace) -> int:
    from nearsight.energy_report import energy_report

    report = energy_report(
        dataset=args.dataset,
        qe_output=args.qe_output,
        ldos_glob=args.ldos,
        density_cube=args.density,
        energy_grid=args.energy_grid,
        pseudo_dir=args.pseudo_dir,
        temperature_k=args.temperature,
        method=args.method,
    )
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
        return 0
    print(report.source)
    print(
        f"{report.number_of_atoms} atoms, grid {report.grid_shape}, T = "
        f"{report.temperature_k:.2f} K, functional {report.functional}"
        + (f", integration {report.method}" if report.from_ldos else ", density terms only")
    )
    header = f"{'term':<24}{'nearsight (eV)':>18}{'QE (eV)':>18}{'difference':>20}"
    print(header)
    print("-" * len(header))
    for row in report.rows():
        ours = f"{row.ours:.6f}"
        theirs = "" if row.qe is None else f"{row.qe:.6f}"
        diff = "" if row.difference is None else f"{row.difference:+.4f} {row.unit}"
        print(f"{row.label:<24}{ours:>18}{theirs:>18}{diff:>20}")
    if report.density_mape_percent is not None:
        print(f"density from the LDOS vs pp.x's: MAPE {report.density_mape_percent:.3f}%")
    if report.from_ldos:
        print("QE's band energy is Σ_k w_k Σ_j f(ε_kj) ε_kj from its printed eigenvalues.")
    return 0


def _cmd_descriptors(args: argparse.Namespace) -> int:
    from nearsight.descriptors.compute import compute_descriptors, metadata, mpi_world

    config = _descriptors_config(
        args.config,
        twojmax=args.twojmax,
        rcutfac=args.rcut,
        backend=args.backend,
        dtype=args.dtype,
        device=args.device,
    )
    comm = mpi_world()
    root = comm is None or comm.Get_rank() == 0
    is_snapshot = args.input.suffix in (".h5", ".hdf5")
    atoms, shape = _descriptor_target(args, is_snapshot)
    bar = None
    if root and config.backend == "nearsight":
        from tqdm import tqdm

        bar = tqdm(total=int(np.prod(shape)), unit="pt", desc="descriptors", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.n = done
            bar.refresh()

    start = time.perf_counter()
    result = compute_descriptors(atoms, shape, config, comm=comm, progress=progress)
    seconds = time.perf_counter() - start
    if bar is not None:
        bar.close()
    if not root:
        return 0
    if is_snapshot:
        from nearsight.io.dataset import store_descriptors

        store_descriptors(args.input, result, metadata(config))
        where = f"stored in {args.input}"
    else:
        from nearsight.io.atomic import atomic_path

        with atomic_path(args.output) as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.asarray(result, dtype=np.float64))
        where = f"wrote {args.output}"
    ranks = 1 if comm is None else comm.Get_size()
    print(
        f"{where}: {shape[0]}x{shape[1]}x{shape[2]} points x {result.shape[-1]} features, "
        f"{len(atoms)} atoms, {seconds:.1f} s on {ranks} rank(s) ({config.backend})"
    )
    return 0


def _descriptors_config(config_path: Path | None, **overrides):
    """The [descriptors] section of ``config_path`` (or the defaults), with the options given."""
    from nearsight.config import DescriptorsConfig, load_config

    config = load_config(config_path)[0].descriptors if config_path else DescriptorsConfig()
    return dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})


def _descriptor_target(args: argparse.Namespace, is_snapshot: bool):
    from nearsight.errors import InputError

    if is_snapshot:
        from nearsight.io.dataset import open_snapshot

        with open_snapshot(args.input) as snap:
            atoms, shape = snap.atoms(), snap.grid_shape
        if args.grid is not None and tuple(args.grid) != tuple(shape):
            raise InputError(
                f"--grid {args.grid} differs from the snapshot's grid {shape}",
                path=args.input,
                fix="drop --grid: descriptors of a snapshot live on its own grid",
            )
        return atoms, shape
    from ase.io import read

    if args.grid is None or args.output is None:
        raise InputError(
            "a structure file needs --grid NX NY NZ and -o OUT.npy",
            path=args.input,
            fix="e.g. --grid 48 48 48 -o descriptors.npy",
        )
    try:
        atoms = read(args.input)
    except Exception as err:  # ASE raises many kinds for unreadable files
        raise InputError(
            f"cannot read the structure ({err})", path=args.input, fix="give an ASE-readable file"
        ) from None
    if atoms.cell.rank != 3:
        raise InputError(
            "structure has no 3D cell",
            path=args.input,
            fix="descriptors need a periodic cell: give a file with lattice vectors",
        )
    if min(args.grid) < 1:
        raise InputError(f"--grid must be positive, got {args.grid}", field="--grid")
    return atoms, tuple(args.grid)


def _cmd_acsd(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from nearsight.descriptors.acsd import acsd_scan, plot_acsd
    from nearsight.descriptors.compute import compute_descriptors
    from nearsight.errors import InputError
    from nearsight.io.dataset import read_snapshot

    base = _descriptors_config(args.config, backend=args.backend)
    snap = read_snapshot(args.snapshot)
    if snap.ldos is None:
        raise InputError(
            "snapshot has no LDOS",
            path=args.snapshot,
            fix="ACSD compares descriptors with the LDOS: use a snapshot made with [ldos]",
        )

    def descriptors(atoms, shape, twojmax, rcut):
        config = dataclasses.replace(base, twojmax=twojmax, rcutfac=rcut)
        return compute_descriptors(atoms, shape, config)

    bar = tqdm(total=len(args.rcut) * len(args.twojmax), unit="set", desc="ACSD", file=sys.stderr)
    scan = acsd_scan(
        snap.atoms,
        snap.ldos,
        args.rcut,
        args.twojmax,
        descriptor_fn=descriptors,
        n_points=args.points,
        seed=args.seed,
        progress=lambda done, total: bar.update(1),
    )
    bar.close()
    rcut, twojmax, value = scan.best()
    plot = plot_acsd(scan, args.plot)
    if args.json:
        print(
            json.dumps(
                {
                    "rcuts": list(scan.rcuts),
                    "twojmaxes": list(scan.twojmaxes),
                    "acsd": scan.values.tolist(),
                    "best": {"rcut": rcut, "twojmax": twojmax, "acsd": value},
                    "plot": str(plot),
                },
                indent=2,
            )
        )
        return 0
    print(f"ACSD of {args.snapshot} ({args.points} x {args.points} pairs, seed {args.seed}):")
    print(f"{'rcut (Å)':>9} " + " ".join(f"{'2J=' + str(t):>9}" for t in scan.twojmaxes))
    for i, r in enumerate(scan.rcuts):
        cells = []
        for j, t in enumerate(scan.twojmaxes):
            mark = "*" if (r, t) == (rcut, twojmax) else " "
            cells.append(f"{scan.values[i, j]:>8.4f}{mark}")
        print(f"{r:>9.3f} " + " ".join(cells))
    print(f"best: rcut {rcut} Å, twojmax {twojmax} (ACSD {value:.4f}); heatmap {plot}")
    return 0


def _cmd_config_defaults(args: argparse.Namespace) -> int:
    from nearsight.config import Config, config_to_dict, dumps_toml

    print(dumps_toml(config_to_dict(Config())), end="")
    return 0


def _cmd_config_check(args: argparse.Namespace) -> int:
    from nearsight.config import config_to_dict, dumps_toml, load_config

    config, _ = load_config(args.config)
    print(f"# {args.config}: valid")
    print(dumps_toml(config_to_dict(config)), end="")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from nearsight.energy_report import energy_report
    from nearsight.io.dataset import open_snapshot

    files = sorted(Path(args.data).glob("*.h5"))
    if not files:
        raise NearsightError(
            f"no snapshot files (*.h5) in {args.data}; regenerate them with "
            "`python scripts/make_al_dataset.py`"
        )
    print(f"nearsight {__version__} demo: {len(files)} bundled snapshots in {args.data}\n")
    header = (
        f"{'snapshot':<22s} {'atoms':>5s} {'grid':>10s} {'LDOS':>5s} {'E_F (eV)':>9s} "
        f"{'E_total (eV)':>14s} {'E/atom (eV)':>12s} {'pw.x (s)':>8s} {'MB':>6s}"
    )
    print(header)
    print("-" * len(header))
    for path in files:
        with open_snapshot(path) as snap:
            s = snap.summary()
        qe = s.get("qe", {})
        total = qe.get("energies_ev", {}).get("total", float("nan"))
        n_e = s.get("energy_grid_ev", {}).get("n", 0)
        grid = "x".join(map(str, s["grid_shape"]))
        print(
            f"{path.name:<22s} {s['number_of_atoms']:>5d} {grid:>10s} "
            f"{n_e:>5d} {qe.get('fermi_energy_ev', float('nan')):>9.4f} {total:>14.6f} "
            f"{total / s['number_of_atoms']:>12.6f} "
            f"{s.get('provenance', {}).get('pw_seconds', float('nan')):>8.1f} "
            f"{s['file_size_mb']:>6.2f}"
        )
    print(
        "\nEnergies from the stored LDOS (or, without one, the density terms) against QE's "
        "printed values, meV/atom:"
    )
    header = (
        f"{'snapshot':<22s} {'from':>7s} {'E_F meV':>8s} {'band':>8s} {'Hartree':>8s} "
        f"{'xc':>8s} {'Ewald':>8s} {'total':>8s} {'nearsight total (eV)':>21s}"
    )
    print(header)
    print("-" * len(header))
    for path in files:
        report = energy_report(dataset=path)
        diff = {row.key: row.difference for row in report.rows()}

        def cell(key: str, diff: dict = diff) -> str:
            value = diff.get(key)
            return f"{'-':>8s}" if value is None else f"{value:>+8.3f}"

        total = report.ours.get("total_energy")
        print(
            f"{path.name:<22s} {'LDOS' if report.from_ldos else 'density':>7s} "
            f"{cell('fermi_energy')} {cell('band_energy')} {cell('hartree')} {cell('xc')} "
            f"{cell('ewald')} {cell('total_energy')} "
            + (f"{total:>21.6f}" if total is not None else f"{'-':>21s}")
        )
    print(
        "\nThe LDOS terms differ from QE by the broadening of the stored LDOS (0.1 eV); at "
        "0.025 eV the\ntotal agrees within 1 meV/atom (docs/physics.md). "
        "Details: nearsight energy FILE"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
