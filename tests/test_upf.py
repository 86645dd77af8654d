"""Tests of nearsight.io.upf.

Header values are checked against what Quantum ESPRESSO itself prints when it reads the
same file (pw.x: MD5, Zval, radial grid size, pseudo type, functional and its indices,
starting charge; ld1.x: integrated core charge), not against the parser. Physical checks
(valence charge, core charge, Coulomb tail of the local potential) test the units.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from ase.data import atomic_numbers
from conftest import requires_qe

from nearsight.errors import InputError
from nearsight.io.upf import Pseudopotential, canonical_xc, read_upf

REPO = Path(__file__).resolve().parents[1]
AL_DIR = REPO / "examples" / "al" / "pseudo"
AL_PBE = AL_DIR / "Al.pbe-nlcc-rrkj.UPF"
AL_LDA = AL_DIR / "Al.pz-vbc.UPF"
AL_LD1_INPUT = AL_DIR / "Al.pbe-nlcc-rrkj.ld1.in"
DATA = Path(__file__).resolve().parent / "data" / "upf"
DEBIAN = Path("/usr/share/espresso/pseudo")

# e²/(4πε₀) in eV·Å (CODATA 2018), independent of nearsight.units: the local potential
# of any pseudopotential tends to -Z_v e²/(4πε₀ r) far from the core.
COULOMB_EV_ANGSTROM = 14.3996454784

# QE's indices (iexch, icorr, igcx, igcc) of the short names, from QE's funct.f90:
# pw.x prints them after "Exchange-correlation=".
QE_XC_INDICES = {
    "PZ": (1, 1, 0, 0),
    "PW": (1, 4, 0, 0),
    "PBE": (1, 4, 3, 4),
    "PBESOL": (1, 4, 10, 8),
    "BLYP": (1, 3, 1, 3),
}
# pw.x's wording (upflib/read_pseudo.f90 summary) -> our normalised type.
QE_PSEUDO_TYPES = {
    "Norm-conserving": "NC",
    "Ultrasoft": "US",
    "Projector augmented-wave": "PAW",
}

requires_ld1 = pytest.mark.skipif(
    shutil.which("ld1.x") is None,
    reason="QE's ld1.x not on PATH: apt-get install quantum-espresso",
)
requires_debian_pseudo = pytest.mark.skipif(
    not DEBIAN.is_dir(),
    reason=f"{DEBIAN} missing: apt-get install quantum-espresso-data",
)


# --- helpers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def v1_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped UPF v1 files, decompressed (pw.x reads plain files)."""
    directory = tmp_path_factory.mktemp("upf_v1")
    for packed in DATA.glob("*.UPF.xz"):
        (directory / packed.name.removesuffix(".xz")).write_bytes(
            lzma.decompress(packed.read_bytes())
        )
    return directory


def _integral(values: np.ndarray, rab: np.ndarray) -> float:
    """∫ f dr on a UPF mesh with Simpson weights in the mesh index, as QE's simpson."""
    n = values.size - (values.size + 1) % 2  # Simpson needs an odd number of points
    weights = np.ones(n)
    weights[1:-1:2] = 4.0
    weights[2:-1:2] = 2.0
    return float(np.sum(weights * values[:n] * rab[:n]) / 3.0)


def _core_charge(pp: Pseudopotential) -> float:
    """Core electrons in the NLCC charge, 4π ∫ r² ρ_c dr (Å, 1/Å³ -> dimensionless)."""
    assert pp.rho_core is not None
    return 4.0 * np.pi * _integral(pp.r**2 * pp.rho_core, pp.rab)


@dataclass(frozen=True)
class PwHeader:
    """What pw.x printed about the one pseudopotential of a run."""

    md5: str
    kind: str
    core_correction: bool
    zval: float
    mesh: int
    nbeta: int
    functional: str
    xc_indices: tuple[int, int, int, int]
    element: str
    starting_charge: float


