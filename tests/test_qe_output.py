"""Tests of ``nearsight.io.qe_output`` on files pw.x itself wrote.

Three sources: the session fixtures' SCF runs (``qe_al4``, ``qe_al1``), three small pw.x
runs made here (relax, stress, non-converged SCF), and static QE 6.7 outputs in
``tests/data/pwout`` (see its README) for layouts that need no QE to test. Expected values
are read back from the text with independent regexes, never with the reader under test.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.units import GPa
from conftest import LDA_UPF, QE_MISSING, QERun, requires_qe
from scipy.special import erfc

from nearsight.errors import InputError
from nearsight.io.qe_output import read_pw_output
from nearsight.units import BOHR3_ANGSTROM3, BOHR_ANGSTROM, RYDBERG_EV

DATA = Path(__file__).parent / "data" / "pwout"

# QE prints every energy term with 8 decimals in Ry, so a sum of six printed terms can miss
# the printed total by up to 6 x 5e-9 Ry; 2e-7 Ry leaves room and still catches any term
# that is missing, doubled or misassigned (all are >= 1e-3 Ry here).
RY_SUM_TOL = 2e-7
FORCE_RY_BOHR = RYDBERG_EV / BOHR_ANGSTROM
STRESS_RY_BOHR3 = RYDBERG_EV / BOHR3_ANGSTROM3


# --- independent readers of the text ----------------------------------------------------


def _ry_values(text: str, label: str) -> list[float]:
    """Every 'label = value Ry' of the file, in order (Ry)."""
    pattern = rf"^\s*!?\s*{re.escape(label)}\s*=\s*(-?\d+\.\d+)\s+Ry\s*$"
    return [float(v) for v in re.findall(pattern, text, flags=re.MULTILINE)]


def _last_bang_ry(text: str) -> float:
    return float(re.findall(r"^!\s+total energy\s+=\s+(-?\d+\.\d+) Ry", text, re.MULTILINE)[-1])


def _position_blocks(text: str) -> list[tuple[int, str, np.ndarray]]:
    """(offset, unit, coordinates [nat, 3]) of every ATOMIC_POSITIONS block."""
    blocks = []
    for m in re.finditer(
        r"^ATOMIC_POSITIONS \((\w+)\)\n((?:\w+(?:\s+-?\d+\.\d+){3}.*\n)+)", text, re.M
    ):
        rows = [line.split()[1:4] for line in m.group(2).splitlines()]
        blocks.append((m.start(), m.group(1), np.array(rows, dtype=float)))
    return blocks


def _assert_same_structure(got: Atoms, expected: Atoms, tol: float = 1e-6) -> None:
    """Same symbols, cell to tol (Å) and positions to tol (Å) modulo lattice vectors."""
    assert got.get_chemical_symbols() == expected.get_chemical_symbols()
    assert got.pbc.all()
    np.testing.assert_allclose(got.cell[:], expected.cell[:], rtol=0, atol=tol)
    frac = got.get_scaled_positions(wrap=False) - expected.get_scaled_positions(wrap=False)
    frac -= np.round(frac)
    assert np.abs(frac @ expected.cell[:]).max() < tol


def _fermi_dirac(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(x)) without overflow."""
    return 0.5 * (1.0 - np.tanh(0.5 * x))


# --- the session fixtures' SCF runs -----------------------------------------------------

FIXTURES = {
    # name: (electrons, bands, XC as printed, Monkhorst-Pack mesh, dense FFT grid). The
    # grids are QE's choice for ecutrho = 80 Ry: 2 int(sqrt(ecutrho) |a_i| / 2π) + 1 with
    # |a_i| in Bohr, raised to a product of 2, 3, 5 (cubic 7.65 Bohr: 21 -> 24; primitive
    # fcc 5.41 Bohr: 15).
    "qe_al4": (12.0, 20, "PBE", 3, (24, 24, 24)),
    "qe_al1": (3.0, 8, "SLA PZ NOGX NOGC", 6, (15, 15, 15)),
}


@pytest.fixture(params=sorted(FIXTURES))
def qe_run(request: pytest.FixtureRequest) -> QERun:
    return request.getfixturevalue(request.param)


