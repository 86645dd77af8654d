"""Shared fixtures: real Quantum ESPRESSO runs made once per test session.

The QE-backed fixtures run pw.x and pp.x on tiny Al cells (about 5 s in all on 2 cores), so
the readers and the physics are checked against files QE itself wrote on this machine.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

REPO = Path(__file__).resolve().parents[1]
PSEUDO_DIR = REPO / "examples" / "al" / "pseudo"
PBE_NLCC_UPF = PSEUDO_DIR / "Al.pbe-nlcc-rrkj.UPF"
LDA_UPF = PSEUDO_DIR / "Al.pz-vbc.UPF"
DEBIAN_PSEUDO_DIR = Path("/usr/share/espresso/pseudo")

ENERGY_JSON_KEYS = (
    "fermi_energy",
    "number_of_electrons",
    "band_energy",
    "entropy_contribution",
    "hartree",
    "xc",
    "ewald",
    "total_energy",
)
"""The keys the issue fixes for ``nearsight energy --json`` (and later ``predict --json``)."""

QE_MISSING = shutil.which("pw.x") is None or shutil.which("pp.x") is None
requires_qe = pytest.mark.skipif(
    QE_MISSING,
    reason="Quantum ESPRESSO (pw.x, pp.x) not on PATH: apt-get install quantum-espresso",
)


def triclinic_alcu() -> Atoms:
    """Al and Cu (descriptor tests) in a skewed, right-handed cell, some atoms outside the cell."""
    cell = np.array([[4.3, 0.2, 0.1], [1.3, 3.8, -0.3], [0.6, 1.2, 4.6]])
    scaled = np.random.default_rng(7).uniform(-0.4, 1.4, size=(6, 3))
    return Atoms("AlCuAlAlCuCu", scaled_positions=scaled, cell=cell, pbc=True)


@dataclass(frozen=True)
class QERun:
    """Files of one finished pw.x + pp.x run (paths) and what was asked of QE."""

    directory: Path
    atoms: Atoms
    pseudo: Path
    pw_input: Path
    pw_output: Path
    density_cube: Path
    ldos_cubes: list[Path]
    ldos_emin_ev: float
    ldos_de_ev: float
    ldos_degauss_ev: float


def _run(cmd: list[str], stdin: Path, stdout: Path, cwd: Path) -> None:
    with stdin.open() as fin, stdout.open("w") as fout:
        subprocess.run(cmd, stdin=fin, stdout=fout, stderr=subprocess.STDOUT, cwd=cwd, check=True)


def _qe_run(
    directory: Path,
    atoms: Atoms,
    pseudo: Path,
    kpts: tuple[int, int, int],
    ecutwfc: float,
    ldos_window: tuple[float, float, float, float],
) -> QERun:
    """Run SCF then pp.x density and LDOS; ldos_window is (emin, emax, de, degauss) in eV."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(pseudo, directory / pseudo.name)
    cell = "\n".join(" ".join(f"{x:.10f}" for x in row) for row in atoms.cell[:])
    pos = "\n".join(
        f"{s} " + " ".join(f"{x:.10f}" for x in p)
        for s, p in zip(atoms.get_chemical_symbols(), atoms.positions, strict=True)
    )
    pw_in = directory / "scf.in"
    pw_in.write_text(
        f"""&control
  calculation='scf', prefix='al', outdir='./tmp', pseudo_dir='./'
/
&system
  ibrav=0, nat={len(atoms)}, ntyp=1, ecutwfc={ecutwfc}, occupations='smearing',
  smearing='fd', degauss=0.0018999, nbnd={4 * len(atoms) + 4}
/
&electrons
  conv_thr=1e-10
/
ATOMIC_SPECIES
Al 26.9815 {pseudo.name}
CELL_PARAMETERS angstrom
{cell}
ATOMIC_POSITIONS angstrom
{pos}
K_POINTS automatic
{kpts[0]} {kpts[1]} {kpts[2]} 0 0 0
"""
    )
    pw_out = directory / "scf.out"
    _run(["pw.x"], pw_in, pw_out, directory)
    dens_in = directory / "dens.in"
    dens_in.write_text(
        "&inputpp\n  prefix='al', outdir='./tmp', filplot='dens', plot_num=0\n/\n"
        "&plot\n  iflag=3, output_format=6, fileout='density.cube'\n/\n"
    )
    _run(["pp.x"], dens_in, directory / "dens.out", directory)
    emin, emax, de, degauss = ldos_window
    ldos_in = directory / "ldos.in"
    ldos_in.write_text(
        f"&inputpp\n  prefix='al', outdir='./tmp', filplot='ldos', plot_num=3,\n"
        f"  emin={emin}, emax={emax}, delta_e={de}, degauss_ldos={degauss}\n/\n"
        "&plot\n  iflag=3, output_format=6, fileout='.cube'\n/\n"
    )
    _run(["pp.x"], ldos_in, directory / "ldos.out", directory)
    cubes = sorted(directory.glob("ldos[0-9]*.cube"))
    return QERun(
        directory=directory,
        atoms=atoms,
        pseudo=directory / pseudo.name,
        pw_input=pw_in,
        pw_output=pw_out,
        density_cube=directory / "density.cube",
        ldos_cubes=cubes,
        ldos_emin_ev=emin,
        ldos_de_ev=de,
        ldos_degauss_ev=degauss,
    )


