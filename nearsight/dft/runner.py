"""Run pw.x, then pp.x twice (density, LDOS), and collect one snapshot file per structure.

Data flow for one snapshot::

    Atoms ─► scf.in ─► pw.x ─► scf.out ─────────────────► read_pw_output ──┐
                        └─► pp.x (plot_num=0) ─► density.cube ─► read_cube ───────┼─► .h5
                        └─► pp.x (plot_num=3) ─► ldosNNN.cube ─► read_ldos_cubes ─┘

pw.x runs with Fermi-Dirac smearing at the snapshot's temperature, so QE's free energy and
the LDOS describe the same electronic temperature.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from nearsight import __version__
from nearsight.config import Config, DFTConfig
from nearsight.errors import InputError, MissingToolError, NearsightError
from nearsight.grid import EnergyGrid
from nearsight.io.cube import read_cube, read_ldos_cubes
from nearsight.io.dataset import PseudoRecord, QEReference, Snapshot, write_snapshot
from nearsight.io.qe_input import write_pp_density_input, write_pp_ldos_input, write_pw_input
from nearsight.io.qe_output import PWOutput, read_pw_output
from nearsight.io.upf import Pseudopotential, read_upf
from nearsight.units import kelvin_to_ev, kelvin_to_ry

PREFIX = "snap"
"""Prefix of QE's files in the work directory."""

LDOS_KERNEL = "fermi-dirac"
"""pp.x 6.7 broadens each level of the LDOS with the smearing function of the pw.x run
(Fermi-Dirac here: w(x) = 1 / (2 + e^x + e^-x), x = (E - e) / degauss_ldos), not a Gaussian."""

LDOS_MANTISSA_BITS = 17
"""pp.x prints 5 significant digits; 17 float32 mantissa bits keep them all (see
:func:`nearsight.io.dataset.write_snapshot`) and make the LDOS compress 22% better."""

_TAIL_WIDTHS = 14.0
"""That kernel falls to e^-14 (about 1e-6) of its weight 14 widths from the level: a level
counts as inside the window when 14 widths separate it from the window's edge."""


@dataclass(frozen=True)
class SnapshotRun:
    """What one call of :func:`run_snapshot` made and how long it took (s)."""

    path: Path
    number_of_atoms: int
    grid_shape: tuple[int, int, int]
    pw_seconds: float
    pp_density_seconds: float
    pp_ldos_seconds: float
    total_energy_ev: float


def check_qe(cfg: DFTConfig) -> None:
    """Fail early, with the install command, when pw.x, pp.x or mpirun are missing."""
    for tool in (cfg.pw_command, cfg.pp_command):
        if shutil.which(tool) is None:
            raise MissingToolError(
                f"'{tool}' was not found on PATH.\n  fix: apt-get install quantum-espresso "
                "(or set dft.pw_command / dft.pp_command to the full paths)"
            )
    if cfg.mpi_ranks > 1 and shutil.which(cfg.mpirun) is None:
        raise MissingToolError(
            f"'{cfg.mpirun}' was not found on PATH but dft.mpi_ranks = {cfg.mpi_ranks}.\n"
            "  fix: apt-get install openmpi-bin, or set dft.mpi_ranks = 1"
        )


def load_pseudopotentials(
    cfg: DFTConfig, pseudo_dir: Path, elements: Sequence[str]
) -> dict[str, Pseudopotential]:
    """Read the UPF file of every element in ``elements``."""
    out = {}
    for element in sorted(set(elements)):
        name = cfg.pseudopotentials.get(element)
        if name is None:
            raise InputError(
                f"no pseudopotential for {element}",
                field="dft.pseudopotentials",
                fix=f'add {element} = "<file>.UPF" to [dft] pseudopotentials',
            )
        path = pseudo_dir / name
        if not path.is_file():
            raise InputError(
                "pseudopotential file not found",
                path=path,
                field=f"dft.pseudopotentials.{element}",
                fix="put the UPF file in dft.pseudo_dir (relative to the config) or fix its name",
            )
        upf = read_upf(path)
        if upf.element != element:
            raise InputError(
                f"this UPF is for {upf.element}, not {element}",
                path=path,
                field=f"dft.pseudopotentials.{element}",
                fix="list the right file for each element",
            )
        out[element] = upf
    return out