@requires_qe
def test_energies_are_the_printed_ry_values_in_ev(qe_run: QERun) -> None:
    text = qe_run.pw_output.read_text()
    e = read_pw_output(qe_run.pw_output).energies
    assert e.total == pytest.approx(_last_bang_ry(text) * RYDBERG_EV, rel=1e-12)
    for attr, label in [
        ("one_electron", "one-electron contribution"),
        ("hartree", "hartree contribution"),
        ("xc", "xc contribution"),
        ("ewald", "ewald contribution"),
        ("smearing", "smearing contrib. (-TS)"),
        ("internal", "internal energy E=F+TS"),
    ]:
        assert getattr(e, attr) == pytest.approx(
            _ry_values(text, label)[-1] * RYDBERG_EV, rel=1e-12
        )
    assert e.other == {}


@requires_qe
def test_energy_terms_sum_to_the_total(qe_run: QERun) -> None:
    e = read_pw_output(qe_run.pw_output).energies
    terms = e.one_electron + e.hartree + e.xc + e.ewald + e.smearing
    assert abs(terms - e.total) / RYDBERG_EV < RY_SUM_TOL
    assert abs(e.internal + e.smearing - e.total) / RYDBERG_EV < RY_SUM_TOL


@requires_qe
def test_header_values(qe_run: QERun, request: pytest.FixtureRequest) -> None:
    electrons, bands, xc, _, _ = FIXTURES[request.node.callspec.params["qe_run"]]
    pw = read_pw_output(qe_run.pw_output)
    assert pw.number_of_electrons == electrons
    assert pw.number_of_bands == bands
    assert pw.xc_functional == xc
    assert re.fullmatch(r"\d+\.\d+\S*", pw.qe_version)
    assert pw.ecutwfc_ry == 20.0 and pw.ecutrho_ry == 80.0
    assert pw.ecutwfc == pytest.approx(20.0 * RYDBERG_EV)
    assert pw.smearing == "fermi-dirac"
    # conftest asks for degauss=0.0018999 Ry; QE prints it to 1e-4 Ry.
    assert pw.degauss == pytest.approx(0.0019 * RYDBERG_EV, rel=1e-12)
    assert pw.nspin == 1 and pw.converged and pw.job_done
    assert pw.wall_time_s is not None and pw.wall_time_s > 0
    assert pw.forces is None and pw.stress is None  # conftest's scf asks for neither
    (label,) = pw.pseudopotentials
    file, md5 = pw.pseudopotentials[label]
    assert label == "Al" and Path(file).name == qe_run.pseudo.name
    assert md5 == hashlib.md5(qe_run.pseudo.read_bytes()).hexdigest()


@requires_qe
def test_fft_grid_is_the_grid_of_pp_x_cube(qe_run: QERun, request: pytest.FixtureRequest) -> None:
    pw = read_pw_output(qe_run.pw_output)
    assert pw.fft_grid == FIXTURES[request.node.callspec.params["qe_run"]][4]
    text = qe_run.pw_output.read_text()
    dense = re.search(r"Dense\s+grid:.*FFT dimensions: \(\s*(\d+),\s*(\d+),\s*(\d+)\)", text)
    assert pw.fft_grid == tuple(int(n) for n in dense.groups())
    # A cube file's lines 4-6 start with the point counts along each axis.
    cube_lines = qe_run.density_cube.read_text().splitlines()[3:6]
    assert pw.fft_grid == tuple(int(line.split()[0]) for line in cube_lines)


@requires_qe
def test_atoms_are_the_structure_given_to_pw_x(qe_run: QERun) -> None:
    pw = read_pw_output(qe_run.pw_output)
    _assert_same_structure(pw.atoms, qe_run.atoms, tol=1e-6)
    assert pw.species == tuple(qe_run.atoms.get_chemical_symbols())
    np.testing.assert_allclose(pw.atoms.get_masses(), 26.9815)