def _pw_header(output: str) -> PwHeader:
    """Parse the lines pw.x prints about the pseudopotential (QE 6.7 wording)."""
    patterns = {
        "md5": r"MD5 check sum:\s*([0-9a-f]{32})",
        "pseudo": r"Pseudo is (.+?), Zval =\s*([-\d.]+)",
        "grid": r"Using radial grid of\s+(\d+) points,\s+(\d+) beta functions",
        "xc": r"Exchange-correlation=(.*)\n\s*\(([\d\s]+)\)",
        "species": r"atomic species\s+valence\s+mass\s+pseudopotential\s*\n\s*\S+\s+"
        r"[\d.]+\s+[\d.]+\s+(\w+)\s*\(",
        "charge": r"starting charge\s+([\d.]+)",
    }
    found = {key: re.search(pattern, output) for key, pattern in patterns.items()}
    missing = [key for key, match in found.items() if match is None]
    assert not missing, f"pw.x output lacks {missing}; its tail:\n{output[-3000:]}"
    kind, _, extra = found["pseudo"][1].partition(" + ")
    return PwHeader(
        md5=found["md5"][1],
        kind=QE_PSEUDO_TYPES[kind.strip()],
        core_correction=extra.startswith("core cor"),
        zval=float(found["pseudo"][2]),
        mesh=int(found["grid"][1]),
        nbeta=int(found["grid"][2]),
        functional=found["xc"][1].strip(),
        xc_indices=tuple(int(i) for i in found["xc"][2].split()[:4]),
        element=found["species"][1],
        starting_charge=float(found["charge"][1]),
    )


def _run_pw(directory: Path, upf: Path, element: str, lspinorb: bool) -> str:
    """One atom in a cubic box, one SCF step: enough for pw.x to print its header."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(upf, directory / upf.name)
    spin = "noncolin=.true., lspinorb=.true.," if lspinorb else ""
    # Gamma tricks do not work with spinors.
    kpoints = "automatic\n1 1 1 0 0 0" if lspinorb else "gamma"
    (directory / "pw.in").write_text(
        f"""&control
  calculation='scf', prefix='upf', outdir='./tmp', pseudo_dir='./', disk_io='none'
/
&system
  ibrav=1, celldm(1)=8.0, nat=1, ntyp=1, ecutwfc=15.0, ecutrho=60.0,
  occupations='smearing', degauss=0.05, {spin}
/
&electrons
  electron_maxstep=1