@pytest.fixture(scope="session")
def qe_al4(tmp_path_factory: pytest.TempPathFactory) -> QERun:
    """4-atom cubic fcc Al, one atom displaced, PBE with non-linear core correction."""
    if QE_MISSING:
        pytest.skip("Quantum ESPRESSO (pw.x, pp.x) not on PATH: apt-get install quantum-espresso")
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    atoms.positions[0] += np.array([0.05, -0.03, 0.02])
    return _qe_run(
        tmp_path_factory.mktemp("qe_al4"),
        atoms,
        PBE_NLCC_UPF,
        kpts=(3, 3, 3),
        ecutwfc=20.0,
        ldos_window=(6.0, 7.0, 0.1, 0.1),
    )


@pytest.fixture(scope="session")
def qe_al1(tmp_path_factory: pytest.TempPathFactory) -> QERun:
    """1-atom primitive (non-orthogonal) fcc Al, LDA without core correction."""
    if QE_MISSING:
        pytest.skip("Quantum ESPRESSO (pw.x, pp.x) not on PATH: apt-get install quantum-espresso")
    atoms = bulk("Al", "fcc", a=4.05)
    return _qe_run(
        tmp_path_factory.mktemp("qe_al1"),
        atoms,
        LDA_UPF,
        kpts=(6, 6, 6),
        ecutwfc=20.0,
        ldos_window=(0.0, 10.0, 1.0, 0.3),
    )


@dataclass(frozen=True)
class LDOSRun:
    """Extra pp.x LDOS cubes made from the pw.x run of ``run``."""

    run: QERun
    cubes: list[Path]
    degauss_ev: float


@pytest.fixture(scope="session")
def qe_al1_fine_ldos(qe_al1: QERun) -> LDOSRun:
    """LDOS of ``qe_al1`` broadened by 0.025 eV on a 0.025 eV grid over all occupied states.

    The window runs from 0.6 eV under the band bottom (-3.4 eV) to 1 eV over E_F (8.0 eV),
    24 widths either side; 521 energies take about 2.5 s of pp.x. This is the broadening at
    which the total energy from the LDOS agrees with QE's to about 1 meV/atom
    (benchmarks/ldos_broadening.py); the wider 0.1 eV kernel costs about 11 meV/atom.
    """
    degauss = 0.025
    ldos_in = qe_al1.directory / "fine_ldos.in"
    ldos_in.write_text(
        "&inputpp\n  prefix='al', outdir='./tmp', filplot='fine', plot_num=3,\n"
        f"  emin=-4.0, emax=9.0125, delta_e=0.025, degauss_ldos={degauss}\n/\n"
        "&plot\n  iflag=3, output_format=6, fileout='.cube'\n/\n"
    )
    _run(["pp.x"], ldos_in, qe_al1.directory / "fine_ldos.out", qe_al1.directory)
    return LDOSRun(qe_al1, sorted(qe_al1.directory.glob("fine[0-9]*.cube")), degauss)