@requires_qe
def test_kpoints_weights_and_bands(qe_run: QERun, request: pytest.FixtureRequest) -> None:
    mesh = FIXTURES[request.node.callspec.params["qe_run"]][3]
    pw = read_pw_output(qe_run.pw_output)
    nk = pw.number_of_kpoints
    assert pw.kpoints.shape == (nk, 3) and pw.k_weights.shape == (nk,)
    assert pw.eigenvalues.shape == (nk, pw.number_of_bands)
    assert pw.k_weights.sum() == pytest.approx(2.0, abs=1e-6)
    # An unshifted n x n x n mesh has crystal coordinates on multiples of 1/n; this checks
    # the 2π/alat -> 1/Å conversion against the cell.
    frac = pw.kpoints @ pw.atoms.cell[:].T / (2 * np.pi) * mesh
    np.testing.assert_allclose(frac, np.round(frac), atol=1e-5)
    assert pw.eigenvalues.min() < pw.fermi_energy < pw.eigenvalues.max()
    assert not pw.eigenvalues.flags.writeable


@requires_qe
def test_fermi_dirac_occupations_count_the_electrons(qe_run: QERun) -> None:
    """Σ_k w_k Σ_n f((ε_nk - E_F) / degauss) = N_e, with QE's 'fd' degauss being k_B T.

    One check of eigenvalues (eV), k-weights, Fermi level and degauss units together.

    QE prints ε and E_F to 1e-4 eV, so each is off by up to 5e-5 eV: at worst the count
    is that of E_F shifted by ±1e-4 eV. With k_B T = 26 meV and the 4-atom cell's states
    28 meV above E_F, dN/dE_F is 6.5 /eV, so the count can miss N_e by ~6e-4 (it misses by
    3.3e-4): a fixed 1e-4 tolerance would test QE's rounding, not the reader. The test
    brackets N_e between the counts at E_F ± 1e-4 eV instead, a window of ~1e-3
    electrons; a wrong unit or weight would miss it by orders of magnitude.
    """
    pw = read_pw_output(qe_run.pw_output)

    def count(fermi: float) -> float:
        occupations = _fermi_dirac((pw.eigenvalues - fermi) / pw.degauss)
        return float(np.sum(pw.k_weights[:, None] * occupations))

    low, high = count(pw.fermi_energy - 1e-4), count(pw.fermi_energy + 1e-4)
    assert low <= pw.number_of_electrons <= high
    assert high - low < 2e-3
    assert count(pw.fermi_energy) == pytest.approx(pw.number_of_electrons, abs=1e-3)


@requires_qe
def test_truncated_fixture_output_is_refused(qe_al4: QERun, tmp_path: Path) -> None:
    text = qe_al4.pw_output.read_text()
    cut = tmp_path / "cut.out"
    cut.write_text(text[: text.rindex("!    total energy")])
    with pytest.raises(InputError) as info:
        read_pw_output(cut)
    assert info.value.field == "total energy" and "rerun pw.x" in info.value.fix


# --- pw.x runs made here ----------------------------------------------------------------

_AL2 = """&control
  calculation='{calculation}', prefix='{name}', outdir='./tmp', pseudo_dir='./'{control}
/
&system
  ibrav=0, nat=2, ntyp=1, ecutwfc=12, occupations='smearing', smearing='fd', degauss=0.01
/
&electrons
  conv_thr=1e-8{electrons}
/
&ions
/
ATOMIC_SPECIES
Al 26.9815 {pseudo}
CELL_PARAMETERS angstrom
2.8 0.0 0.0
0.0 2.8 0.0
0.0 0.0 4.0
ATOMIC_POSITIONS angstrom
Al 0.10 0.05 0.0
Al 1.40 1.40 2.0
K_POINTS automatic
2 2 2 0 0 0
"""

_RUNS = {
    "relax": ("relax", ", nstep=2", ""),
    "stress": ("scf", ", tstress=.true., tprnfor=.true.", ""),
    "nonconv": ("scf", "", ", electron_maxstep=1"),
}