/
ATOMIC_SPECIES
{element} 1.0 {upf.name}
ATOMIC_POSITIONS bohr
{element} 0.0 0.0 0.0
K_POINTS {kpoints}
"""
    )
    with (directory / "pw.in").open() as stdin:
        # One SCF step never converges, so pw.x exits with status 2: the header is all
        # this needs, and _pw_header says what is missing if pw.x failed earlier.
        done = subprocess.run(
            ["pw.x"],
            stdin=stdin,
            capture_output=True,
            text=True,
            cwd=directory,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            timeout=120,
        )
    return done.stdout + done.stderr


def _check_against_pw(pp: Pseudopotential, pw: PwHeader, natoms: int) -> None:
    assert pp.md5 == pw.md5
    assert pp.z_valence == pytest.approx(pw.zval, abs=0.05)  # pw.x prints one decimal
    assert pp.mesh_size == pw.mesh
    assert pp.number_of_proj == pw.nbeta
    assert pp.pseudo_type == pw.kind
    assert pp.core_correction == pw.core_correction
    assert pp.element == pw.element
    assert pp.functional == pw.functional
    assert QE_XC_INDICES[pp.xc_functional] == pw.xc_indices
    # pw.x integrates rho_atom in G space, so it loses a little at a low cutoff.
    assert natoms * _integral(pp.rho_atom, pp.rab) == pytest.approx(pw.starting_charge, rel=5e-3)


# --- against pw.x -----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    element: str
    upf_version: int
    lspinorb: bool = False  # fully relativistic US files need it in pw.x


SHIPPED_V1 = [
    Case("C.UPF", "C", 1),
    Case("Si.rel-pbe-rrkj.UPF", "Si", 1, lspinorb=True),
    Case("Pt.rel-pbe-n-rrkjus.UPF", "Pt", 1, lspinorb=True),
]
DEBIAN_V2 = [
    Case("O.pbe-kjpaw.UPF", "O", 2),  # PAW with core correction
    Case("Si.pbe-rrkj.UPF", "Si", 2),  # old "SLA PW PBE PBE" spelling of PBE
    Case("C.pbe-mt_gipaw.UPF", "C", 2),  # PP_RHOATOM holds 3.5 of 4 electrons
]


@requires_qe
@pytest.mark.qe
@pytest.mark.parametrize("case", SHIPPED_V1, ids=lambda c: c.name)
def test_v1_header_matches_pw_x(case: Case, v1_dir: Path, tmp_path: Path) -> None:
    upf = v1_dir / case.name
    pp = read_upf(upf)
    assert pp.upf_version == case.upf_version
    pw = _pw_header(_run_pw(tmp_path, upf, case.element, case.lspinorb))
    _check_against_pw(pp, pw, natoms=1)


@requires_qe
@requires_debian_pseudo
@pytest.mark.qe
@pytest.mark.parametrize("case", DEBIAN_V2, ids=lambda c: c.name)
def test_v2_header_matches_pw_x(case: Case, tmp_path: Path) -> None:
    upf = DEBIAN / case.name
    pp = read_upf(upf)
    assert pp.upf_version == case.upf_version
    pw = _pw_header(_run_pw(tmp_path, upf, case.element, case.lspinorb))
    _check_against_pw(pp, pw, natoms=1)


@requires_qe
@pytest.mark.qe
@pytest.mark.parametrize("fixture", ["qe_al4", "qe_al1"])
def test_al_header_matches_pw_x(fixture: str, request: pytest.FixtureRequest) -> None:
    run = request.getfixturevalue(fixture)
    pp = read_upf(run.pseudo)
    assert pp.upf_version == 2
    pw = _pw_header(run.pw_output.read_text())
    _check_against_pw(pp, pw, natoms=len(run.atoms))


def test_shipped_files_are_the_ones_described() -> None:
    assert read_upf(AL_PBE).core_correction and read_upf(AL_PBE).pseudo_type == "NC"
    assert not read_upf(AL_LDA).core_correction and read_upf(AL_LDA).xc_functional == "PZ"
    assert read_upf(AL_PBE).xc_functional == "PBE"


# --- physics and units --------------------------------------------------------------------


def _all_test_files(v1_dir: Path) -> list[Path]:
    return [AL_PBE, AL_LDA, *sorted(v1_dir.glob("*.UPF"))]


def test_valence_charge_integrates_to_z_valence(v1_dir: Path) -> None:
    for path in _all_test_files(v1_dir):
        pp = read_upf(path)
        # rho_atom is 4π r² ρ in 1/Å and rab is in Å: the integral counts electrons.
        assert _integral(pp.rho_atom, pp.rab) == pytest.approx(pp.z_valence, rel=1e-4), path


def test_local_potential_has_coulomb_tail(v1_dir: Path) -> None:
    for path in _all_test_files(v1_dir):
        pp = read_upf(path)
        far = (pp.r > 4.0) & (pp.r < 10.0)
        assert far.any(), path
        tail = pp.r[far] * pp.v_local[far]  # eV·Å
        np.testing.assert_allclose(
            tail, -pp.z_valence * COULOMB_EV_ANGSTROM, rtol=1e-3, err_msg=str(path)
        )


def test_core_charge_is_physical(v1_dir: Path) -> None:
    for path in (AL_PBE, v1_dir / "Pt.rel-pbe-n-rrkjus.UPF"):
        pp = read_upf(path)
        core = _core_charge(pp)
        # A partial core charge: positive, and no more than the core electrons.
        assert 0.0 < core <= atomic_numbers[pp.element] - pp.z_valence, (path, core)
        assert np.all(pp.rho_core >= -1e-8)  # 1/Å³; tiny negatives are spline noise


@requires_ld1
@pytest.mark.qe
def test_core_charge_matches_ld1_x(tmp_path: Path) -> None:
    """ld1.x prints the core charge of the NLCC it generates; regenerate and compare."""
    shutil.copy(AL_LD1_INPUT, tmp_path / AL_LD1_INPUT.name)
    with (tmp_path / AL_LD1_INPUT.name).open() as stdin:
        done = subprocess.run(
            ["ld1.x"], stdin=stdin, capture_output=True, text=True, cwd=tmp_path, timeout=60
        )
    match = re.search(r"Integrated core pseudo-charge\s*:\s*([\d.]+)", done.stdout)
    assert match, done.stdout[-3000:]
    printed = float(match[1])  # two decimals
    fresh = read_upf(tmp_path / AL_PBE.name)
    for pp in (fresh, read_upf(AL_PBE)):
        assert pp.core_correction
        assert _core_charge(pp) == pytest.approx(printed, abs=0.006)


def test_units_are_angstrom_and_ev() -> None:
    pp = read_upf(AL_LDA)
    raw = AL_LDA.read_text()
    first_r_bohr = float(raw.split("<PP_R>")[1].split()[0])
    assert pp.r[0] == pytest.approx(first_r_bohr * 0.529177210903)
    # PP_MESH says rmax = 57.977 Bohr = 30.680 Å
    assert pp.r[-1] == pytest.approx(30.680, abs=1e-3)
    assert pp.wfc_cutoff is None and pp.rho_cutoff is None  # written as 0 in this file
    pbe = read_upf(AL_PBE)
    assert pbe.wfc_cutoff == pytest.approx(20.948424181001741 * 13.605693122994)


def test_hashes_and_metadata(v1_dir: Path) -> None:
    for path in _all_test_files(v1_dir):
        pp = read_upf(path)
        data = path.read_bytes()
        assert pp.sha256 == hashlib.sha256(data).hexdigest()
        assert pp.md5 == hashlib.md5(data).hexdigest()
        for values in (pp.r, pp.rab, pp.v_local, pp.rho_atom):
            assert values.shape == (pp.mesh_size,)
            assert not values.flags.writeable
    si = read_upf(v1_dir / "Si.rel-pbe-rrkj.UPF")
    assert si.has_so and si.functional == "SLA  PW   PBX  PBC" and si.rho_core is None
    assert (si.l_max, si.number_of_wfc, si.number_of_proj) == (2, 3, 3)
    assert "Dal Corso" in si.info
    assert "Al.pbe-nlcc-rrkj.UPF" in read_upf(AL_PBE).info  # the ld1.x input it holds


def test_reading_is_fast(v1_dir: Path) -> None:
    path = v1_dir / "Pt.rel-pbe-n-rrkjus.UPF"  # 0.8 MB
    start = time.perf_counter()
    read_upf(path)
    assert time.perf_counter() - start < 0.5


@requires_debian_pseudo
def test_reads_every_debian_pseudopotential() -> None:
    """All of QE's own example files: UPF ones read cleanly, other formats are refused."""
    # Files whose PP_RHOATOM does not hold Z_v electrons; pw.x renormalises it (the
    # C.pbe-mt_gipaw case is checked against pw.x's "starting charge" above).
    short_rho_atom = {"C.pbe-mt_gipaw.UPF": 3.5, "Ti.pz-sp-van_ak.UPF": 11.0}
    count = 0
    for path in sorted(DEBIAN.iterdir()):
        if path.suffix.lower() != ".upf":
            with pytest.raises(InputError, match="not a UPF file"):
                read_upf(path)
            continue
        start = time.perf_counter()
        pp = read_upf(path)
        assert time.perf_counter() - start < 0.5, path
        count += 1
        assert canonical_xc(pp.functional) in QE_XC_INDICES or pp.xc_functional == "TPSS"
        charge = short_rho_atom.get(path.name, pp.z_valence)
        assert _integral(pp.rho_atom, pp.rab) == pytest.approx(charge, rel=1e-4), path
        far = (pp.r > 4.0) & (pp.r < 10.0)
        np.testing.assert_allclose(
            pp.r[far] * pp.v_local[far],
            -pp.z_valence * COULOMB_EV_ANGSTROM,
            rtol=2e-3,
            err_msg=str(path),
        )
        if pp.core_correction:
            assert 0.0 < _core_charge(pp) <= atomic_numbers[pp.element], path
    assert count > 50


