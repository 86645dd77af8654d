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
DEMO_CONFIG = REPO_EXAMPLES / "al" / "model.toml"


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

    trn = sub.add_parser(
        "train",
        help="train a network (descriptors -> LDOS) on snapshots; resumable, data-parallel",
        description=textwrap.fill(
            "Fit the feed-forward network of [network] to the snapshots of [data] train (mean "
            "squared error of the scaled LDOS; optimizer, learning-rate schedule and early "
            "stopping from [training]), validating on [data] validation after every epoch, and "
            "write the best epoch's model to {output_dir}/{training.model_file}. A checkpoint "
            "is written after every epoch, so the same command run again resumes where the "
            "last run stopped (a finished run only writes its model again). Each epoch's line "
            "is printed and appended to {output_dir}/train.log; the history goes to "
            "{output_dir}/history.json. Under `torchrun --nproc_per_node N` every global "
            "batch is split over N data-parallel ranks.",
            width=88,
        ),
        epilog="examples:\n"
        "  nearsight train config.toml\n"
        "  nearsight train config.toml --epochs 200      # continue a finished run\n"
        "  nearsight train config.toml --restart -o runs/b\n"
        "  torchrun --nproc_per_node 2 -m nearsight train config.toml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    trn.add_argument(
        "config", type=Path, help="TOML config with [data], [network] and [training] sections"
    )
    trn.add_argument(
        "-o",
        "--output-dir",
        type=Path,
        metavar="DIR",
        help="overrides output_dir of the config: model, checkpoint, history and train.log",
    )
    trn.add_argument(
        "--restart",
        action="store_true",
        help="discard the checkpoint of an earlier run (needed when the config or data changed)",
    )
    trn.add_argument(
        "--epochs",
        type=int,
        metavar="N",
        help="overrides training.max_epochs; more epochs than a finished run had continue it",
    )
    trn.set_defaults(func=_cmd_train)

    test = sub.add_parser(
        "test",
        help="physical errors of a model on held-out snapshots, with plots",
        description=textwrap.fill(
            "Predict the LDOS of each snapshot with the model, run it through the same "
            "physics as DFT data and print, per snapshot and as a mean: errors against QE of "
            "the total free energy and band energy (meV/atom) and the Fermi level (meV), the "
            "density MAPE against pp.x's density, and the same errors against the snapshot's "
            "own DFT LDOS (the model's target). Writes an LDOS parity plot and a DOS "
            "comparison plot (PNG).",
            width=88,
        ),
    )
    test.add_argument("model", type=Path, help="model bundle (.safetensors)")
    test.add_argument(
        "datasets", type=Path, nargs="+", help="snapshot files with an LDOS (.h5 or MALA *.in.npy)"
    )
    test.add_argument(
        "--plots",
        type=Path,
        metavar="DIR",
        help="where parity.png and dos.png go (default: beside the model, named after it)",
    )
    test.add_argument(
        "--descriptor-cache",
        type=Path,
        metavar="DIR",
        help="cache descriptors missing from the snapshots here (default: compute in memory)",
    )
    test.add_argument("--device", default="cpu", help="where the network runs (default cpu)")
    test.add_argument("--json", action="store_true", help="print one JSON object")
    test.set_defaults(func=_cmd_test)

    pred = sub.add_parser(
        "predict",
        help="energy, density and DOS of any structure with a trained model",
        description=textwrap.fill(
            "Predict the total free energy and its terms, the Fermi level and the density of "
            "a structure (any file ASE reads, or a snapshot .h5) with a model bundle. The grid "
            "keeps the training spacing unless --grid is given; descriptors, network and LDOS "
            "are streamed over chunks of grid points, so memory stays at one chunk plus the "
            "density grid (the LDOS goes to a temporary file). Run under `mpirun -n N` to "
            "split the grid over N ranks.",
            width=88,
        ),
        epilog="examples:\n"
        "  nearsight predict model.safetensors al256.xyz\n"
        "  nearsight predict model.safetensors pw.in --format espresso-in --json\n"
        "  mpirun -n 4 nearsight predict model.safetensors big.cif --density-cube n.cube",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pred.add_argument("model", type=Path, help="model bundle (.safetensors)")
    pred.add_argument("structure", type=Path, help="structure file (ASE-readable) or .h5")
    pred.add_argument("--format", metavar="FMT", help="ASE format name, e.g. espresso-in, vasp")
    pred.add_argument(
        "--index", type=int, metavar="I", help="which structure of a trajectory (default last)"
    )
    pred.add_argument(
        "--grid",
        type=int,
        nargs=3,
        metavar=("NX", "NY", "NZ"),
        help="real-space grid (default: the model's training spacing)",
    )
    pred.add_argument("--json", action="store_true", help="print one JSON object")
    pred.add_argument(
        "--density-cube", type=Path, metavar="PATH", help="write the density as a cube file"
    )
    pred.add_argument(
        "--ldos-cubes",
        type=Path,
        metavar="DIR",
        help="write one LDOS cube per energy into DIR (holds the whole LDOS in memory)",
    )
    pred.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default cpu)")
    pred.add_argument(
        "--chunk-points",
        type=int,
        metavar="N",
        help="grid points per chunk (default: the model's descriptors.chunk_points)",
    )
    pred.set_defaults(func=_cmd_predict)

    imp = sub.add_parser(
        "import-mala",
        help="convert a trained MALA model (.zip) into a nearsight model bundle",
        description=textwrap.fill(
            "Convert the .zip that MALA 1.4.0's Runner.save_run writes (network, scalers, "
            "parameters and optionally info.json; legacy pickled scalers are read without "
            "running them) into a nearsight model bundle (.safetensors) that `nearsight "
            "predict` and `nearsight test` use. MALA archives hold no pseudopotentials: give "
            "the UPF files the training data were made with. The temperature, grid spacing "
            "and density cutoff come from the options or else from the archive's info.json.",
            width=88,
        ),
        epilog="examples:\n"
        "  nearsight import-mala be_model.zip be.safetensors --pseudo-dir pseudo\n"
        "  nearsight import-mala al.zip al.safetensors --pseudo Al=Al.pbe.UPF \\\n"
        "      --temperature 298 --grid-spacing 0.2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.add_argument("archive", type=Path, help="MALA model archive (.zip)")
    imp.add_argument("output", type=Path, help="model bundle to write (.safetensors)")
    imp.add_argument(
        "--pseudo-dir",
        type=Path,
        metavar="DIR",
        help="directory holding the UPF files the archive's info.json names",
    )
    imp.add_argument(
        "--pseudo",
        action="append",
        default=[],
        metavar="EL=PATH",
        help="the UPF file of element EL (repeat per element; wins over --pseudo-dir)",
    )
    imp.add_argument(
        "--info",
        type=Path,
        metavar="INFO",
        help="a MALA *.info.json to use instead of the archive's",
    )
    imp.add_argument(
        "--temperature", type=float, metavar="K", help="electronic temperature of the training data"
    )
    imp.add_argument(
        "--grid-spacing",
        type=float,
        nargs="+",
        metavar="H",
        help="training grid spacing, Å: one value, or three (one per cell vector)",
    )
    imp.add_argument(
        "--ecutrho-ry", type=float, metavar="RY", help="QE density cutoff of the training data, Ry"
    )
    imp.add_argument(
        "--legacy-activation-list",
        action="store_true",
        help="read a one-element layer_activations list as MALA < 1.3.1 did (every layer)",
    )
    imp.set_defaults(func=_cmd_import_mala)

    cfg = sub.add_parser("config", help="show the default config or check one")
    cfg_sub = cfg.add_subparsers(metavar="ACTION")
    defaults = cfg_sub.add_parser("defaults", help="print every setting with its default (TOML)")
    defaults.set_defaults(func=_cmd_config_defaults)
    check = cfg_sub.add_parser("check", help="validate a config file and print it in full")
    check.add_argument("config", type=Path)
    check.set_defaults(func=_cmd_config_check)

    demo = sub.add_parser(
        "demo",
        help="the main job on the bundled Al data: train, test against QE, predict a larger cell",
        description=textwrap.fill(
            "On the bundled 4-atom Al snapshots (QE 6.7, PBE, 298 K): train the model of "
            "examples/al/model.toml, report its errors on the held-out snapshot against QE "
            "(meV/atom), predict an 8-atom cell it never saw and compare with QE, and write "
            "plots, a density cube and summary.json to the output directory. Running it again "
            "reuses the finished training (delete the directory to start over).",
            width=88,
        ),
    )
    demo.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DEMO_DATA,
        help="directory of snapshot files al4_*.h5 and al8_*.h5 (default: the bundled Al data)",
    )
    demo.add_argument(
        "-o", "--output", type=Path, default=Path("demo"), help="output directory (default demo)"
    )
    demo.add_argument(
        "--epochs", type=int, help="override training.max_epochs of examples/al/model.toml"
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


def _cmd_train(args: argparse.Namespace) -> int:
    import os

    # Under torchrun every rank runs this command; only rank 0 talks to people, and the
    # other ranks leave errors (which rank 0 reports as well) unprinted.
    root = int(os.environ.get("RANK", "0")) == 0
    try:
        return _run_training(args, root)
    except NearsightError:
        if not root:
            return 1
        raise


def _run_training(args: argparse.Namespace, root: bool) -> int:
    from nearsight.config import load_config
    from nearsight.errors import InputError
    from nearsight.model.training import train

    config, base_dir = load_config(args.config)
    if args.output_dir is not None:
        config = dataclasses.replace(config, output_dir=str(args.output_dir.resolve()))
    if args.epochs is not None:
        if args.epochs < 1:
            raise InputError(
                f"must be positive, got {args.epochs}", field="--epochs", fix="e.g. --epochs 100"
            )
        config = dataclasses.replace(
            config, training=dataclasses.replace(config.training, max_epochs=args.epochs)
        )
    if not root:
        train(config, base_dir, restart=args.restart)
        return 0
    _train_printing(config, base_dir, restart=args.restart, label=f"train {args.config}")
    return 0


def _train_printing(config, base_dir: Path, *, restart: bool, label: str):
    """Train with a progress bar per epoch, printing each log line and appending it to
    ``{output_dir}/train.log``; returns the :class:`TrainResult`."""
    from tqdm import tqdm

    from nearsight.model.training import output_directory, train

    out_dir = output_directory(config, base_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bar: list[tqdm] = []

    def progress(epoch: int, done: int, total: int, loss: float) -> None:
        if not bar:
            # disable=None: no bar when stderr is not a terminal (batch jobs, pipes).
            bar.append(
                tqdm(total=total, desc=f"epoch {epoch}", unit="batch", leave=False,
                     file=sys.stderr, disable=None)
            )  # fmt: skip
        bar[0].update(1)
        bar[0].set_postfix_str(f"loss {loss:.2e}", refresh=False)
        if done == total:
            bar.pop().close()

    with open(out_dir / "train.log", "a") as log_file:
        log_file.write(
            f"--- nearsight {__version__} {label}"
            f"{' --restart' if restart else ''} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
        )

        def log(line: str) -> None:
            print(line, flush=True)
            log_file.write(line + "\n")
            log_file.flush()

        try:
            result = train(config, base_dir, progress=progress, log=log, restart=restart)
        except NearsightError as err:
            log_file.write(f"error: {err}\n")
            raise
        log(
            f"finished in {result.seconds:.1f} s: {len(result.history)} epochs"
            + (", stopped early" if result.stopped_early else "")
        )
    return result


def _cmd_test(args: argparse.Namespace) -> int:
    from nearsight.analysis.metrics import summarize
    from nearsight.analysis.plots import dos_plot, parity_plot
    from nearsight.model.bundle import Bundle

    bundle = Bundle.load(args.model)
    errors = _model_errors(bundle, args.datasets, args.descriptor_cache, args.device)
    summary = summarize(errors)
    folder, prefix = (
        (args.model.parent, f"{args.model.stem}_") if args.plots is None else (args.plots, "")
    )
    parity = parity_plot(errors, folder / f"{prefix}parity.png")
    dos = dos_plot(errors, folder / f"{prefix}dos.png")
    if args.json:
        print(
            json.dumps(
                {
                    "model": str(args.model),
                    "snapshots": [e.as_json() for e in errors],
                    "mean": summary,
                    "plots": {"parity": str(parity), "dos": str(dos)},
                },
                indent=1,
            )
        )
        return 0
    print(_errors_table(errors, summary))
    print(f"wrote {parity} and {dos}")
    return 0


def _model_errors(bundle, paths: Sequence[Path], cache: Path | None, device: str = "cpu"):
    """Physical errors of a bundle on snapshot files (see nearsight.analysis.metrics)."""
    from nearsight.analysis.metrics import evaluate
    from nearsight.data.sources import open_source

    sources = []
    try:
        for path in paths:
            sources.append(
                open_source(
                    path, bundle.descriptors, energy_grid=bundle.energy_grid, cache_dir=cache
                )
            )
        return evaluate(
            bundle.network, bundle.input_scaler, bundle.output_scaler, sources, device=device
        )
    finally:
        for source in sources:
            source.close()


def _errors_table(errors, summary: dict[str, float]) -> str:
    """Per-snapshot errors against QE and against the DFT LDOS, and their mean."""
    cols = [
        ("total_energy_mev_per_atom", "ΔA meV/at", "total_energy_mae_mev_per_atom"),
        ("band_energy_mev_per_atom", "ΔE_b meV/at", "band_energy_mae_mev_per_atom"),
        ("fermi_energy_mev", "ΔE_F meV", "fermi_energy_mae_mev"),
        ("density_mape_percent", "n MAPE %", "density_mape_percent"),
    ]
    header = f"{'snapshot':<18}{'atoms':>6}" + "".join(f"{c[1]:>13}" for c in cols)
    lines = []
    for title, suffix in (("against QE", ""), ("against the DFT LDOS", "_vs_ldos")):
        lines += [title, header, "-" * len(header)]
        for e in errors:
            cells = "".join(
                f"{e.errors[key + suffix]:>+13.3f}" if key + suffix in e.errors else f"{'-':>13}"
                for key, _, _ in cols
            )
            lines.append(f"{e.name:<18}{e.number_of_atoms:>6}{cells}")
        means = "".join(
            f"{summary[mean + suffix]:>13.3f}" if mean + suffix in summary else f"{'-':>13}"
            for _, _, mean in cols
        )
        lines += [f"{'mean |error|':<24}{means}", ""]
    return "\n".join(lines).rstrip()


def _cmd_predict(args: argparse.Namespace) -> int:
    from nearsight.descriptors.compute import mpi_world
    from nearsight.predict.predictor import Predictor

    comm = mpi_world()
    root = comm is None or comm.Get_rank() == 0
    atoms = _predict_structure(args)
    predictor = Predictor(
        args.model,
        device=args.device,
        chunk_points=args.chunk_points,
        progress=_chunk_bar("predict") if root else None,
        comm=comm,
    )
    prediction = predictor.predict(
        atoms,
        grid_shape=None if args.grid is None else tuple(args.grid),
        keep_ldos=args.ldos_cubes is not None,
    )
    if not root:
        return 0
    written = _write_prediction_cubes(args, prediction)
    if args.json:
        print(json.dumps(prediction.as_json(source=str(args.structure)), indent=2))
        return 0
    from nearsight.energy_report import _LABELS
    from nearsight.physics.reference import ENERGY_KEYS

    terms = prediction.terms.as_dict()
    n_atoms = prediction.number_of_atoms
    print(
        f"{args.structure}: {prediction.atoms.get_chemical_formula()}, {n_atoms} atoms, grid "
        f"{'x'.join(map(str, prediction.grid_shape))}, T = {prediction.temperature_k:.2f} K, "
        f"functional {prediction.functional}, integration {prediction.method}"
    )
    header = f"{'term':<24}{'eV':>18}{'eV/atom':>16}"
    print(header)
    print("-" * len(header))
    for key in ENERGY_KEYS:
        value = float(terms[key])
        # The Fermi level and the electron count are not extensive: no per-atom column.
        extensive = key not in ("fermi_energy", "number_of_electrons")
        per_atom = f"{value / n_atoms:.6f}" if extensive else ""
        print(f"{_LABELS[key]:<24}{value:>18.6f}{per_atom:>16}")
    t = prediction.timings
    ranks = 1 if comm is None else comm.Get_size()
    print(
        f"time: descriptors {t['descriptors']:.1f} s, network {t['network']:.1f} s, physics "
        f"{t['physics']:.1f} s, total {t['total']:.1f} s on {ranks} rank(s) ({args.device})"
    )
    for line in written:
        print(line)
    return 0


def _predict_structure(args: argparse.Namespace):
    """The structure to predict: a snapshot's atoms, or what ASE reads from the file."""
    from nearsight.errors import InputError

    if args.structure.suffix in (".h5", ".hdf5"):
        from nearsight.io.dataset import open_snapshot

        with open_snapshot(args.structure) as snap:
            return snap.atoms()
    from ase.io import read

    try:
        index = -1 if args.index is None else args.index
        atoms = read(args.structure, index=index, format=args.format)
    except Exception as err:  # ASE raises many kinds for unreadable files
        raise InputError(
            f"cannot read the structure ({type(err).__name__}: {err})",
            path=args.structure,
            fix="give an ASE-readable file, naming its format with --format if the extension "
            "does not (e.g. --format espresso-in)",
        ) from None
    return atoms


def _write_prediction_cubes(args: argparse.Namespace, prediction) -> list[str]:
    """Write the cubes asked for; returns one line per thing written, for the report."""
    from nearsight.io.cube import write_cube

    written = []
    name = args.structure.name
    if args.density_cube is not None:
        write_cube(
            args.density_cube,
            prediction.atoms,
            prediction.density,
            quantity="density",
            comment=(f"nearsight predicted density of {name}", ""),
        )
        written.append(f"wrote the density to {args.density_cube}")
    if args.ldos_cubes is not None:
        args.ldos_cubes.mkdir(parents=True, exist_ok=True)
        energies = prediction.energy_grid.energies
        for i, energy in enumerate(energies):
            write_cube(
                args.ldos_cubes / f"ldos_{i:04d}_{energy:+.4f}eV.cube",
                prediction.atoms,
                prediction.ldos[..., i],
                quantity="ldos",
                energy_ev=float(energy),
                comment=(f"nearsight predicted LDOS of {name}", ""),
            )
        written.append(f"wrote {len(energies)} LDOS cubes to {args.ldos_cubes}")
    return written


def _cmd_import_mala(args: argparse.Namespace) -> int:
    from nearsight.errors import InputError
    from nearsight.model.mala_import import import_mala, summary_lines

    pseudos: dict[str, Path] = {}
    for item in args.pseudo:
        element, sep, path = item.partition("=")
        if not sep or not element.strip() or not path.strip():
            raise InputError(
                f"expected EL=PATH, got {item!r}", field="--pseudo", fix="e.g. --pseudo Al=Al.UPF"
            )
        pseudos[element.strip()] = Path(path.strip())
    result = import_mala(
        args.archive,
        pseudo_dir=args.pseudo_dir,
        pseudos=pseudos,
        info_path=args.info,
        temperature_k=args.temperature,
        grid_spacing=args.grid_spacing,
        ecutrho_ry=args.ecutrho_ry,
        legacy_activation_list=args.legacy_activation_list,
    )
    written = result.bundle.save(args.output)  # atomic: a failure leaves no partial file
    for line in summary_lines(result):
        print(line)
    print(f"wrote {written}")
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
    from nearsight.io.dataset import open_snapshot

    files = sorted(Path(args.data).glob("*.h5"))
    if not files:
        raise NearsightError(
            f"no snapshot files (*.h5) in {args.data}; regenerate them with "
            "`python scripts/make_al_dataset.py`"
        )
    print(f"nearsight {__version__} demo: {len(files)} bundled snapshots in {args.data}\n")
    header = (
        f"{'snapshot':<14s} {'atoms':>5s} {'grid':>10s} {'LDOS':>5s} {'E_F (eV)':>9s} "
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
            f"{path.name:<14s} {s['number_of_atoms']:>5d} {grid:>10s} "
            f"{n_e:>5d} {qe.get('fermi_energy_ev', float('nan')):>9.4f} {total:>14.6f} "
            f"{total / s['number_of_atoms']:>12.6f} "
            f"{s.get('provenance', {}).get('pw_seconds', float('nan')):>8.1f} "
            f"{s['file_size_mb']:>6.2f}"
        )
    summary = _demo_model(args)
    print(f"\nwrote {args.output / 'summary.json'}:")
    print(json.dumps(summary, indent=1))
    return 0


def _demo_config(args: argparse.Namespace):
    """examples/al/model.toml with its snapshots taken from --data and output in --output."""
    from nearsight.config import load_config

    config, base = load_config(DEMO_CONFIG)

    def here(patterns: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(str((Path(args.data) / Path(p).name).resolve()) for p in patterns)

    data = dataclasses.replace(
        config.data,
        train=here(config.data.train),
        validation=here(config.data.validation),
        test=here(config.data.test),
    )
    training = config.training
    if args.epochs is not None:
        training = dataclasses.replace(training, max_epochs=args.epochs)
    config = dataclasses.replace(
        config, output_dir=str(args.output.resolve()), data=data, training=training
    )
    return config, base


def _demo_model(args: argparse.Namespace) -> dict:
    """Train, test and predict a larger cell; returns what goes into summary.json."""
    from nearsight.analysis.metrics import summarize
    from nearsight.analysis.plots import dos_plot, parity_plot, training_plot
    from nearsight.io.atomic import atomic_path
    from nearsight.io.cube import write_cube
    from nearsight.io.dataset import read_snapshot
    from nearsight.model.bundle import Bundle
    from nearsight.predict.predictor import Predictor

    config, base = _demo_config(args)
    out = args.output
    names = lambda paths: ", ".join(Path(p).name for p in paths)  # noqa: E731
    print(
        f"\n1. Training {config.network.hidden} {config.network.activations[0]} on "
        f"{names(config.data.train)} (validation {names(config.data.validation)}); "
        f"descriptors: bispectrum 2J_max={config.descriptors.twojmax}, "
        f"cutoff {config.descriptors.rcutfac} Å"
    )
    result = _train_printing(config, base, restart=False, label="demo")
    bundle = Bundle.load(result.bundle_path)
    train_seconds = float(sum(h["seconds"] for h in result.history))

    test_files = [Path(p) for p in config.data.test]
    print(f"\n2. Held-out snapshot(s) {names(test_files)}, never seen in training:")
    errors = _model_errors(bundle, test_files, out / "descriptors")
    metrics = summarize(errors)
    print(_errors_table(errors, metrics))
    plots = {
        "parity": str(parity_plot(errors, out / "parity.png")),
        "dos": str(dos_plot(errors, out / "dos.png")),
        "training": str(training_plot(result.history, out / "training.png")),
    }

    larger = sorted(Path(args.data).glob("al8_*.h5"))
    larger_cell = None
    if larger:
        snap = read_snapshot(larger[0], ldos=False)
        print(
            f"\n3. A larger cell than the model trained on: {larger[0].name}, "
            f"{len(snap.atoms)} atoms (QE used a {'x'.join(map(str, snap.grid_shape))} grid; "
            "the model keeps its training grid spacing)"
        )
        prediction = Predictor(bundle, progress=_chunk_bar("predict")).predict(snap.atoms)
        qe_total = snap.qe.energies["total"]
        predicted = float(prediction.terms.total_energy)
        error = 1e3 * (predicted - qe_total) / len(snap.atoms)
        cube = out / f"{larger[0].stem}_density.cube"
        write_cube(
            cube,
            prediction.atoms,
            prediction.density,
            quantity="density",
            comment=(f"nearsight predicted density of {larger[0].name}", ""),
        )
        print(
            f"   grid {'x'.join(map(str, prediction.grid_shape))}: predicted total free energy "
            f"{predicted:.4f} eV, QE {qe_total:.4f} eV, error {error:+.2f} meV/atom; "
            f"E_F {float(prediction.terms.fermi_energy):.4f} eV (QE {snap.qe.fermi_energy:.4f})"
            f"; {prediction.timings['total']:.1f} s; density cube {cube}"
        )
        larger_cell = {
            "snapshot": larger[0].name,
            "number_of_atoms": len(snap.atoms),
            "grid_shape": list(prediction.grid_shape),
            "predicted_total_energy_ev": predicted,
            "qe_total_energy_ev": qe_total,
            "total_energy_error_mev_per_atom": error,
            "predicted_fermi_energy_ev": float(prediction.terms.fermi_energy),
            "qe_fermi_energy_ev": snap.qe.fermi_energy,
            "seconds": prediction.timings["total"],
            "density_cube": str(cube),
        }
    summary = {
        "nearsight_version": __version__,
        "model": str(result.bundle_path),
        "train_seconds": train_seconds,
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "held_out_snapshots": [e.name for e in errors],
        "total_energy_mae_mev_per_atom": metrics.get("total_energy_mae_mev_per_atom"),
        "band_energy_mae_mev_per_atom": metrics.get("band_energy_mae_mev_per_atom"),
        "fermi_energy_mae_mev": metrics.get("fermi_energy_mae_mev"),
        "density_mape_percent": metrics.get("density_mape_percent"),
        "against_dft_ldos": {k: v for k, v in metrics.items() if k.endswith("_vs_ldos")},
        "larger_cell": larger_cell,
        "larger_cell_predicted_total_energy_ev": None
        if larger_cell is None
        else larger_cell["predicted_total_energy_ev"],
        "plots": plots,
    }
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def _chunk_bar(label: str):
    """A progress callback (done, total) drawing a tqdm bar of grid points on stderr."""
    from tqdm import tqdm

    bar: list[tqdm] = []

    def progress(done: int, total: int) -> None:
        if not bar:  # made at the first report, which knows the total
            bar.append(tqdm(total=total, desc=label, unit="pt", file=sys.stderr))
        bar[0].n = done
        bar[0].refresh()
        if done >= total:
            bar.pop().close()

    return progress


if __name__ == "__main__":
    raise SystemExit(main())