def run_snapshot(
    atoms: Atoms,
    config: Config,
    pseudo_dir: Path,
    output: Path,
    workdir: Path,
    temperature_k: float | None = None,
) -> SnapshotRun:
    """Run QE on ``atoms`` in ``workdir`` and write the snapshot file ``output``.

    Raises:
        InputError: a pseudopotential is missing or the energy window or band count does
            not cover the occupied states (the message says which setting to change).
        NearsightError: pw.x or pp.x failed (the message quotes QE's error).
    """
    dft, ldos = config.dft, config.ldos
    temperature_k = config.snapshots.temperature_k if temperature_k is None else temperature_k
    if temperature_k <= 0:
        raise InputError(
            "Fermi-Dirac smearing needs a temperature above 0 K",
            field="snapshots.temperature_k",
            fix="set a positive temperature",
        )
    upfs = load_pseudopotentials(dft, pseudo_dir, atoms.get_chemical_symbols())
    n_electrons = sum(upfs[s].z_valence for s in atoms.get_chemical_symbols())
    occupied = n_electrons / 2
    nbnd = max(math.ceil(dft.bands_factor * occupied), math.ceil(occupied) + 4)
    workdir.mkdir(parents=True, exist_ok=True)
    for upf in upfs.values():
        shutil.copy(upf.path, workdir / upf.path.name)

    write_pw_input(
        workdir / "scf.in",
        atoms,
        pseudopotentials={el: upf.path.name for el, upf in upfs.items()},
        pseudo_dir="./",
        outdir="./tmp",
        prefix=PREFIX,
        ecutwfc_ry=dft.ecutwfc_ry,
        ecutrho_ry=dft.ecutrho_ry,
        kpoints=dft.kpoints,
        nbnd=nbnd,
        degauss_ry=kelvin_to_ry(temperature_k),
        conv_thr_ry=dft.conv_thr_ry,
        mixing_beta=dft.mixing_beta,
        electron_maxstep=dft.electron_maxstep,
    )
    pw_seconds = _run_qe(dft, dft.pw_command, workdir, "scf.in", "scf.out")
    pw = read_pw_output(workdir / "scf.out")

    energy_grid = None
    if ldos.enabled:
        energy_grid = EnergyGrid(ldos.emin_ev, ldos.de_ev, ldos.count)
        _check_window(pw, energy_grid, ldos.degauss_ev, kelvin_to_ev(temperature_k))

    write_pp_density_input(
        workdir / "density.in", prefix=PREFIX, outdir="./tmp", fileout="density.cube"
    )
    pp_density_seconds = _run_qe(dft, dft.pp_command, workdir, "density.in", "density.out")
    density = read_cube(workdir / "density.cube", quantity="density")
    if density.data.shape != tuple(pw.fft_grid):
        raise NearsightError(
            f"pp.x wrote a {density.data.shape} density but pw.x used a {pw.fft_grid} grid "
            f"(in {workdir}); rerun pp.x with the same QE version as pw.x"
        )

    ldos_data, pp_ldos_seconds = None, 0.0
    if energy_grid is not None:
        ldos_data, pp_ldos_seconds = _run_ldos(dft, workdir, energy_grid, ldos.degauss_ev, pw)

    qe = QEReference(
        version=pw.qe_version,
        energies=_energy_terms(pw),
        fermi_energy=float(pw.fermi_energy),
        number_of_electrons=float(pw.number_of_electrons),
        fft_grid=tuple(pw.fft_grid),
        ecutwfc_ry=pw.ecutwfc_ry,
        ecutrho_ry=pw.ecutrho_ry,
        degauss_ev=float(pw.degauss),
        xc_functional=pw.xc_functional,
        kpoints=pw.kpoints,
        k_weights=pw.k_weights,
        eigenvalues=pw.eigenvalues,
        forces=pw.forces,
        stress=pw.stress,
    )
    snapshot = Snapshot(
        atoms=pw.atoms,
        grid_shape=tuple(pw.fft_grid),
        temperature_k=float(temperature_k),
        number_of_electrons=float(pw.number_of_electrons),
        pseudopotentials={
            el: PseudoRecord(el, upf.path.name, upf.sha256, upf.path.read_text())
            for el, upf in upfs.items()
        },
        ldos=ldos_data,
        energy_grid=energy_grid,
        ldos_broadening_ev=ldos.degauss_ev if ldos.enabled else None,
        ldos_kernel=LDOS_KERNEL if ldos.enabled else None,
        density=density.data,
        qe=qe,
        provenance={
            "nearsight_version": __version__,
            "qe_version": pw.qe_version,
            "pw_seconds": pw_seconds,
            "pp_density_seconds": pp_density_seconds,
            "pp_ldos_seconds": pp_ldos_seconds,
            "mpi_ranks": dft.mpi_ranks,
            "kpoints": np.asarray(dft.kpoints),
            "nbnd": nbnd,
            "pw_input_sha256": hashlib.sha256((workdir / "scf.in").read_bytes()).hexdigest(),
        },
    )
    write_snapshot(output, snapshot, ldos_mantissa_bits=LDOS_MANTISSA_BITS)
    return SnapshotRun(
        path=output,
        number_of_atoms=len(atoms),
        grid_shape=tuple(pw.fft_grid),
        pw_seconds=pw_seconds,
        pp_density_seconds=pp_density_seconds,
        pp_ldos_seconds=pp_ldos_seconds,
        total_energy_ev=pw.energies.total,
    )