# --- exchange-correlation names ---------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("PBE", "PBE"),
        ("pbesol", "PBESOL"),
        ("LDA", "PZ"),
        ("PZ", "PZ"),
        ("SLA PZ NOGX NOGC", "PZ"),
        (" SLA  PZ   NOGX NOGC", "PZ"),
        ("SLA PW PBX PBC", "PBE"),
        ("SLA  PW   PBE  PBE", "PBE"),
        ("SLA PW PSX PSC", "PBESOL"),
        ("SLA PW NOGX NOGC", "PW"),
        ("SLA PW", "PW"),
        ("sla+pw+pbx+pbc", "PBE"),
        ("SLA LYP B88 BLYP", "BLYP"),
        ("SLA PW RPB PBC", "REVPBE"),
        ("SLA PW TPSS TPSS", "TPSS"),
    ],
)
def test_canonical_xc(written: str, canonical: str) -> None:
    assert canonical_xc(written) == canonical


@pytest.mark.parametrize("written", ["", "FOO", "SLA PW FOO PBC", "SLA PW PBX PBC VDW1"])
def test_canonical_xc_unknown(written: str) -> None:
    assert canonical_xc(written) is None


def test_unknown_functional_names_functional_and_file(tmp_path: Path) -> None:
    path = tmp_path / "odd.UPF"
    path.write_text(AL_LDA.read_text().replace(" SLA  PZ   NOGX NOGC", "MYSTERY-XC"))
    pp = read_upf(path)  # reading works; only the canonical name is unknown
    assert pp.functional == "MYSTERY-XC"
    with pytest.raises(InputError) as err:
        _ = pp.xc_functional
    assert "MYSTERY-XC" in str(err.value) and str(path) in str(err.value)
    assert err.value.fix


