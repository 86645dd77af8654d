"""Write input files for Quantum ESPRESSO's pw.x (SCF) and pp.x (density, LDOS)."""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from pathlib import Path

from ase import Atoms
from ase.data import atomic_masses, atomic_numbers

from nearsight.errors import InputError
from nearsight.grid import EnergyGrid
from nearsight.io.atomic import atomic_path


def write_pw_input(
    path: str | PathLike[str],
    atoms: Atoms,
    *,
    pseudopotentials: Mapping[str, str],
    pseudo_dir: str | PathLike[str],
    outdir: str | PathLike[str],
    prefix: str,
    ecutwfc_ry: float,
    kpoints: tuple[int, int, int],
    nbnd: int,
    degauss_ry: float,
    ecutrho_ry: float | None = None,
    conv_thr_ry: float = 1e-10,
    mixing_beta: float = 0.7,
    electron_maxstep: int = 200,
) -> None:
    """Write a pw.x SCF input with Fermi-Dirac smearing of width ``degauss_ry`` (k_B T, Ry).

    Cell and positions are written in Å. ``verbosity='high'`` makes pw.x print the
    eigenvalues at every k-point, which the dataset keeps for checking band energies.

    Raises:
        InputError: an element of ``atoms`` has no pseudopotential.
    """
    species = sorted(set(atoms.get_chemical_symbols()), key=atomic_numbers.__getitem__)
    missing = [s for s in species if s not in pseudopotentials]
    if missing:
        raise InputError(
            f"no pseudopotential for {', '.join(missing)}",
            field="dft.pseudopotentials",
            fix=f'add e.g. {missing[0]} = "{missing[0]}.pbe-....UPF" to [dft] pseudopotentials',
        )
    system = [
        "ibrav=0",
        f"nat={len(atoms)}",
        f"ntyp={len(species)}",
        f"ecutwfc={ecutwfc_ry!r}",
        "occupations='smearing'",
        "smearing='fd'",
        f"degauss={degauss_ry!r}",
        f"nbnd={nbnd}",
    ]
    if ecutrho_ry is not None:
        system.append(f"ecutrho={ecutrho_ry!r}")
    lines = [
        "&control",
        "  calculation='scf'",
        f"  prefix='{prefix}'",
        f"  outdir='{outdir}'",
        f"  pseudo_dir='{pseudo_dir}'",
        "  verbosity='high'",
        "  tprnfor=.true.",
        "  tstress=.true.",
        "/",
        "&system",
        *(f"  {item}" for item in system),
        "/",
        "&electrons",
        f"  conv_thr={conv_thr_ry!r}",
        f"  mixing_beta={mixing_beta!r}",
        f"  electron_maxstep={electron_maxstep}",
        "/",
        "ATOMIC_SPECIES",
        *(f"{s} {atomic_masses[atomic_numbers[s]]:.6f} {pseudopotentials[s]}" for s in species),
        "CELL_PARAMETERS angstrom",
        *(" ".join(f"{x:.12f}" for x in row) for row in atoms.cell[:]),
        "ATOMIC_POSITIONS angstrom",
        *(
            f"{s} " + " ".join(f"{x:.12f}" for x in pos)
            for s, pos in zip(atoms.get_chemical_symbols(), atoms.positions, strict=True)
        ),
        "K_POINTS automatic",
        f"{kpoints[0]} {kpoints[1]} {kpoints[2]} 0 0 0",
        "",
    ]
    _write(path, "\n".join(lines))


def write_pp_density_input(
    path: str | PathLike[str], *, prefix: str, outdir: str | PathLike[str], fileout: str
) -> None:
    """Write a pp.x input that writes the valence density (plot_num=0) as a cube file."""
    _write(
        path,
        "&inputpp\n"
        f"  prefix='{prefix}', outdir='{outdir}', filplot='density.pp', plot_num=0\n"
        "/\n"
        "&plot\n"
        f"  iflag=3, output_format=6, fileout='{fileout}'\n"
        "/\n",
    )


def write_pp_ldos_input(
    path: str | PathLike[str],
    *,
    prefix: str,
    outdir: str | PathLike[str],
    filplot: str,
    energy_grid: EnergyGrid,
    degauss_ev: float,
) -> None:
    """Write a pp.x input for the LDOS (plot_num=3) at every energy of ``energy_grid``.

    pp.x writes one cube per energy, ``{filplot}NNN.cube``. It makes
    ``floor((emax - emin) / delta_e) + 1`` energies, so ``emax`` is put half a step past
    the last energy wanted: the count is then exact whatever the rounding of the division.
    """
    emax = energy_grid.e_min + (energy_grid.n - 0.5) * energy_grid.de
    _write(
        path,
        "&inputpp\n"
        f"  prefix='{prefix}', outdir='{outdir}', filplot='{filplot}', plot_num=3,\n"
        f"  emin={energy_grid.e_min!r}, emax={emax!r}, delta_e={energy_grid.de!r},\n"
        f"  degauss_ldos={degauss_ev!r}\n"
        "/\n"
        "&plot\n"
        "  iflag=3, output_format=6, fileout='.cube'\n"
        "/\n",
    )


def _write(path: str | PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
