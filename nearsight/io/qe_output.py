"""Read what pw.x (Quantum ESPRESSO) writes to standard output.

``read_pw_output`` turns the text pw.x prints (QE 6.x and 7.x layouts) into a ``PWOutput``
in nearsight's units: eV, Å, 1/Å. Every number is taken as QE printed it, so it carries
QE's printed precision (see the field notes of ``PWOutput``), and every bad file raises an
``InputError`` that names the file, the field and what to do.

Which SCF cycle is read: the last one with a ``!    total energy`` line. Energies, Fermi
level, eigenvalues, geometry, forces and stress all belong to that cycle, so for relax and
md runs they describe one and the same structure.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from nearsight.errors import InputError
from nearsight.units import BOHR3_ANGSTROM3, BOHR_ANGSTROM, RYDBERG_EV

__all__ = ["PWOutput", "QEEnergies", "read_pw_output"]


@dataclass(frozen=True)
class QEEnergies:
    """The energy block pw.x prints after ``!    total energy``, converted from Ry to eV.

    With smearing ``total`` is the free energy F = E - TS, and
    ``total = one_electron + hartree + xc + ewald + smearing (+ other additive terms such as
    "one-center paw contrib.", "Dispersion Correction", "Hubbard energy")``; QE prints each
    term to 1e-8 Ry, so the sum holds to a few 1e-8 Ry.

    md and hybrid-functional runs print only the total (QE skips the decomposition there),
    so ``one_electron``, ``hartree``, ``xc`` and ``ewald`` are None for them; for scf and
    relax runs they are always set.

    Attributes:
        total: ``!    total energy`` (eV).
        one_electron: ``one-electron contribution`` (eV), or None (see above).
        hartree: ``hartree contribution`` (eV), or None.
        xc: ``xc contribution`` (eV), or None.
        ewald: ``ewald contribution`` (eV), or None.
        smearing: ``smearing contrib. (-TS)`` (eV); None without smearing.
        internal: ``internal energy E=F+TS`` (eV); None where QE does not print it
            (fixed occupations, QE < 6.6).
        other: every other ``label = value Ry`` line of the block (eV), keyed by the label
            as QE prints it with runs of spaces collapsed and a leading ``->`` dropped, e.g.
            ``"one-center paw contrib."``, ``"total all-electron energy"``,
            ``"Harris-Foulkes estimate"``, ``"Dispersion Correction"``.
    """

    total: float
    one_electron: float | None = None
    hartree: float | None = None
    xc: float | None = None
    ewald: float | None = None
    smearing: float | None = None
    internal: float | None = None
    other: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class PWOutput:
    """One pw.x run, read from its standard output.

    Arrays are read-only. Units are eV, Å and 1/Å unless a field name says ``_ry``.

    Attributes:
        path: the file read.
        qe_version: as in ``Program PWSCF v.6.7MaX starts``, e.g. ``"6.7MaX"``.
        atoms: the geometry of the last SCF cycle (Å), element symbols, QE's masses,
            ``pbc=True``. For relax and md runs this is the last geometry for which pw.x
            computed energies and forces, not the untried next step pw.x prints when it
            stops at ``nstep`` (those coordinates have no energy). Precision: positions
            as printed (1e-7 alat in the scf header, 1e-10 in ``ATOMIC_POSITIONS`` blocks);
            the header cell is printed to 1e-6 alat, i.e. ~1e-6 Å.
        species: QE's species label of each atom, ``[nat]`` (``"Fe1"`` where the symbol
            is ``"Fe"``); the keys of ``pseudopotentials``.
        fft_grid: the dense-grid ``FFT dimensions`` (n1, n2, n3) of the last SCF, the
            grid of pp.x's cube files.
        fermi_energy: eV. With smearing or tetrahedra ``the Fermi energy is``; with fixed
            occupations the highest occupied level (as ASE reads it). None only when a
            spin-polarised run with fixed magnetisation printed two Fermi energies, given
            in ``fermi_energies_up_down``. Printed to 1e-4 eV.
        fermi_energies_up_down: (up, down) eV when QE printed ``the spin up/dw Fermi
            energies are``, else None.
        lowest_unoccupied: eV, from ``highest occupied, lowest unoccupied level`` (fixed
            occupations with empty bands), else None.
        number_of_electrons: valence electrons, printed to 0.01.
        number_of_bands: Kohn-Sham states per k-point (and per spin).
        number_of_kpoints: irreducible k-points per spin channel (``number of k points=``).
        nspin: 2 for a collinear spin-polarised run (QE printed ``SPIN UP`` / ``SPIN
            DOWN`` band blocks), else 1.
        kpoints: ``[nk, 3]`` Cartesian k-vectors in 1/Å including the 2π (so that the
            Bloch phase is exp(i k·r)), for the final cell. Empty ``(0, 3)`` when QE did
            not list them (more than 100 k-points without ``verbosity='high'``).
        k_weights: ``[nk]`` as QE prints them: they sum to 2 without spin polarisation and
            to 1 (per spin channel) with nspin=2. Empty when ``kpoints`` is.
        eigenvalues: Kohn-Sham energies of the last SCF cycle, eV, ``[nk, nbands]``, or
            ``[2, nk, nbands]`` (up, down) when nspin=2. Printed to 1e-4 eV. Empty
            (``nk = 0``) when QE did not print them: with more than 100 k-points pw.x
            prints bands only with ``verbosity='high'`` in ``&control``.
        energies: the energy terms of the last SCF cycle (eV).
        smearing: the smearing as QE names it in the k-point header, lower-cased:
            ``"gaussian"``, ``"methfessel-paxton"``, ``"marzari-vanderbilt"``,
            ``"fermi-dirac"`` (input 'fd', 'mv', 'mp', ... all print their full name);
            None for fixed occupations and tetrahedra.
        degauss: the smearing width in eV (QE's ``degauss``; for Fermi-Dirac it is k_B T).
            QE prints it only to 1e-4 Ry (1.4 meV): 0.0018999 Ry reads as 0.0019 Ry; read
            the input when more digits matter. None without smearing.
        ecutwfc: wavefunction cutoff (eV). ecutwfc_ry: the same in Ry, as in the input.
        ecutrho: charge-density cutoff (eV). ecutrho_ry: the same in Ry.
        xc_functional: as after ``Exchange-correlation=``, runs of spaces collapsed, e.g.
            ``"PBE"`` or ``"SLA PZ NOGX NOGC"``.
        pseudopotentials: species label -> (file as printed, MD5 check sum as printed;
            ``""`` when QE printed none).
        forces: ``[nat, 3]`` eV/Å, the total forces of the last SCF cycle; None when it
            printed none.
        stress: ``[3, 3]`` eV/Å³ in ASE's sign convention, stress = (1/V) ∂E/∂ε, so
            pressure = -trace/3. That is the NEGATIVE of the tensor QE prints (QE's
            ``P=`` is +trace/3 of its own). None when not computed (``tstress``).
        wall_time_s: ``PWSCF ... WALL`` in seconds; None if the run did not get that far.
        converged: the SCF converged (a non-converged one raises) and, for relax and
            vc-relax runs, the geometry optimisation converged too; False for a
            relaxation that stopped at ``nstep``.
        job_done: pw.x printed ``JOB DONE.``; False for a run killed after its last
            complete SCF cycle.
    """

    path: Path
    qe_version: str
    atoms: Atoms
    species: tuple[str, ...]
    fft_grid: tuple[int, int, int]
    fermi_energy: float | None
    fermi_energies_up_down: tuple[float, float] | None
    lowest_unoccupied: float | None
    number_of_electrons: float
    number_of_bands: int
    number_of_kpoints: int
    nspin: int
    kpoints: np.ndarray
    k_weights: np.ndarray
    eigenvalues: np.ndarray
    energies: QEEnergies
    smearing: str | None
    degauss: float | None
    ecutwfc: float
    ecutrho: float
    ecutwfc_ry: float
    ecutrho_ry: float
    xc_functional: str
    pseudopotentials: dict[str, tuple[str, str]]
    forces: np.ndarray | None
    stress: np.ndarray | None
    wall_time_s: float | None
    converged: bool
    job_done: bool


# --- numbers ---------------------------------------------------------------------------

# Fortran fixed-width fields run together when a value fills its width ("-10.1234-10.5678"
# in f9.4 band blocks, "0.0000-0.5000" in k labels), so numbers are found by pattern,
# never by splitting on spaces. NaN, Infinity and '****' (overflow) are matched so that
# they are reported instead of silently skipped.
_NUMBER = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eEdD][-+]?\d+)?"
_TOKEN_RE = re.compile(rf"{_NUMBER}|[-+]?(?:nan|infinity|inf)\b|\*{{2,}}", re.IGNORECASE)

_FIX_RERUN = "the file is incomplete: rerun pw.x, or check the job log for why it stopped"
_FIX_NAN = (
    "pw.x diverged or the file is corrupt: check the geometry and pseudopotentials and rerun pw.x"
)

# Substrings located in one pass over the file; the parser then looks only at those lines.
_MARKERS: dict[str, str] = {
    "program": "Program PWSCF",
    "error": "Error in routine",
    "bang": "total energy",
    "end_scf": "End of self-consistent calculation",
    "end_bands": "End of band structure calculation",
    "conv_ok": "convergence has been achieved",
    "conv_bad": "convergence NOT achieved",
    "alat": "lattice parameter (alat)",
    "celldm": "celldm(1)=",
    "axes": "crystal axes: (cart. coord. in units of alat)",
    "tau": "positions (alat units)",
    "cell_block": "CELL_PARAMETERS",
    "pos_block": "ATOMIC_POSITIONS",
    "nks": "number of k points=",
    "fft": "FFT dimensions",
    "forces": "Forces acting on atoms",
    "stress": "(Ry/bohr**3)",
    "wall": "WALL",
    "pseudo": "PseudoPot. #",
    "species": "atomic species   valence",
    "nat": "number of atoms/cell",
    "ntyp": "number of atomic types",
    "nelec": "number of electrons",
    "nbnd": "number of Kohn-Sham states",
    "ecutwfc": "kinetic-energy cutoff",
    "ecutrho": "charge density cutoff",
    "xc": "Exchange-correlation",
    "bfgs": "BFGS Geometry Optimization",
    "bfgs_ok": "bfgs converged",
    "damped": "Damped Dynamics Calculation",
    "damped_ok": "Damped Dynamics: convergence achieved",
    "job_done": "JOB DONE.",
}

_ENERGY_FIELDS = {
    "one-electron contribution": "one_electron",
    "hartree contribution": "hartree",
    "xc contribution": "xc",
    "ewald contribution": "ewald",
    "smearing contrib. (-TS)": "smearing",
    "internal energy E=F+TS": "internal",
}
_REQUIRED_ENERGIES = ("one_electron", "hartree", "xc", "ewald")
_ENERGY_BLOCK_ENDS = (
    "convergence has been achieved",
    "Forces acting",
    "Computing stress",
    "End of",
    "Writing output",
    "JOB DONE",
)

_ENERGY_LINE_RE = re.compile(r"^\s*(?:->\s*)?(?P<label>\S.*?)\s*=\s*(?P<value>\S+)\s+Ry\s*$")
_BANG_RE = re.compile(r"^\s*!+\s*total energy\s*=\s*(?P<value>\S+)\s+Ry")
_TAU_RE = re.compile(r"^\s*\d+\s+(?P<label>\S+)\s+tau\(\s*\d+\)\s*=\s*\((?P<xyz>.*)\)")
_AXIS_RE = re.compile(r"a\(\s*\d\)\s*=\s*\((?P<xyz>.*)\)")
_KPOINT_RE = re.compile(r"k\(\s*\d+\)\s*=\s*\((?P<xyz>.*)\)\s*,\s*wk\s*=\s*(?P<w>\S+)")
_KHEAD_RE = re.compile(r"^\s*k\s*=.*bands\s*\(ev\)")
_FORCE_RE = re.compile(r"^\s*atom\s+(?P<n>\d+)\s+type\s+\d+\s+force\s*=(?P<xyz>.*)$")
_SPECIES_RE = re.compile(rf"^\s*(?P<label>\S+)\s+(?P<zval>{_NUMBER})\s+(?P<mass>{_NUMBER})\s")
_PSEUDO_RE = re.compile(r"PseudoPot\.\s*#\s*(?P<n>\d+)\s+for\s+(?P<psd>\S+)\s+read from file")
_STRESS_RE = re.compile(r"total\s+stress\s*\(Ry/bohr\*\*3\)")
_XC_RE = re.compile(r"Exchange-correlation\s*[=:]\s*(?P<name>[^(]*)")
_CLOCK_RE = re.compile(r"^\s*PWSCF\s*:(?P<cpu>.*?)CPU(?P<wall>.*?)WALL")


def _is_number_line(line: str) -> bool:
    return bool(line.strip()) and not _TOKEN_RE.sub("", line).strip()


class _Parser:
    """Holds the lines of one file and raises InputErrors that name it."""

    def __init__(self, path: Path, lines: list[str]) -> None:
        self.path = path
        self.lines = lines
        self.at: dict[str, list[int]] = {key: [] for key in _MARKERS}
        markers = tuple(_MARKERS.items())
        for i, line in enumerate(lines):
            for key, text in markers:
                if text in line:
                    self.at[key].append(i)
        # Only lines starting with '!' carry the converged energy; plain "total energy"
        # lines are the per-iteration estimates. Blocks pw.x writes start in column 1.
        self.at["bang"] = [i for i in self.at["bang"] if _BANG_RE.match(lines[i])]
        self.at["stress"] = [i for i in self.at["stress"] if _STRESS_RE.search(lines[i])]
        for key in ("cell_block", "pos_block"):
            self.at[key] = [i for i in self.at[key] if lines[i].startswith(_MARKERS[key])]

    # --- errors and numbers ---

    def error(self, message: str, field: str, fix: str) -> InputError:
        return InputError(message, path=self.path, field=field, fix=fix)

    def number(self, token: str, field: str) -> float:
        if token.startswith("*"):
            raise self.error(
                f"QE printed {token!r}: the value overflowed its print format", field, _FIX_NAN
            )
        try:
            value = float(token.replace("D", "e").replace("d", "e"))
        except ValueError:
            raise self.error(f"cannot read {token!r} as a number", field, _FIX_RERUN) from None
        if not math.isfinite(value):
            raise self.error(f"the value is {token}, not a finite number", field, _FIX_NAN)
        return value

    def numbers(self, text: str, field: str, count: int | None = None) -> list[float]:
        tokens = _TOKEN_RE.findall(text)
        if count is not None and len(tokens) < count:
            raise self.error(
                f"expected {count} numbers, found {len(tokens)} in {text.strip()!r}",
                field,
                _FIX_RERUN,
            )
        return [self.number(t, field) for t in tokens[:count]]

    # --- locating lines ---

    def last(self, key: str, before: int | None = None, after: int = -1) -> int | None:
        hits = [i for i in self.at[key] if i > after and (before is None or i < before)]
        return hits[-1] if hits else None

    def require(self, key: str, field: str, before: int) -> int:
        i = self.last(key, before)
        if i is None:
            raise self.error(f"no {field!r} line before the final energy", field, _FIX_RERUN)
        return i

    def value_after(self, key: str, field: str, before: int, sep: str = "=") -> str:
        line = self.lines[self.require(key, field, before)]
        return line.split(sep, 1)[1] if sep in line else ""

    def scalar(self, key: str, field: str, before: int) -> float:
        return self.numbers(self.value_after(key, field, before), field, 1)[0]

    def line(self, i: int) -> str:
        return self.lines[i] if 0 <= i < len(self.lines) else ""


# --- the entry point --------------------------------------------------------------------


def read_pw_output(path: str | PathLike[str]) -> PWOutput:
    """Read the standard output of one pw.x run (scf, relax, vc-relax, md).

    Args:
        path: the file pw.x wrote to stdout (``pw.x < scf.in > scf.out``).

    Returns:
        A ``PWOutput`` for the last SCF cycle in the file; see its fields for units,
        shapes and the precision QE prints with.

    Raises:
        InputError: the file is missing, empty, not pw.x output, stopped with a QE error,
            from a non-converged SCF, from an nscf/bands run (which has no total energy),
            truncated before the final ``!    total energy`` block, holds NaN or overflowed
            numbers where a value is needed, or lists a number of atoms that disagrees
            with ``number of atoms/cell``.
    """
    p = Path(path)
    text = _read_text(p)
    parser = _Parser(p, text.splitlines())
    _check_run(parser, text)
    return _parse(parser)


def _read_text(path: Path) -> str:
    if not path.exists():
        raise InputError(
            "file not found",
            path=path,
            field="pw.x output",
            fix="check the path; pw.x writes its output to stdout (pw.x < scf.in > scf.out)",
        )
    if not path.is_file():
        raise InputError(
            "not a regular file", path=path, field="pw.x output", fix="pass the pw.x output file"
        )
    # errors="replace": a stray byte (e.g. from a crashed node) must not hide the real
    # diagnosis below.
    text = path.read_text(errors="replace")
    if not text.strip():
        raise InputError(
            "the file is empty",
            path=path,
            field="pw.x output",
            fix="rerun pw.x; an empty output means it never started (check the job log)",
        )
    return text


def _check_run(ps: _Parser, text: str) -> None:
    """Refuse files that hold no usable converged SCF, each with its own fix."""
    if not ps.at["program"]:
        other = re.search(r"Program\s+(\S+)\s+v\.", text)
        if other:
            message = f"this is the output of QE's {other.group(1)}, not of pw.x"
        elif re.search(r"&control|&system", text, re.IGNORECASE):
            message = "this looks like a pw.x input file, not its output"
        else:
            message = "not a pw.x output (no 'Program PWSCF' header)"
        raise ps.error(
            message, "Program PWSCF", "pass the file pw.x writes to stdout, e.g. scf.out"
        )
    if ps.at["error"]:
        i = ps.at["error"][-1]
        details = []
        for line in ps.lines[i + 1 : i + 6]:
            if "%%%%" in line:
                break
            details.append(line.strip())
        routine = ps.lines[i].strip()
        raise ps.error(
            f"pw.x stopped with an error: {routine}: {' '.join(details)}",
            routine,
            "fix what QE's message says (usually in the pw.x input) and rerun pw.x",
        )
    last_ok = ps.at["conv_ok"][-1] if ps.at["conv_ok"] else -1
    if ps.at["conv_bad"] and ps.at["conv_bad"][-1] > last_ok:
        raise ps.error(
            ps.lines[ps.at["conv_bad"][-1]].strip(),
            "convergence",
            "the SCF did not converge: raise electron_maxstep or lower mixing_beta "
            "(e.g. 0.3) in &electrons and rerun pw.x",
        )
    if not ps.at["bang"]:
        if ps.at["end_bands"]:
            raise ps.error(
                "this is a non-self-consistent (nscf/bands) run: it has no total energy",
                "calculation",
                "read the output of the scf run that preceded it",
            )
        raise ps.error(
            "no '!    total energy' line: the run stopped before its SCF finished",
            "total energy",
            _FIX_RERUN,
        )


def _parse(ps: _Parser) -> PWOutput:
    bang = ps.at["bang"][-1]
    version_match = re.search(r"Program PWSCF\s+v\.?\s*(\S+)", ps.lines[ps.at["program"][0]])
    qe_version = version_match.group(1) if version_match else ""

    nat = int(ps.scalar("nat", "number of atoms/cell", bang))
    ntyp = int(ps.scalar("ntyp", "number of atomic types", bang))
    species_table = _species_table(ps, ntyp, bang)
    pseudos, elements = _pseudopotentials(ps, species_table, bang)
    atoms, labels = _geometry(ps, nat, species_table, elements, bang)

    nelec = ps.scalar("nelec", "number of electrons", bang)
    nbnd = int(ps.scalar("nbnd", "number of Kohn-Sham states", bang))
    ecutwfc_ry = ps.scalar("ecutwfc", "kinetic-energy cutoff", bang)
    ecutrho_ry = ps.scalar("ecutrho", "charge density cutoff", bang)
    xc_match = _XC_RE.search(ps.lines[ps.require("xc", "Exchange-correlation", bang)])
    xc = " ".join(xc_match["name"].split()) if xc_match else ""
    fft = _fft_grid(ps, bang)

    nks_line = ps.require("nks", "number of k points", bang)
    smearing, degauss = _smearing(ps, nks_line)
    number_of_kpoints = int(ps.numbers(ps.lines[nks_line].split("=", 1)[1], "nks", 1)[0])
    kpoints, weights = _kpoints(ps, nks_line, atoms)

    # Bands and Fermi level of the last cycle only: after the previous '!' (or the
    # header) and from the cycle's 'End of self-consistent calculation' on.
    previous_bang = ps.last("bang", bang)
    cycle_start = nks_line if previous_bang is None else max(previous_bang, nks_line)
    band_start = ps.last("end_scf", bang, after=cycle_start)
    if band_start is None:
        band_start = cycle_start
    eigenvalues, nspin = _eigenvalues(ps, band_start, bang, nbnd)
    if eigenvalues.shape[-2] and kpoints.shape[0] and eigenvalues.shape[-2] != len(kpoints):
        raise ps.error(
            f"{eigenvalues.shape[-2]} band blocks per spin for {len(kpoints)} k-points",
            "eigenvalues",
            _FIX_RERUN,
        )
    fermi, fermi_ud, lumo = _fermi(ps, cycle_start, bang)

    energies = _energies(ps, bang)
    forces = _forces(ps, nat, bang)
    stress = _stress(ps, bang)
    wall = _wall_time(ps)

    if ps.at["bfgs"]:
        converged = bool(ps.at["bfgs_ok"])
    elif ps.at["damped"]:
        converged = bool(ps.at["damped_ok"])
    else:
        converged = True

    for array in (kpoints, weights, eigenvalues, forces, stress):
        if array is not None:
            array.setflags(write=False)
    return PWOutput(
        path=ps.path,
        qe_version=qe_version,
        atoms=atoms,
        species=labels,
        fft_grid=fft,
        fermi_energy=fermi,
        fermi_energies_up_down=fermi_ud,
        lowest_unoccupied=lumo,
        number_of_electrons=nelec,
        number_of_bands=nbnd,
        number_of_kpoints=number_of_kpoints,
        nspin=nspin,
        kpoints=kpoints,
        k_weights=weights,
        eigenvalues=eigenvalues,
        energies=energies,
        smearing=smearing,
        degauss=degauss,
        ecutwfc=ecutwfc_ry * RYDBERG_EV,
        ecutrho=ecutrho_ry * RYDBERG_EV,
        ecutwfc_ry=ecutwfc_ry,
        ecutrho_ry=ecutrho_ry,
        xc_functional=xc,
        pseudopotentials=pseudos,
        forces=forces,
        stress=stress,
        wall_time_s=wall,
        converged=converged,
        job_done=bool(ps.at["job_done"]),
    )


# --- species and pseudopotentials -------------------------------------------------------


def _species_table(ps: _Parser, ntyp: int, before: int) -> list[tuple[str, float]]:
    """[(label, mass)] in QE's species order, from the 'atomic species' table."""
    start = ps.require("species", "atomic species", before)
    table = []
    for line in ps.lines[start + 1 : start + 1 + ntyp]:
        m = _SPECIES_RE.match(line)
        if not m:
            break
        table.append((m["label"], ps.number(m["mass"], f"mass of {m['label']}")))
    if len(table) != ntyp:
        raise ps.error(
            f"'number of atomic types' is {ntyp} but the species table lists {len(table)}",
            "atomic species",
            _FIX_RERUN,
        )
    return table


def _element(name: str) -> str | None:
    m = re.match(r"[A-Za-z]{1,2}", name)
    if not m:
        return None
    letters = m.group(0)
    for candidate in (letters[:2].capitalize(), letters[:1].upper()):
        if candidate in chemical_symbols[1:]:
            return candidate
    return None


def _pseudopotentials(
    ps: _Parser, table: list[tuple[str, float]], before: int
) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """species label -> (file, MD5), and species label -> element symbol."""
    by_index: dict[int, tuple[str, str, str]] = {}
    for i in ps.at["pseudo"]:
        if i >= before:
            break
        m = _PSEUDO_RE.search(ps.lines[i])
        if not m:
            continue
        file = ps.line(i + 1).strip()
        md5_line = ps.line(i + 2)
        md5 = md5_line.split(":", 1)[1].strip() if "MD5 check sum" in md5_line else ""
        # Later entries win: vc-relax reprints the header for its final SCF.
        by_index[int(m["n"])] = (m["psd"], file, md5)
    pseudos: dict[str, tuple[str, str]] = {}
    elements: dict[str, str] = {}
    for n, (label, _mass) in enumerate(table, start=1):
        psd, file, md5 = by_index.get(n, ("", "", ""))
        if n not in by_index:
            raise ps.error(
                f"no 'PseudoPot. # {n}' entry for species {label}", "PseudoPot", _FIX_RERUN
            )
        pseudos[label] = (file, md5)
        # The UPF's element (psd) is authoritative; the label ("Fe1", "Fe_up") is a fallback.
        symbol = _element(psd) or _element(label)
        if symbol is None:
            raise ps.error(
                f"cannot tell the element of species {label!r} (pseudopotential for {psd!r})",
                "atomic species",
                "name species after their element (e.g. Fe, Fe1) in ATOMIC_SPECIES",
            )
        elements[label] = symbol
    return pseudos, elements


# --- geometry ---------------------------------------------------------------------------


def _alat_bohr(ps: _Parser, before: int) -> float:
    # celldm(1) has 6 decimals; 'lattice parameter (alat)' only 4.
    i = ps.last("celldm", before)
    if i is not None:
        return ps.numbers(ps.lines[i].split("celldm(1)=", 1)[1], "celldm(1)", 1)[0]
    return ps.scalar("alat", "lattice parameter (alat)", before)


def _header_cell(ps: _Parser, i: int) -> np.ndarray:
    """Cell (Å, rows a1..a3) of the 'crystal axes' block at line i."""
    alat = _alat_bohr(ps, i) * BOHR_ANGSTROM
    rows = []
    for line in ps.lines[i + 1 : i + 4]:
        m = _AXIS_RE.search(line)
        if not m:
            raise ps.error("the 'crystal axes' block is cut short", "crystal axes", _FIX_RERUN)
        rows.append(ps.numbers(m["xyz"], "crystal axes", 3))
    return np.array(rows) * alat


def _block_cell(ps: _Parser, i: int) -> np.ndarray:
    """Cell (Å) of a 'CELL_PARAMETERS (unit)' block at line i."""
    head = ps.lines[i]
    unit = head[head.find("(") + 1 : head.rfind(")")].strip().lower() if "(" in head else "alat"
    rows = [ps.numbers(line, "CELL_PARAMETERS", 3) for line in ps.lines[i + 1 : i + 4]]
    cell = np.array(rows)
    if unit.startswith("angstrom"):
        return cell
    if unit.startswith("bohr"):
        return cell * BOHR_ANGSTROM
    alat = ps.numbers(unit.split("=", 1)[1], "CELL_PARAMETERS alat", 1)[0] if "=" in unit else None
    return cell * (alat if alat is not None else _alat_bohr(ps, i)) * BOHR_ANGSTROM


def _pick(ps: _Parser, header_key: str, block_key: str, before: int) -> tuple[str, int] | None:
    """The geometry print that belongs to the SCF cycle ending at line ``before``.

    The last one printed before that cycle's '!' line, except that vc-relax reprints its
    relaxed structure in the header of the final SCF at 1e-6 alat precision, right after
    the same structure at 1e-10 in a block: between the previous '!' and this one, a block
    wins over the header.
    """
    previous_bang = ps.last("bang", before)
    if previous_bang is None:
        previous_bang = -1
    block = ps.last(block_key, before, after=previous_bang)
    if block is not None:
        return ("block", block)
    candidates = [
        (i, kind)
        for kind, key in (("header", header_key), ("block", block_key))
        if (i := ps.last(key, before)) is not None
    ]
    if not candidates:
        return None
    i, kind = max(candidates)
    return (kind, i)


def _cell_at(ps: _Parser, before: int) -> np.ndarray:
    pick = _pick(ps, "axes", "cell_block", before)
    if pick is None:
        raise ps.error("no 'crystal axes' block", "crystal axes", _FIX_RERUN)
    kind, i = pick
    return _header_cell(ps, i) if kind == "header" else _block_cell(ps, i)


def _geometry(
    ps: _Parser,
    nat: int,
    table: list[tuple[str, float]],
    elements: dict[str, str],
    before: int,
) -> tuple[Atoms, tuple[str, ...]]:
    cell = _cell_at(ps, before)
    pick = _pick(ps, "tau", "pos_block", before)
    if pick is None:
        raise ps.error("no atomic positions", "positions", _FIX_RERUN)
    kind, i = pick
    labels: list[str] = []
    coords: list[list[float]] = []
    if kind == "header":
        for line in ps.lines[i + 1 : i + 1 + nat]:
            m = _TAU_RE.match(line)
            if not m:
                break
            labels.append(m["label"])
            coords.append(ps.numbers(m["xyz"], "positions (alat units)", 3))
        unit = "alat"
        field_name = "positions (alat units)"
    else:
        head = ps.lines[i]
        unit = head[head.find("(") + 1 : head.rfind(")")].strip().lower() if "(" in head else ""
        field_name = "ATOMIC_POSITIONS"
        for line in ps.lines[i + 1 : i + 1 + nat]:
            parts = line.split(None, 1)
            if len(parts) < 2 or _is_number_line(parts[0]):
                break
            labels.append(parts[0])
            coords.append(ps.numbers(parts[1], "ATOMIC_POSITIONS", 3))
    if len(coords) != nat:
        raise ps.error(
            f"'number of atoms/cell' is {nat} but {len(coords)} positions follow",
            field_name,
            _FIX_RERUN,
        )
    xyz = np.array(coords)
    if unit.startswith("alat"):
        positions = xyz * _alat_bohr(ps, i) * BOHR_ANGSTROM
    elif unit.startswith("bohr"):
        positions = xyz * BOHR_ANGSTROM
    elif unit.startswith("angstrom"):
        positions = xyz
    elif unit.startswith("crystal"):
        # Fractional coordinates refer to the cell in effect when they were printed.
        positions = xyz @ _cell_at(ps, i + 1)
    else:
        raise ps.error(f"unknown position unit {unit!r}", field_name, _FIX_RERUN)

    masses = dict(table)
    unknown = sorted(set(labels) - set(masses))
    if unknown:
        raise ps.error(
            f"atoms of species {unknown} are not in the species table", field_name, _FIX_RERUN
        )
    atoms = Atoms(
        symbols=[elements[label] for label in labels],
        positions=positions,
        cell=cell,
        pbc=True,
        masses=[masses[label] for label in labels],
    )
    return atoms, tuple(labels)


def _fft_grid(ps: _Parser, before: int) -> tuple[int, int, int]:
    hits = [i for i in ps.at["fft"] if i < before]
    # USPP/PAW runs print a 'Smooth grid' too; cube files live on the dense one.
    dense = [i for i in hits if "Dense" in ps.lines[i]]
    chosen = dense or hits
    if not chosen:
        raise ps.error("no 'FFT dimensions' line", "FFT dimensions", _FIX_RERUN)
    text = ps.lines[chosen[-1]].split("FFT dimensions:", 1)[-1]
    n1, n2, n3 = (int(v) for v in ps.numbers(text, "FFT dimensions", 3))
    return (n1, n2, n3)


# --- k-points, bands, Fermi level -------------------------------------------------------


def _smearing(ps: _Parser, nks_line: int) -> tuple[str | None, float | None]:
    m = re.search(r"\d+\s+(?P<name>\S+)\s+smearing, width \(Ry\)=\s*(?P<w>\S+)", ps.lines[nks_line])
    if not m:
        return None, None
    width_ry = ps.number(m["w"], "smearing width")
    return m["name"].lower(), width_ry * RYDBERG_EV


def _kpoints(ps: _Parser, nks_line: int, atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
    coords: list[list[float]] = []
    weights: list[float] = []
    started = False
    for line in ps.lines[nks_line + 1 :]:
        m = _KPOINT_RE.search(line)
        if m:
            started = True
            coords.append(ps.numbers(m["xyz"], "k-points", 3))
            weights.append(ps.number(m["w"], "k-point weights"))
        elif started or ("cart. coord." not in line and line.strip()):
            # The first list is Cartesian; with verbosity='high' a crystal one follows.
            break
    if not coords:
        return np.zeros((0, 3)), np.zeros(0)
    header_axes = ps.last("axes", nks_line)
    if header_axes is None:
        raise ps.error("no 'crystal axes' block before the k-points", "crystal axes", _FIX_RERUN)
    header_cell = _header_cell(ps, header_axes)
    alat = _alat_bohr(ps, nks_line) * BOHR_ANGSTROM
    k_header = np.array(coords) * (2.0 * np.pi / alat)
    # QE lists k in the cell of that header; vc-relax keeps their crystal coordinates
    # fixed while the cell changes, so map through crystal coordinates to the final cell.
    frac = k_header @ header_cell.T / (2.0 * np.pi)
    k_final = 2.0 * np.pi * frac @ np.linalg.inv(atoms.cell[:]).T
    return k_final, np.array(weights)


def _eigenvalues(ps: _Parser, start: int, stop: int, nbnd: int) -> tuple[np.ndarray, int]:
    """Band blocks between lines start and stop: ([nk, nbnd] or [2, nk, nbnd], nspin)."""
    up: list[list[float]] = []
    down: list[list[float]] = []
    current = up
    nspin = 1
    i = start
    while i < stop:
        line = ps.lines[i]
        if "SPIN UP" in line:
            nspin, current = 2, up
        elif "SPIN DOWN" in line:
            nspin, current = 2, down
        elif _KHEAD_RE.match(line):
            n = len(up) + len(down) + 1
            field_name = f"eigenvalues (k-point block {n})"
            i += 1
            while i < stop and not ps.lines[i].strip():
                i += 1
            values: list[float] = []
            while i < stop and _is_number_line(ps.lines[i]):
                values.extend(ps.numbers(ps.lines[i], field_name))
                i += 1
            if len(values) != nbnd:
                raise ps.error(
                    f"expected {nbnd} eigenvalues, found {len(values)}", field_name, _FIX_RERUN
                )
            current.append(values)
            continue
        i += 1
    if nspin == 2:
        if len(up) != len(down):
            raise ps.error(
                f"{len(up)} spin-up but {len(down)} spin-down band blocks",
                "eigenvalues",
                _FIX_RERUN,
            )
        return np.array([up, down], dtype=float).reshape(2, len(up), nbnd), 2
    return np.array(up, dtype=float).reshape(len(up), nbnd), 1


def _fermi(
    ps: _Parser, start: int, stop: int
) -> tuple[float | None, tuple[float, float] | None, float | None]:
    """(Fermi level, (up, down) Fermi levels, lowest unoccupied level), eV.

    The last one printed between lines start and stop, so never one of an earlier cycle.
    """
    for i in range(stop - 1, start, -1):
        line = ps.lines[i]
        if "the Fermi energy is" in line:
            text = line.split("the Fermi energy is", 1)[1]
            return ps.numbers(text, "Fermi energy", 1)[0], None, None
        if "Fermi energies are" in line:
            up, down = ps.numbers(line.split("are", 1)[1], "Fermi energies", 2)
            return None, (up, down), None
        if "highest occupied, lowest unoccupied level" in line:
            homo, lumo = ps.numbers(line.split(":", 1)[1], "highest occupied level", 2)
            return homo, None, lumo
        if "highest occupied level" in line:
            return ps.numbers(line.split(":", 1)[1], "highest occupied level", 1)[0], None, None
    raise ps.error(
        "no Fermi energy or highest occupied level before the final energy",
        "Fermi energy",
        _FIX_RERUN,
    )


# --- energies, forces, stress, timing ---------------------------------------------------


def _energies(ps: _Parser, bang: int) -> QEEnergies:
    total = ps.number(_BANG_RE.match(ps.lines[bang])["value"], "total energy")
    found: dict[str, float] = {}
    other: dict[str, float] = {}
    ended = False
    for line in ps.lines[bang + 1 : bang + 200]:
        if any(s in line for s in _ENERGY_BLOCK_ENDS):
            ended = True
            break
        m = _ENERGY_LINE_RE.match(line)
        if not m:
            continue
        label = " ".join(m["label"].split())
        if label == "total energy":
            continue
        value = ps.number(m["value"], label) * RYDBERG_EV
        if label in _ENERGY_FIELDS:
            found[_ENERGY_FIELDS[label]] = value
        else:
            other[label] = value
    missing = [name for name in _REQUIRED_ENERGIES if name not in found]
    # md and hybrid-functional runs print no decomposition at all (QE's printout=1), so
    # all four terms absent is legitimate; some absent, or no end of block, is a cut file.
    if (missing and len(missing) < len(_REQUIRED_ENERGIES)) or not ended:
        label = next(k for k, v in _ENERGY_FIELDS.items() if v == (missing or ["ewald"])[0])
        raise ps.error(
            f"the energy block after '!    total energy' is cut short (no '{label}' line)",
            label,
            _FIX_RERUN,
        )
    return QEEnergies(total=total * RYDBERG_EV, other=other, **found)


def _forces(ps: _Parser, nat: int, bang: int) -> np.ndarray | None:
    start = ps.last("forces", after=bang)
    if start is None:
        return None
    rows: dict[int, list[float]] = {}
    for line in ps.lines[start + 1 :]:
        m = _FORCE_RE.match(line)
        if m:
            rows[int(m["n"])] = ps.numbers(m["xyz"], f"force on atom {m['n']}", 3)
        elif line.strip() or rows:
            # Total forces come first; with verbosity='high' the contributions follow
            # after a blank line in the same layout.
            break
    if sorted(rows) != list(range(1, nat + 1)):
        raise ps.error(
            f"'number of atoms/cell' is {nat} but forces are printed for {len(rows)} atoms",
            "Forces acting on atoms",
            _FIX_RERUN,
        )
    return np.array([rows[n] for n in range(1, nat + 1)]) * (RYDBERG_EV / BOHR_ANGSTROM)


def _stress(ps: _Parser, bang: int) -> np.ndarray | None:
    start = ps.last("stress", after=bang)
    if start is None:
        return None
    rows = [ps.numbers(ps.line(start + k), "total stress", 3) for k in (1, 2, 3)]
    # QE's tensor is -(1/V) dE/de (its P= is +trace/3); ASE's is +(1/V) dE/de.
    return -np.array(rows) * (RYDBERG_EV / BOHR3_ANGSTROM3)


def _seconds(text: str) -> float | None:
    """QE clock text ('4.06s', ' 2m 5.12s', ' 1h23m', ' 1d 2h 3m') -> seconds."""
    m = re.fullmatch(
        r"\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:([\d.]+)\s*s)?\s*", text
    )
    if not m or not any(m.groups()):
        return None
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _wall_time(ps: _Parser) -> float | None:
    for i in reversed(ps.at["wall"]):
        m = _CLOCK_RE.match(ps.lines[i])
        if m:
            return _seconds(m["wall"])
    return None