# --- robustness ---------------------------------------------------------------------------


def test_junk_in_pp_info_is_tolerated(tmp_path: Path) -> None:
    text = AL_PBE.read_text()
    junk = "&input\n  title='Al & friends' <not a tag\n  a < b && c > d\n</PP_INPUTFILE>\n"
    path = tmp_path / "junk.UPF"
    path.write_text(
        text.replace("<PP_INFO>", "<PP_INFO>\n" + junk, 1).replace(
            'author="anonymous"', 'author="Smith & Jones"', 1
        )
    )
    pp, reference = read_upf(path), read_upf(AL_PBE)
    assert "Al & friends" in pp.info
    np.testing.assert_array_equal(pp.v_local, reference.v_local)
    np.testing.assert_array_equal(pp.rho_core, reference.rho_core)


def test_xml_prolog_and_trailing_text_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "prolog.UPF"
    path.write_text('<?xml version="1.0"?>\n' + AL_LDA.read_text() + "\ntrailing junk\n")
    assert read_upf(path).mesh_size == read_upf(AL_LDA).mesh_size


def test_fortran_d_exponents(tmp_path: Path, v1_dir: Path) -> None:
    source = v1_dir / "C.UPF"
    path = tmp_path / "C.UPF"
    path.write_text(source.read_text().replace("E+", "D+").replace("E-", "D-"))
    np.testing.assert_array_equal(read_upf(path).v_local, read_upf(source).v_local)


# --- bad input: every error names the file and says what to do ----------------------------


def _error(path: Path) -> InputError:
    with pytest.raises(InputError) as caught:
        read_upf(path)
    error = caught.value
    assert str(path) in str(error)
    assert error.fix and "fix:" in str(error)
    return error


def test_missing_file(tmp_path: Path) -> None:
    error = _error(tmp_path / "nope.UPF")
    assert "not found" in str(error)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert "directory" in str(_error(tmp_path))