def run_dft(
    config: Config,
    structures: Sequence[Atoms],
    base_dir: Path,
    output_dir: Path | None = None,
    on_done: Callable[[int, SnapshotRun], None] | None = None,
) -> list[SnapshotRun]:
    """Run every structure; snapshot ``i`` goes to ``{output_dir}/{name}_{i:03d}.h5``.

    Args:
        config: the validated config.
        structures: the atomic configurations (see :mod:`nearsight.dft.snapshots`).
        base_dir: directory that relative paths in the config refer to.
        output_dir: overrides ``config.output_dir``.
        on_done: called after each snapshot (the CLI turns it into a progress bar).
    """
    check_qe(config.dft)
    pseudo_dir = _resolve(base_dir, config.dft.pseudo_dir)
    out_dir = output_dir if output_dir is not None else _resolve(base_dir, config.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for i, atoms in enumerate(structures):
        output = out_dir / f"{config.snapshots.name}_{i:03d}.h5"
        if config.dft.keep_workdir:
            workdir = out_dir / f"{config.snapshots.name}_{i:03d}.qe"
            run = run_snapshot(atoms, config, pseudo_dir, output, workdir)
        else:
            with tempfile.TemporaryDirectory(prefix="nearsight-qe-") as tmp:
                run = run_snapshot(atoms, config, pseudo_dir, output, Path(tmp))
        runs.append(run)
        if on_done is not None:
            on_done(i, run)
    return runs


def _run_ldos(
    dft: DFTConfig, workdir: Path, energy_grid: EnergyGrid, degauss_ev: float, pw: PWOutput
) -> tuple[np.ndarray, float]:
    """Run pp.x for the LDOS; return it ([nx, ny, nz, ne] float32, 1/(eV·Å³)) and pp.x's time."""
    write_pp_ldos_input(
        workdir / "ldos.in",
        prefix=PREFIX,
        outdir="./tmp",
        filplot="ldos",
        energy_grid=energy_grid,
        degauss_ev=degauss_ev,
    )
    seconds = _run_qe(dft, dft.pp_command, workdir, "ldos.in", "ldos.out")
    cubes = sorted(workdir.glob("ldos[0-9]*.cube"))
    if len(cubes) != energy_grid.n:
        raise NearsightError(
            f"pp.x wrote {len(cubes)} LDOS cubes, expected {energy_grid.n} (see "
            f"{workdir / 'ldos.out'})"
        )
    ldos, energies, _ = read_ldos_cubes(cubes, dtype=np.float32)
    if ldos.shape[:3] != tuple(pw.fft_grid):
        raise NearsightError(f"LDOS grid {ldos.shape[:3]} differs from pw.x's {pw.fft_grid}")
    # pp.x prints energies with 4 decimals; a larger misfit means a different grid.
    misfit = float(np.max(np.abs(energies - energy_grid.energies)))
    if misfit > 1e-3:
        raise NearsightError(f"pp.x LDOS energies differ from the requested grid by {misfit} eV")
    return ldos, seconds


def _resolve(base_dir: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else base_dir / path


def _energy_terms(pw: PWOutput) -> dict[str, float]:
    e = pw.energies
    terms = {
        "total": e.total,
        "one_electron": e.one_electron,
        "hartree": e.hartree,
        "xc": e.xc,
        "ewald": e.ewald,
    }
    if e.smearing is not None:
        terms["smearing"] = e.smearing
    if e.internal is not None:
        terms["internal"] = e.internal
    return terms


def _check_window(pw: PWOutput, grid: EnergyGrid, degauss_ev: float, kt_ev: float) -> None:
    """The LDOS window must hold every occupied state and the bands must reach its top."""
    eig = pw.eigenvalues
    if eig.size == 0:
        raise NearsightError(
            f"{pw.path}: pw.x printed no eigenvalues; it must run with verbosity='high'"
        )
    margin = _TAIL_WIDTHS * degauss_ev
    lowest = float(eig.min())
    if lowest - margin < grid.e_min:
        raise InputError(
            f"the lowest Kohn-Sham level ({lowest:.3f} eV) lies within {_TAIL_WIDTHS:g} "
            f"broadening widths of the LDOS window's bottom ({grid.e_min:.3f} eV): occupied "
            "states would be cut off",
            field="ldos.emin_ev",
            fix=f"set ldos.emin_ev <= {math.floor((lowest - margin) * 10) / 10:.1f}",
        )
    fermi = float(pw.fermi_energy)
    needed_top = fermi + 10 * kt_ev + margin
    if grid.e_max < needed_top:
        raise InputError(
            f"the LDOS window ends at {grid.e_max:.3f} eV, below E_F + 10 k_B T + "
            f"{_TAIL_WIDTHS:g} widths = {needed_top:.3f} eV",
            field="ldos.count",
            fix=f"raise ldos.count to at least {math.ceil((needed_top - grid.e_min) / grid.de) + 1}"
            f" (or ldos.de_ev)",
        )
    top_band = float(eig[:, -1].min())
    if top_band < grid.e_max + margin:
        raise InputError(
            f"the highest of the {eig.shape[-1]} computed bands starts at {top_band:.3f} eV, "
            f"below the LDOS window's "
            f"top ({grid.e_max:.3f} eV) plus broadening: the LDOS there would miss states",
            field="dft.bands_factor",
            fix="raise dft.bands_factor (more bands) or lower the window top",
        )


def _run_qe(cfg: DFTConfig, program: str, workdir: Path, infile: str, outfile: str) -> float:
    """Run one QE program in ``workdir``; return its wall time (s)."""
    cmd = [program, "-in", infile]
    if cfg.mpi_ranks > 1:
        cmd = [cfg.mpirun, "-n", str(cfg.mpi_ranks), *cmd]
    env = dict(os.environ)
    # Open MPI refuses to start as root without these; other MPIs ignore them.
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    start = time.perf_counter()
    with (workdir / outfile).open("w") as out:
        proc = subprocess.run(
            cmd,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        text = (workdir / outfile).read_text(errors="replace")
        raise NearsightError(
            f"{' '.join(cmd)} failed with exit code {proc.returncode} in {workdir}.\n"
            f"{_qe_error(text)}"
        )
    return elapsed


def _qe_error(text: str) -> str:
    """QE's boxed error message if there is one, else the output's last lines."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "Error in routine" in line:
            return "\n".join(lines[i : i + 3]).strip()
    return "\n".join(lines[-15:])