@pytest.fixture(scope="module")
def al2_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Outputs of three ~0.5 s pw.x runs on a 2-atom Al cell, one atom off its site."""
    if QE_MISSING:
        pytest.skip("Quantum ESPRESSO (pw.x) not on PATH")
    directory = tmp_path_factory.mktemp("pwout")
    shutil.copy(LDA_UPF, directory / LDA_UPF.name)
    outputs = {}
    for name, (calculation, control, electrons) in _RUNS.items():
        pw_in = directory / f"{name}.in"
        pw_in.write_text(
            _AL2.format(
                name=name,
                calculation=calculation,
                control=control,
                electrons=electrons,
                pseudo=LDA_UPF.name,
            )
        )
        outputs[name] = directory / f"{name}.out"
        # No check=True: pw.x exits 3 when a relaxation stops at nstep, and the
        # non-converged run is wanted.
        with pw_in.open() as fin, outputs[name].open("w") as fout:
            subprocess.run(
                ["pw.x"], stdin=fin, stdout=fout, stderr=subprocess.STDOUT, cwd=directory
            )
    return outputs


@requires_qe
def test_relax_reads_the_last_scf_geometry_and_forces(al2_runs: dict[str, Path]) -> None:
    path = al2_runs["relax"]
    text = path.read_text()
    pw = read_pw_output(path)
    bangs = [m.start() for m in re.finditer(r"^!", text, re.MULTILINE)]
    assert len(bangs) == 2  # two ionic steps, so "last" is tested
    assert pw.energies.total == pytest.approx(_last_bang_ry(text) * RYDBERG_EV, rel=1e-12)

    # Forces: the last block, printed after the last '!'.
    force_rows = re.findall(r"atom\s+\d+ type\s+\d+\s+force =\s+(\S+)\s+(\S+)\s+(\S+)", text)
    last_forces = np.array(force_rows[-2:], dtype=float) * FORCE_RY_BOHR
    np.testing.assert_allclose(pw.forces, last_forces, rtol=0, atol=1e-12)
    first_forces = np.array(force_rows[:2], dtype=float) * FORCE_RY_BOHR
    assert np.abs(pw.forces - first_forces).max() > 1e-4

    # Geometry: the positions the last SCF used (the last block before its '!'). pw.x
    # stopped at nstep prints one more block after it: a step it never computed.
    blocks = _position_blocks(text)
    before = [b for b in blocks if b[0] < bangs[-1]]
    after = [b for b in blocks if b[0] > bangs[-1]]
    assert before and after and before[-1][1] == "angstrom"
    np.testing.assert_allclose(pw.atoms.positions, before[-1][2], rtol=0, atol=1e-9)
    assert np.abs(pw.atoms.positions - after[-1][2]).max() > 1e-4
    np.testing.assert_allclose(pw.atoms.cell[:], np.diag([2.8, 2.8, 4.0]), atol=1e-6)
    assert not pw.converged  # stopped at nstep=2, BFGS not converged
    assert pw.job_done


@requires_qe
def test_stress_is_read_in_ase_sign_convention(al2_runs: dict[str, Path]) -> None:
    path = al2_runs["stress"]
    text = path.read_text()
    pw = read_pw_output(path)
    m = re.search(
        r"total\s+stress\s+\(Ry/bohr\*\*3\)\s+\(kbar\)\s+P=\s*(\S+)\n(.*)\n(.*)\n(.*)", text
    )
    qe_ry_bohr3 = np.array([line.split()[:3] for line in m.groups()[1:]], dtype=float)
    np.testing.assert_allclose(pw.stress, -qe_ry_bohr3 * STRESS_RY_BOHR3, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pw.stress, pw.stress.T, atol=1e-12)
    # ASE convention: pressure = -trace/3; QE prints P in kbar (0.1 GPa) to 0.01.
    pressure_kbar = -np.trace(pw.stress) / 3 / GPa * 10
    assert pressure_kbar == pytest.approx(float(m.group(1)), abs=0.006)
    assert pw.forces.shape == (2, 3)
    np.testing.assert_allclose(pw.forces.sum(axis=0), 0.0, atol=1e-6)
    assert pw.converged


@requires_qe
def test_non_converged_scf_is_refused(al2_runs: dict[str, Path]) -> None:
    with pytest.raises(InputError) as info:
        read_pw_output(al2_runs["nonconv"])
    assert info.value.field == "convergence"
    assert info.value.path == str(al2_runs["nonconv"])
    assert "electron_maxstep" in info.value.fix and "mixing_beta" in info.value.fix


# --- static outputs: layouts ------------------------------------------------------------


def test_static_scf_forces_stress_and_sum_rule() -> None:
    pw = read_pw_output(DATA / "al2_scf.out")
    e = pw.energies
    assert abs(e.one_electron + e.hartree + e.xc + e.ewald + e.smearing - e.total) < (
        RY_SUM_TOL * RYDBERG_EV
    )
    assert pw.forces.shape == (2, 3) and pw.stress.shape == (3, 3)
    assert pw.fft_grid == (12, 12, 18)
    assert pw.atoms.get_chemical_formula() == "Al2"
    np.testing.assert_allclose(pw.atoms.get_scaled_positions()[0], [0.03, 0.02, 0.0], atol=1e-7)


def test_spin_polarised_bands_have_a_spin_axis() -> None:
    pw = read_pw_output(DATA / "al2_lsda.out")
    assert pw.nspin == 2
    assert pw.eigenvalues.shape == (2, pw.number_of_kpoints, pw.number_of_bands)
    assert pw.k_weights.sum() == pytest.approx(1.0)  # per spin channel
    # Gaussian smearing: occupation 0.5 erfc(x); both channels together hold N_e.
    x = (pw.eigenvalues - pw.fermi_energy) / pw.degauss
    electrons = np.sum(pw.k_weights[None, :, None] * 0.5 * erfc(x))
    assert electrons == pytest.approx(pw.number_of_electrons, abs=1e-3)


def test_md_has_no_energy_decomposition_and_reads_the_last_scf_geometry() -> None:
    path = DATA / "al2_md.out"
    text = path.read_text()
    pw = read_pw_output(path)
    e = pw.energies
    assert e.one_electron is e.hartree is e.xc is e.ewald is None
    assert e.total == pytest.approx(_last_bang_ry(text) * RYDBERG_EV, rel=1e-12)
    assert abs(e.internal + e.smearing - e.total) < RY_SUM_TOL * RYDBERG_EV
    last_bang = text.rindex("\n!")
    offset, unit, coords = [b for b in _position_blocks(text) if b[0] < last_bang][-1]
    assert unit == "crystal"
    np.testing.assert_allclose(pw.atoms.get_scaled_positions(wrap=False), coords, atol=1e-9)


def test_converged_vc_relax_reads_final_coordinates_at_full_precision() -> None:
    path = DATA / "al2_vcrelax.out"
    text = path.read_text()
    pw = read_pw_output(path)
    final = text[text.index("Begin final coordinates") : text.index("End final coordinates")]
    cell = np.array(
        [line.split() for line in final.split("CELL_PARAMETERS (angstrom)\n")[1].splitlines()[:3]],
        dtype=float,
    )
    np.testing.assert_allclose(pw.atoms.cell[:], cell, rtol=0, atol=1e-12)
    # The final SCF runs on a new FFT grid for the relaxed cell.
    grids = re.findall(r"Dense\s+grid:.*FFT dimensions: \(\s*(\d+),\s*(\d+),\s*(\d+)\)", text)
    assert pw.fft_grid == tuple(int(n) for n in grids[-1]) != tuple(int(n) for n in grids[0])
    assert pw.converged and pw.stress is not None


def test_vc_relax_stopped_at_nstep_maps_kpoints_to_the_final_cell() -> None:
    path = DATA / "al2_vcrelax_nstep3.out"
    text = path.read_text()
    pw = read_pw_output(path)
    assert not pw.converged
    # The k list was printed once, for the initial cell; the band blocks of the last SCF
    # label each k (4 decimals, 2π/alat, alat unchanged) in the current cell.
    last_bands = text[text.rindex("End of self-consistent calculation") :]
    labels = re.findall(r"k =\s*(-?\d+\.\d{4})\s*(-?\d+\.\d{4})\s*(-?\d+\.\d{4})", last_bands)
    alat = float(re.search(r"celldm\(1\)=\s*(\S+)", text).group(1)) * BOHR_ANGSTROM
    in_units = pw.kpoints * alat / (2 * np.pi)
    np.testing.assert_allclose(in_units, np.array(labels, dtype=float), rtol=0, atol=6e-5)
    last_cell = text[: text.rindex("\n!")].rsplit("CELL_PARAMETERS (angstrom)\n", 1)[1]
    cell = np.array([line.split() for line in last_cell.splitlines()[:3]], dtype=float)
    np.testing.assert_allclose(pw.atoms.cell[:], cell, rtol=0, atol=1e-12)


def test_more_than_100_kpoints_without_verbosity_high_gives_empty_bands() -> None:
    pw = read_pw_output(DATA / "al2_k100.out")
    assert pw.number_of_kpoints == 100
    assert pw.kpoints.shape == (0, 3) and pw.k_weights.shape == (0,)
    assert pw.eigenvalues.shape == (0, pw.number_of_bands)
    assert pw.fermi_energy is not None


def test_fixed_occupations_and_species_labels() -> None:
    pw = read_pw_output(DATA / "si2_fixed.out")
    assert pw.smearing is None and pw.degauss is None
    assert pw.energies.smearing is None and pw.energies.internal is None
    assert pw.fermi_energy == pytest.approx(6.5926) and pw.lowest_unoccupied == pytest.approx(
        7.0460
    )
    assert pw.species == ("Si1", "Si2") and pw.atoms.get_chemical_symbols() == ["Si", "Si"]
    np.testing.assert_allclose(pw.atoms.get_masses(), [28.086, 28.0])
    assert set(pw.pseudopotentials) == {"Si1", "Si2"}
    occupied = pw.eigenvalues <= pw.fermi_energy + 1e-9
    assert np.sum(pw.k_weights[:, None] * occupied) == pytest.approx(pw.number_of_electrons)


def test_paw_terms_are_kept_and_add_up() -> None:
    pw = read_pw_output(DATA / "c2_paw.out")
    e = pw.energies
    assert set(e.other) == {"total all-electron energy", "one-center paw contrib."}
    terms = (
        e.one_electron
        + e.hartree
        + e.xc
        + e.ewald
        + e.smearing
        + e.other["one-center paw contrib."]
    )
    assert abs(terms - e.total) < RY_SUM_TOL * RYDBERG_EV


def test_older_energy_block_layout(tmp_path: Path) -> None:
    """QE < 6.6 prints the smearing term after ewald and no internal energy."""
    text = (DATA / "al2_scf.out").read_text()
    smearing = re.search(r"^ +smearing contrib\. \(-TS\).*\n", text, re.MULTILINE).group(0)
    old = re.sub(r"^ +(smearing contrib|internal energy).*\n", "", text, flags=re.MULTILINE)
    old = old.replace(
        "The total energy is F=E-TS. E is the sum of the following terms:",
        "The total energy is the sum of the following terms:\n",
    )
    old = re.sub(
        r"(^ +ewald contribution.*\n)", lambda m: m.group(1) + smearing, old, flags=re.MULTILINE
    )
    path = tmp_path / "old.out"
    path.write_text(old)
    new, got = read_pw_output(DATA / "al2_scf.out").energies, read_pw_output(path).energies
    assert got.internal is None and got.smearing == new.smearing and got.ewald == new.ewald


def test_run_together_eigenvalues_are_split(tmp_path: Path) -> None:
    text = (DATA / "al2_scf.out").read_text()
    start = text.rindex("End of self-consistent calculation")
    line = re.compile(r"^ +-?\d+\.\d{4}(?: +-?\d+\.\d{4}){6}\n", re.MULTILINE).search(text, start)
    values = line.group(0).split()
    wide = "  -103.1727-105.1986-106.5102" + "".join(f"{v:>9}" for v in values[3:]) + "\n"
    path = tmp_path / "wide.out"
    path.write_text(text[: line.start()] + wide + text[line.end() :])
    pw = read_pw_output(path)
    np.testing.assert_allclose(
        pw.eigenvalues[0], [-103.1727, -105.1986, -106.5102, *map(float, values[3:])]
    )


@pytest.mark.parametrize(
    ("clock", "seconds"),
    [
        ("0.08s CPU      0.09s WALL", 0.09),
        (" 2m 5.12s CPU  2m 6.50s WALL", 126.5),
        ("   1h23m CPU    1h24m WALL", 5040.0),
        (" 1d 2h 3m CPU  1d 2h 4m WALL", 93840.0),
    ],
)
def test_wall_time_formats(tmp_path: Path, clock: str, seconds: float) -> None:
    text = (DATA / "al2_scf.out").read_text()
    text = re.sub(r"(PWSCF +:).*WALL", lambda m: m.group(1) + clock, text)
    path = tmp_path / "clock.out"
    path.write_text(text)
    assert read_pw_output(path).wall_time_s == pytest.approx(seconds)


# --- static outputs: bad input ----------------------------------------------------------


def _raises(path: Path) -> InputError:
    with pytest.raises(InputError) as info:
        read_pw_output(path)
    error = info.value
    assert error.path == str(path) and error.field and error.fix
    return error


def test_missing_file(tmp_path: Path) -> None:
    error = _raises(tmp_path / "nowhere.out")
    assert "not found" in str(error)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.out"
    path.write_text("\n  \n")
    assert "empty" in str(_raises(path))


def test_random_text_is_not_pw_output(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("The quick brown fox\n 1.0 2.0 3.0\n! total energy of the fox = 3 Ry\n")
    error = _raises(path)
    assert "not a pw.x output" in str(error) and error.field == "Program PWSCF"


def test_pw_input_is_not_pw_output() -> None:
    assert "input file" in str(_raises(DATA / "al2_scf.in"))


def test_nscf_output_is_refused() -> None:
    error = _raises(DATA / "si2_nscf.out")
    assert error.field == "calculation" and "nscf" in str(error)


def test_qe_error_is_quoted(tmp_path: Path) -> None:
    path = tmp_path / "error.out"
    path.write_text(
        "     Program PWSCF v.6.7MaX starts on 21Nov2026 at  6: 8:37\n\n"
        " %%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%\n"
        "     Error in routine read_conf_from_file (1):\n"
        "     fatal error reading xml file\n"
        " %%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%\n"
    )
    error = _raises(path)
    assert "read_conf_from_file" in str(error) and "fatal error reading xml file" in str(error)


@pytest.mark.parametrize("cut_at", ["!    total energy", "     hartree contribution"])
def test_truncated_output(tmp_path: Path, cut_at: str) -> None:
    text = (DATA / "al2_scf.out").read_text()
    path = tmp_path / "cut.out"
    path.write_text(text[: text.rindex(cut_at)])
    error = _raises(path)
    assert "rerun pw.x" in error.fix


@pytest.mark.parametrize(
    ("pattern", "field"),
    [
        (r"(ewald contribution\s+=\s+)\S+", "ewald contribution"),
        (r"(!\s+total energy\s+=\s+)\S+", "total energy"),
        (r"(the Fermi energy is\s+)\S+", "Fermi energy"),
        (r"(atom\s+2 type\s+1\s+force =\s+)\S+", "force on atom 2"),
        (r"(k =-0\.5000 0\.0000 0\.3500 \(\s+\d+ PWs\)\s+bands \(ev\):\s+)\S+", "eigenvalues"),
    ],
)
def test_nan_is_refused(tmp_path: Path, pattern: str, field: str) -> None:
    text = (DATA / "al2_scf.out").read_text()
    bad, count = re.subn(pattern, lambda m: m.group(1) + "NaN", text)
    assert count >= 1
    path = tmp_path / "nan.out"
    path.write_text(bad)
    error = _raises(path)
    assert error.field.startswith(field) and "NaN" in str(error)


def test_atom_count_mismatch(tmp_path: Path) -> None:
    text = (DATA / "al2_scf.out").read_text()
    path = tmp_path / "nat.out"
    path.write_text(re.sub(r"(number of atoms/cell\s+=\s+)2", r"\g<1>3", text))
    error = _raises(path)
    assert "3" in str(error) and "positions" in error.field