@pytest.mark.parametrize("content", ["", "\n  \n"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.UPF"
    path.write_text(content)
    assert "empty" in str(_error(path))


def test_not_a_upf_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.UPF"
    path.write_text("these are not the numbers you are looking for\n")
    error = _error(path)
    assert "not a UPF file" in str(error) and "upfconv.x" in error.fix


@pytest.mark.parametrize("fraction", [0.02, 0.3, 0.6, 0.95])
def test_truncated_v2(tmp_path: Path, fraction: float) -> None:
    data = AL_PBE.read_bytes()
    path = tmp_path / "cut.UPF"
    path.write_bytes(data[: int(len(data) * fraction)])
    error = _error(path)
    assert "truncated" in str(error) and "re-download" in error.fix


@pytest.mark.parametrize("fraction", [0.01, 0.3, 0.6, 0.9, 0.999])
def test_truncated_v1(tmp_path: Path, v1_dir: Path, fraction: float) -> None:
    data = (v1_dir / "C.UPF").read_bytes()
    path = tmp_path / "cut.UPF"
    path.write_bytes(data[: int(len(data) * fraction)])
    error = _error(path)
    assert "truncated" in str(error) and "re-download" in error.fix


def test_v1_cut_between_blocks(tmp_path: Path, v1_dir: Path) -> None:
    text = (v1_dir / "C.UPF").read_text()
    path = tmp_path / "cut.UPF"
    path.write_text(text[: text.index("<PP_RHOATOM>")])
    error = _error(path)
    assert error.field == "PP_RHOATOM" and "truncated" in str(error)


def test_malformed_xml_reports_the_line(tmp_path: Path) -> None:
    lines = AL_LDA.read_text().splitlines(keepends=True)
    bad = next(i for i, line in enumerate(lines) if "</PP_RAB>" in line)
    lines[bad] = lines[bad].replace("</PP_RAB>", "</PP_RABX>")
    path = tmp_path / "bad.UPF"
    path.write_text("".join(lines))
    error = _error(path)
    assert f"line {bad + 1}," in str(error)


@pytest.mark.parametrize("bad", ["nan", "NaN", "inf", "-Infinity"])
def test_nan_or_inf_in_v2_array(tmp_path: Path, bad: str) -> None:
    text = AL_LDA.read_text()
    head, tail = text.split("<PP_LOCAL", 1)
    start = tail.index(">") + 1
    first = tail[start:].split()[0]
    path = tmp_path / "nan.UPF"
    path.write_text(head + "<PP_LOCAL" + tail[:start] + tail[start:].replace(first, bad, 1))
    error = _error(path)
    assert error.field == "PP_LOCAL" and "value 1 of" in str(error)


def test_inf_in_v1_mesh(tmp_path: Path, v1_dir: Path) -> None:
    text = (v1_dir / "C.UPF").read_text()
    head, tail = text.split("<PP_RAB>", 1)
    second = tail.split()[1]
    path = tmp_path / "inf.UPF"
    path.write_text(head + "<PP_RAB>" + tail.replace(second, "Infinity", 1))
    error = _error(path)
    assert error.field == "PP_MESH/PP_RAB" and "value 2 of" in str(error)


def test_garbage_number(tmp_path: Path) -> None:
    text = AL_LDA.read_text()
    head, tail = text.split("<PP_RHOATOM>", 1)
    first = tail.split()[0]
    path = tmp_path / "garbage.UPF"
    path.write_text(head + "<PP_RHOATOM>" + tail.replace(first, "1.0x3", 1))
    error = _error(path)
    assert error.field == "PP_RHOATOM" and "'1.0x3'" in str(error)


def test_v2_array_shorter_than_mesh(tmp_path: Path) -> None:
    text = AL_LDA.read_text()  # its PP_RAB has no size attribute: the mesh check fires
    head, tail = text.split("<PP_RAB>", 1)
    first = tail.split()[0]
    path = tmp_path / "short.UPF"
    path.write_text(head + "<PP_RAB>" + tail.replace(first, "", 1))
    error = _error(path)
    assert error.field == "PP_MESH/PP_RAB" and "170 values" in str(error)
    assert "171 points" in str(error)


def test_v2_array_disagrees_with_its_size(tmp_path: Path) -> None:
    text = AL_PBE.read_text()
    head, tail = text.split('<PP_NLCC size="1135">', 1)
    first = tail.split()[0]
    path = tmp_path / "short.UPF"
    path.write_text(head + '<PP_NLCC size="1135">' + tail.replace(first, "", 1))
    error = _error(path)
    assert error.field == "PP_NLCC" and "1134 values" in str(error)


def test_v1_array_longer_than_mesh(tmp_path: Path, v1_dir: Path) -> None:
    text = (v1_dir / "C.UPF").read_text()
    path = tmp_path / "long.UPF"
    path.write_text(text.replace("</PP_LOCAL>", " -1.0 -1.0\n</PP_LOCAL>", 1))
    error = _error(path)
    assert error.field == "PP_LOCAL" and "463 values" in str(error)


def test_mesh_not_increasing(tmp_path: Path) -> None:
    head, tail = AL_LDA.read_text().split("<PP_R>", 1)
    body, rest = tail.split("</PP_R>", 1)
    numbers = body.split()
    numbers[3], numbers[4] = numbers[4], numbers[3]
    path = tmp_path / "shuffled.UPF"
    path.write_text(head + "<PP_R>\n" + " ".join(numbers) + "\n</PP_R>" + rest)
    error = _error(path)
    assert error.field == "PP_MESH/PP_R" and "point 5" in str(error)


@pytest.mark.parametrize("element", ["Xx", "X", "12"])
def test_unknown_element_v2(tmp_path: Path, element: str) -> None:
    path = tmp_path / "element.UPF"
    path.write_text(AL_LDA.read_text().replace('element="Al"', f'element="{element}"'))
    error = _error(path)
    assert error.field == "PP_HEADER/element" and repr(element) in str(error)


def test_unknown_element_v1(tmp_path: Path, v1_dir: Path) -> None:
    text = (v1_dir / "C.UPF").read_text()
    path = tmp_path / "element.UPF"
    path.write_text(text.replace("  C                    Element", "  Qq   Element", 1))
    error = _error(path)
    assert error.field == "PP_HEADER/element" and "'Qq'" in str(error)


def test_unknown_pseudo_type(tmp_path: Path, v1_dir: Path) -> None:
    text = (v1_dir / "C.UPF").read_text()
    path = tmp_path / "type.UPF"
    path.write_text(text.replace("   NC                  Norm", "   XY                  Norm", 1))
    error = _error(path)
    assert "'XY'" in str(error) and "pseudo type" in error.field


def test_missing_header_attribute(tmp_path: Path) -> None:
    path = tmp_path / "nozval.UPF"
    path.write_text(AL_LDA.read_text().replace('z_valence="3.000000000000e0"', ""))
    error = _error(path)
    assert error.field == "PP_HEADER/z_valence" and "missing" in str(error)


def test_bad_logical(tmp_path: Path) -> None:
    path = tmp_path / "logical.UPF"
    text = AL_LDA.read_text()
    path.write_text(text.replace('core_correction="false"', 'core_correction="maybe"'))
    error = _error(path)
    assert error.field == "PP_HEADER/core_correction"


def test_nlcc_flag_without_nlcc_block(tmp_path: Path) -> None:
    path = tmp_path / "nonlcc.UPF"
    text = AL_LDA.read_text()
    path.write_text(text.replace('core_correction="false"', 'core_correction="true"'))
    error = _error(path)
    assert error.field == "PP_NLCC"


def test_xml_schema_upf_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "schema.UPF"
    path.write_text('<?xml version="1.0"?>\n<qe_pp:pseudo xmlns:qe_pp="x">\n</qe_pp:pseudo>\n')
    assert "upfconv.x" in _error(path).fix
