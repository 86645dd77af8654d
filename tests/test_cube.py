"""Tests of nearsight.io.cube against cube files pp.x wrote on this machine, and of bad input.

The physics check (``test_ldos_dos_matches_pw_eigenvalues``) pins down what pp.x's LDOS is:
the broadening function is that of the pw.x run's smearing (Fermi-Dirac derivative for the
fixtures' ``smearing='fd'``), not a Gaussian; units states/(Ry·Bohr³) with the spin factor.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.io.cube import read_cube_data
from ase.io.cube import write_cube as ase_write_cube

from nearsight.errors import InputError
from nearsight.io.cube import (
    _parse_fixed_width,
    _parse_free_format,
    read_cube,
    read_cube_header,
    read_ldos_cubes,
    write_cube,
)
from nearsight.units import BOHR3_ANGSTROM3, RYDBERG_EV

QE_FIXTURES = ["qe_al4", "qe_al1"]


# ----------------------------------------------------------------------------- helpers


def _pw_text(run) -> str:
    return Path(run.pw_output).read_text()


def _pw_fft_grid(text: str) -> tuple[int, int, int]:
    match = re.search(r"Dense\s+grid:.*FFT dimensions:\s*\(\s*(\d+),\s*(\d+),\s*(\d+)\)", text)
    assert match, "pw.x output has no 'FFT dimensions' line"
    nx, ny, nz = (int(g) for g in match.groups())
    return (nx, ny, nz)


def _pw_electrons(text: str) -> float:
    return float(re.search(r"number of electrons\s*=\s*([\d.]+)", text).group(1))


def _pw_bands(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(k-point weights [nk] summing to 2, eigenvalues [nk, nbnd] in eV) from pw.x's output."""
    nks = int(re.search(r"number of k points=\s*(\d+)", text).group(1))
    # The first nks "wk =" lines are the Cartesian list; the crystal list repeats them.
    weights = np.array([float(w) for w in re.findall(r"wk =\s*([\d.]+)", text)[:nks]])
    blocks = re.findall(r"bands \(ev\):\s*\n\s*\n(.*?)\n\s*\n", text, re.S)[-nks:]
    eigenvalues = np.array([[float(x) for x in re.findall(r"-?\d+\.\d+", b)] for b in blocks])
    assert eigenvalues.shape[0] == nks
    return weights, eigenvalues


def _fermi_dirac_derivative(x: np.ndarray) -> np.ndarray:
    """QE's w0gauss(x, -99): -d/dx of the Fermi function, integrates to 1."""
    x = np.clip(x, -200.0, 200.0)
    return 1.0 / (2.0 + np.exp(x) + np.exp(-x))


def _gaussian(x: np.ndarray) -> np.ndarray:
    """QE's w0gauss(x, 0): exp(-x²)/sqrt(pi), integrates to 1."""
    return np.exp(-(x**2)) / math.sqrt(math.pi)


def _cold_positive(x: np.ndarray) -> np.ndarray:
    """QE's w0gauss(x, -1) (Marzari-Vanderbilt cold smearing) with negative values dropped."""
    y = x - 1.0 / math.sqrt(2.0)
    return np.maximum(np.exp(-np.minimum(y**2, 200.0)) * (2.0 - math.sqrt(2.0) * x), 0.0) / (
        math.sqrt(math.pi)
    )


def _dos_from_bands(weights, eigenvalues, energies, sigma, kernel) -> np.ndarray:
    """[ne] DOS in states/eV: sum_kn wk/sigma * kernel((E - e_kn)/sigma)."""
    x = (energies[:, None, None] - eigenvalues[None]) / sigma
    return (weights[None, :, None] * kernel(x)).sum(axis=(1, 2)) / sigma


def _cube_dos(paths) -> tuple[np.ndarray, np.ndarray, float]:
    """(DOS [ne] in states/eV per cell, energies [ne] in eV, broadening in eV) from LDOS cubes."""
    ldos, energies, header = read_ldos_cubes(paths, dtype=np.float64)
    return ldos.sum(axis=(0, 1, 2)) * header.voxel_volume, energies, header.broadening_ev


def _fortran_e(value: float, digits: int = 5) -> str:
    """One value as pp.x prints it (Fortran E13.5: 0.12345E-11, or 0.12345-100)."""
    if value == 0.0:
        return f"{'0.' + '0' * digits + 'E+00':>13}"
    mantissa, exponent = f"{abs(value):.{digits - 1}e}".split("e")
    exp = int(exponent) + 1
    exp_text = f"E{exp:+03d}" if abs(exp) <= 99 else f"{exp:+04d}"
    text = ("-" if value < 0 else "") + "0." + mantissa.replace(".", "") + exp_text
    return f"{text:>13}"


def _small_atoms() -> Atoms:
    """Two atoms in a skewed (non-orthogonal) cell, one outside the cell."""
    cell = np.array([[3.1, 0.0, 0.0], [0.9, 2.7, 0.0], [0.4, -0.3, 4.2]])
    return Atoms("AlO", positions=[[0.1, 0.2, 0.3], [4.2, -0.5, 2.0]], cell=cell, pbc=True)


def _small_data(shape=(4, 3, 7), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape) * 10.0 ** rng.integers(-12, 3, size=shape)


def _write_small(path: Path, **kwargs) -> Path:
    data = kwargs.pop("data", None)
    write_cube(path, _small_atoms(), _small_data() if data is None else data, **kwargs)
    return path


def _edit_line(path: Path, index: int, new: str | None) -> None:
    lines = path.read_text().split("\n")
    if new is None:
        del lines[index]
    else:
        lines[index] = new
    path.write_text("\n".join(lines))


def _assert_input_error(excinfo: pytest.ExceptionInfo[InputError], path: Path, *words: str):
    err = excinfo.value
    assert err.path == str(path), str(err)
    assert str(path) in str(err)
    assert err.fix, f"no fix given: {err}"
    for word in words:
        assert word.lower() in str(err).lower(), f"{word!r} not in: {err}"


# ----------------------------------------------------------------------------- real pp.x files


@pytest.mark.parametrize("name", QE_FIXTURES)
def test_grid_cell_and_atoms_match_pw(name: str, request: pytest.FixtureRequest) -> None:
    run = request.getfixturevalue(name)
    cube = read_cube(run.density_cube, "density")
    assert cube.shape == _pw_fft_grid(_pw_text(run))
    assert cube.data.dtype == np.float64
    assert cube.atoms.pbc.all()
    # pp.x prints voxel vectors to 1e-6 Bohr; times n <= 27 that stays below 1e-5 Å.
    np.testing.assert_allclose(cube.atoms.cell[:], run.atoms.cell[:], rtol=0, atol=1e-5)
    np.testing.assert_allclose(cube.origin, 0.0, atol=1e-12)
    assert list(cube.atoms.numbers) == list(run.atoms.numbers)
    # pp.x wraps positions into (0, 1] in fractional coordinates: compare modulo the cell.
    frac = np.linalg.solve(run.atoms.cell[:].T, (cube.atoms.positions - run.atoms.positions).T).T
    delta = (frac - np.round(frac)) @ run.atoms.cell[:]
    np.testing.assert_allclose(delta, 0.0, atol=1e-5)
    assert cube.energy_ev is None and cube.broadening_ev is None
    header = read_cube_header(run.density_cube)
    assert header.shape == cube.shape
    np.testing.assert_array_equal(header.atoms.cell[:], cube.atoms.cell[:])


@pytest.mark.parametrize("name", QE_FIXTURES)
def test_density_integrates_to_electron_count(name: str, request: pytest.FixtureRequest) -> None:
    run = request.getfixturevalue(name)
    cube = read_cube(run.density_cube, "density")
    electrons = cube.data.sum() * cube.voxel_volume
    # pp.x prints each value with 5 significant digits (relative rounding <= 5e-6 per value;
    # the sum is better still) and pw.x prints the count as 12.00: 1e-4 is the resolution
    # the files give, not a loose physics tolerance.
    assert electrons == pytest.approx(_pw_electrons(_pw_text(run)), rel=1e-4)
    raw = read_cube(run.density_cube, "raw")
    np.testing.assert_allclose(cube.data, raw.data / BOHR3_ANGSTROM3, rtol=1e-15)


@pytest.mark.parametrize("name", QE_FIXTURES)
def test_ldos_energies_follow_pp_input(name: str, request: pytest.FixtureRequest) -> None:
    run = request.getfixturevalue(name)
    assert run.ldos_cubes
    ldos, energies, header = read_ldos_cubes(run.ldos_cubes)
    assert ldos.shape == (*_pw_fft_grid(_pw_text(run)), len(run.ldos_cubes))
    assert ldos.dtype == np.float32
    expected = run.ldos_emin_ev + run.ldos_de_ev * np.arange(len(run.ldos_cubes))
    # Energies are printed with 4 decimals.
    np.testing.assert_allclose(energies, expected, rtol=0, atol=5e-5)
    assert header.broadening_ev == pytest.approx(run.ldos_degauss_ev, abs=5e-5)
    assert header.energy_ev == energies[0]
    # Each slice is that file read on its own, in 1/(eV·Å³).
    for i, path in enumerate(run.ldos_cubes):
        single = read_cube(path, "ldos")
        raw = read_cube(path, "raw")
        np.testing.assert_allclose(single.data, raw.data / (RYDBERG_EV * BOHR3_ANGSTROM3))
        np.testing.assert_array_equal(ldos[..., i], single.data.astype(np.float32))
    # File order does not matter: the result is sorted by energy.
    shuffled = list(reversed(run.ldos_cubes))
    ldos2, energies2, header2 = read_ldos_cubes(shuffled, dtype=np.float64)
    np.testing.assert_array_equal(energies2, energies)
    np.testing.assert_array_equal(ldos2.astype(np.float32), ldos)
    assert header2.energy_ev == energies[-1]  # the header is that of paths[0]


@pytest.mark.parametrize("name", QE_FIXTURES)
def test_ldos_dos_matches_pw_eigenvalues(name: str, request: pytest.FixtureRequest) -> None:
    """The LDOS summed over the cell is the DOS built from pw.x's eigenvalues and weights.

    Finding (QE 6.7): pp.x broadens each level with the *smearing function of the pw.x
    run* (here Fermi-Dirac, ``w0 = 1/(2 + e^x + e^-x)``) of width ``degauss_ldos``, at the
    absolute energies ``emin + i*delta_e``, with k-point weights summing to 2 (spin
    included): DOS(E) = sum_kn wk/sigma * w0((E - e_kn)/sigma). A Gaussian of the same
    ``degauss_ldos`` (either QE's exp(-x²)/sqrt(pi) or a standard deviation) is off by
    tens of percent, and so is a Lorentzian.
    """
    run = request.getfixturevalue(name)
    text = _pw_text(run)
    assert "Fermi-Dirac smearing" in text, "the fixture's pw.x run no longer uses smearing='fd'"
    weights, eigenvalues = _pw_bands(text)
    assert weights.sum() == pytest.approx(2.0, abs=1e-5)

    dos_cube, energies, sigma = _cube_dos(run.ldos_cubes)
    assert sigma == pytest.approx(run.ldos_degauss_ev)
    dos_fd = _dos_from_bands(weights, eigenvalues, energies, sigma, _fermi_dirac_derivative)
    dos_gauss = _dos_from_bands(weights, eigenvalues, energies, sigma, _gaussian)
    # Eigenvalues are printed to 1e-4 eV; |d ln w0/dE| <= 1/sigma for the Fermi-Dirac
    # derivative, so the reference is good to 5e-5/sigma <= 5e-4 relative (weights: 5e-6).
    # Observed: <= 6e-5.
    np.testing.assert_allclose(dos_cube, dos_fd, rtol=1e-3)
    assert np.max(np.abs(dos_gauss / dos_cube - 1.0)) > 0.1


@pytest.mark.parametrize(
    ("smearing", "printed", "kernel"),
    [
        ("gaussian", "Gaussian smearing", _gaussian),
        ("mv", "Marzari-Vanderbilt smearing", _cold_positive),
    ],
)
def test_ldos_kernel_follows_pw_smearing(
    smearing: str, printed: str, kernel, qe_al1, tmp_path: Path
) -> None:
    """pp.x takes the broadening function from pw.x's smearing, not from its own input.

    Reruns the ``qe_al1`` SCF with another smearing (about 1 s each). With cold smearing
    pp.x drops the levels whose weight is negative, so the reference is clipped at zero.
    """
    pw_in, replaced = re.subn(
        r"smearing='fd', degauss=[0-9.]+",
        f"smearing='{smearing}', degauss=0.01",
        qe_al1.pw_input.read_text(),
    )
    assert replaced == 1
    (tmp_path / "scf.in").write_text(pw_in)
    shutil.copy(qe_al1.pseudo, tmp_path / qe_al1.pseudo.name)
    prefix = re.search(r"prefix='([^']+)'", pw_in).group(1)
    outdir = re.search(r"outdir='([^']+)'", pw_in).group(1)
    n_energies = len(qe_al1.ldos_cubes)
    emax = qe_al1.ldos_emin_ev + (n_energies - 0.5) * qe_al1.ldos_de_ev
    (tmp_path / "ldos.in").write_text(
        f"&inputpp\n  prefix='{prefix}', outdir='{outdir}', filplot='ldos', plot_num=3,\n"
        f"  emin={qe_al1.ldos_emin_ev}, emax={emax}, delta_e={qe_al1.ldos_de_ev},"
        f" degauss_ldos={qe_al1.ldos_degauss_ev}\n/\n"
        "&plot\n  iflag=3, output_format=6, fileout='.cube'\n/\n"
    )
    for program, name in [("pw.x", "scf"), ("pp.x", "ldos")]:
        with (tmp_path / f"{name}.in").open() as fin, (tmp_path / f"{name}.out").open("w") as out:
            subprocess.run(
                [program], stdin=fin, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, check=True
            )
    text = (tmp_path / "scf.out").read_text()
    assert printed in text
    weights, eigenvalues = _pw_bands(text)
    dos_cube, energies, sigma = _cube_dos(sorted(tmp_path.glob("ldos[0-9]*.cube")))
    assert len(energies) == n_energies
    expected = _dos_from_bands(weights, eigenvalues, energies, sigma, kernel)
    # A Gaussian's |d ln w0/dx| = 2|x| exceeds the Fermi-Dirac bound in the tails, hence
    # 2e-3 rather than 1e-3. Observed: 3e-4 (gaussian), 6e-4 (mv).
    np.testing.assert_allclose(dos_cube, expected, rtol=2e-3)


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("quantity", ["raw", "density", "ldos"])
def test_write_read_round_trip(tmp_path: Path, quantity: str) -> None:
    atoms = _small_atoms()
    data = _small_data()
    path = tmp_path / "x.cube"
    origin = np.array([0.3, -1.2, 0.05])
    write_cube(
        path, atoms, data, quantity=quantity, origin=origin, comment=("first", "second line")
    )
    cube = read_cube(path, quantity)
    # Values are written with 8 significant digits.
    np.testing.assert_allclose(cube.data, data, rtol=5e-8, atol=0)
    assert cube.comment == ("first", "second line")
    assert cube.energy_ev is None
    # Header numbers are written to 1e-8 Bohr.
    np.testing.assert_allclose(cube.atoms.cell[:], atoms.cell[:], rtol=0, atol=1e-7)
    np.testing.assert_allclose(cube.atoms.positions, atoms.positions, rtol=0, atol=1e-8)
    np.testing.assert_allclose(cube.origin, origin, rtol=0, atol=1e-8)
    assert list(cube.atoms.numbers) == list(atoms.numbers)
    np.testing.assert_allclose(cube.voxel, atoms.cell[:] / np.array(data.shape)[:, None], atol=1e-8)
    # The file holds QE's native units.
    raw = read_cube(path, "raw").data
    native = {"raw": 1.0, "density": BOHR3_ANGSTROM3, "ldos": RYDBERG_EV * BOHR3_ANGSTROM3}
    np.testing.assert_allclose(raw, data * native[quantity], rtol=5e-8, atol=0)


def test_write_ldos_energy_comment(tmp_path: Path) -> None:
    path = _write_small(tmp_path / "e.cube", quantity="ldos", energy_ev=-5.0, broadening_ev=0.1)
    # pp.x's own wording and layout.
    assert path.read_text().split("\n")[1] == "  Energy =  -5.0000 eV, broadening =   0.1000 eV"
    cube = read_cube(path, "ldos")
    assert (cube.energy_ev, cube.broadening_ev) == (-5.0, 0.1)


@pytest.mark.parametrize("name", QE_FIXTURES)
def test_real_file_round_trip(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    run = request.getfixturevalue(name)
    for source, quantity in [(run.density_cube, "density"), (run.ldos_cubes[0], "ldos")]:
        cube = read_cube(source, quantity)
        copy = tmp_path / f"{quantity}.cube"
        write_cube(copy, cube.atoms, cube.data, quantity=quantity, comment=cube.comment)
        again = read_cube(copy, quantity)
        # pp.x's 5 digits survive our 8 exactly, up to the unit conversion and back.
        np.testing.assert_allclose(again.data, cube.data, rtol=1e-15)
        np.testing.assert_array_equal(read_cube(copy).data, read_cube(source).data)
        np.testing.assert_allclose(again.atoms.cell[:], cube.atoms.cell[:], atol=1e-12)
        np.testing.assert_allclose(again.atoms.positions, cube.atoms.positions, atol=1e-12)
        assert again.energy_ev == cube.energy_ev


def test_ase_reads_our_file(tmp_path: Path) -> None:
    """ASE reads our cube back: same values and atoms.

    ASE returns the values as written (no unit conversion), so they equal our ``"raw"``
    read, i.e. QE-native units: electrons/Bohr³ here, our 1/Å³ data times Bohr³ in Å³.
    ASE converts lengths with its own Bohr (CODATA 2014, 3e-10 relative from our CODATA
    2018), far below the 1e-6 Å compared.
    """
    atoms = _small_atoms()
    data = np.abs(_small_data())
    path = tmp_path / "ours.cube"
    write_cube(path, atoms, data, quantity="density")
    ase_data, ase_atoms = read_cube_data(str(path))
    np.testing.assert_array_equal(ase_data, read_cube(path, "raw").data)
    np.testing.assert_allclose(ase_data, data * BOHR3_ANGSTROM3, rtol=5e-8)
    np.testing.assert_allclose(ase_atoms.cell[:], atoms.cell[:], atol=1e-6)
    np.testing.assert_allclose(ase_atoms.positions, atoms.positions, atol=1e-6)
    assert list(ase_atoms.numbers) == list(atoms.numbers)


def test_we_read_ase_file(tmp_path: Path) -> None:
    """ASE writes one value a line and an 'OUTER LOOP: X, ...' second line; we read it."""
    atoms = _small_atoms()
    data = _small_data()
    path = tmp_path / "ase.cube"
    with path.open("w") as fh:
        ase_write_cube(fh, atoms, data)
    cube = read_cube(path)
    np.testing.assert_allclose(cube.data, data, rtol=1e-6)  # ASE writes '%e': 7 digits
    np.testing.assert_allclose(cube.atoms.cell[:], atoms.cell[:], atol=1e-5)
    np.testing.assert_allclose(cube.atoms.positions, atoms.positions, atol=1e-5)


# ----------------------------------------------------------------------------- value parsing


def test_fixed_width_parser_matches_float() -> None:
    """The vectorised pp.x parser gives what float() gives, including Fortran's 0.1-100."""
    rng = np.random.default_rng(1)
    values = rng.normal(size=600) * 10.0 ** rng.integers(-16, 6, size=600)
    values[:5] = [0.0, 1.0, -1.0, 1.2345e-150, -9.9999e120]
    tokens = [_fortran_e(v) for v in values]
    assert "  0.12345-149" in tokens
    text = "".join(tok + ("\n" if i % 6 == 5 else "") for i, tok in enumerate(tokens)) + "\n"
    expected = np.array([float(re.sub(r"(\d)([+-]\d{3})$", r"\1E\2", t)) for t in tokens])
    fast = _parse_fixed_width(text.encode(), len(tokens))
    assert fast is not None
    # Bit-exact while the power of ten is exact (|exponent - 5| <= 22), else 1 ulp.
    exponent = np.array([int(t[-3:]) if t[-4] == "E" else int(t[-4:]) for t in tokens])
    exact = np.abs(exponent - 5) <= 22
    np.testing.assert_array_equal(fast[exact], expected[exact])
    np.testing.assert_allclose(fast, expected, rtol=2.3e-16, atol=0)
    free = _parse_free_format(text.encode(), len(tokens), Path("x"))
    np.testing.assert_array_equal(free, expected)
    # Not fixed-width (ASE's '%e', one a line): no fast path, the free format reads it.
    assert _parse_fixed_width(b"1.0e-3\n-2.5e+00\n", 2) is None


def test_fortran_three_digit_exponent_in_file(tmp_path: Path) -> None:
    path = _write_small(tmp_path / "f.cube", data=np.ones((1, 1, 2)))
    lines = path.read_text().split("\n")
    lines[-2] = "  0.12345-100 -0.50000E+01"
    path.write_text("\n".join(lines))
    np.testing.assert_allclose(read_cube(path).data.ravel(), [0.12345e-100, -5.0], rtol=2.3e-16)


# ----------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.cube"
    with pytest.raises(InputError) as excinfo:
        read_cube(path)
    _assert_input_error(excinfo, path, "not found")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as excinfo:
        read_cube(tmp_path)
    _assert_input_error(excinfo, tmp_path, "directory")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.cube"
    path.write_text("")
    with pytest.raises(InputError) as excinfo:
        read_cube(path)
    _assert_input_error(excinfo, path, "empty or truncated", "line 1")


@pytest.mark.parametrize("cut", ["line end", "inside a value"])
def test_truncated_values(tmp_path: Path, cut: str) -> None:
    path = _write_small(tmp_path / "t.cube")
    text = path.read_text()
    end = len(text) * 3 // 4
    if cut == "line end":
        end = text.rindex("\n", 0, end) + 1
    elif text[end - 1].isspace() or text[end].isspace():
        end += 3
    path.write_text(text[:end])
    with pytest.raises(InputError) as excinfo:
        read_cube(path)
    expected = "fewer than the 84" if cut == "line end" else "ends inside value"
    _assert_input_error(excinfo, path, expected, "truncated")


def test_header_without_values(tmp_path: Path) -> None:
    path = _write_small(tmp_path / "h.cube")
    path.write_text("\n".join(path.read_text().split("\n")[:8]) + "\n")
    with pytest.raises(InputError) as excinfo:
        read_cube(path)
    _assert_input_error(excinfo, path, "found 0 values")


def test_truncated_header(tmp_path: Path) -> None:
    path = _write_small(tmp_path / "h.cube")
    path.write_text("\n".join(path.read_text().split("\n")[:5]) + "\n")
    with pytest.raises(InputError) as excinfo:
        read_cube(path)
    _assert_input_error(excinfo, path, "line 6", "grid line for axis 3")


def test_too_many_values(tmp_path: Path) -> None:
    path = _write_small(tmp_path / "m.cube")
    path.write_text(path.read_text() + " 1.0\n")
    with pytest.raises(InputError) as excinfo:
        read_cube(path)
    _assert_input_error(excinfo, path, "more than the 84")


@pytest.mark.parametrize("count", ["2.5", "two", ""])
def test_non_integer_atom_count(tmp_path: Path, count: str) -> None:
    path = _write_small(tmp_path / "a.cube")
    _edit_line(path, 2, f"{count:>5}   0.0 0.0 0.0")
    with pytest.raises(InputError) as excinfo:
        read_cube(path)
    _assert_input_error(excinfo, path, "atom count", "not an integer")


def test_negative_atom_count(tmp_path: Path) -> None:
    path = _write_small(tmp_path / "a.cube")
    _edit_line(path, 2, "   -2   0.0 0.0 0.0")
    with pytest.raises(InputError) as excinfo:
        read_cube(path)
    _assert_input_error(excinfo, path, "negative atom count", "not supported")


def test_fewer_than_three_grid_lines(tmp_path: Path) -> None:
    path = _write_small(tmp_path / "g.cube")
    _edit_line(path, 5, None)  # the third grid line; an atom line takes its place
    with pytest.raises(InputError) as excinfo:
        read_cube(path)
    _assert_input_error(excinfo, path, "3 grid lines", "atom line")


@pytest.mark.parametrize("count", ["0", "-4"])
def test_non_positive_grid_count(tmp_path: Path, count: str) -> None:
    path = _write_small(tmp_path / "g.cube")
    _edit_line(path, 3, f"{count:>5}    0.1 0.0 0.0")
    with pytest.raises(InputError) as excinfo:
        read_cube(path)
    _assert_input_error(excinfo, path, "must be positive", "grid line 1")


def test_several_values_per_point(tmp_path: Path) -> None:
    path = _write_small(tmp_path / "v.cube")
    _edit_line(path, 2, "    2   0.0 0.0 0.0 2")
    with pytest.raises(InputError) as excinfo:
        read_cube(path)
    _assert_input_error(excinfo, path, "values per grid point")


def test_other_axis_order(tmp_path: Path) -> None:
    path = _write_small(
        tmp_path / "o.cube", comment=("", "OUTER LOOP: Z, MIDDLE LOOP: Y, INNER LOOP: X")
    )
    with pytest.raises(InputError) as excinfo:
        read_cube(path)
    _assert_input_error(excinfo, path, "x-slowest")


@pytest.mark.parametrize("token", ["NaN", "nan", "Infinity", "-Infinity", "1e400"])
def test_non_finite_values(tmp_path: Path, token: str) -> None:
    path = _write_small(tmp_path / "n.cube")
    lines = path.read_text().split("\n")
    values = lines[8].split()  # the first line of values
    values[2] = token
    lines[8] = " ".join(values)
    path.write_text("\n".join(lines))
    with pytest.raises(InputError) as excinfo:
        read_cube(path)
    _assert_input_error(excinfo, path, "NaN or infinite")


def test_garbage_value(tmp_path: Path) -> None:
    path = _write_small(tmp_path / "g.cube")
    lines = path.read_text().split("\n")
    lines[9] = lines[9].replace("E", "X", 1)
    path.write_text("\n".join(lines))
    with pytest.raises(InputError) as excinfo:
        read_cube(path)
    _assert_input_error(excinfo, path, "not a number")


def test_unknown_quantity(tmp_path: Path) -> None:
    path = _write_small(tmp_path / "q.cube")
    with pytest.raises(InputError, match="unknown quantity"):
        read_cube(path, "potential")  # type: ignore[arg-type]


def test_write_rejects_bad_data(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"\[nx, ny, nz\]"):
        write_cube(tmp_path / "a.cube", _small_atoms(), np.zeros((3, 3)))
    with pytest.raises(InputError, match="NaN"):
        write_cube(tmp_path / "b.cube", _small_atoms(), np.full((2, 2, 2), np.nan))
    with pytest.raises(InputError, match="3 dimensions"):
        write_cube(tmp_path / "c.cube", Atoms("Al"), np.zeros((2, 2, 2)))
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------- LDOS sets


def _ldos_set(tmp_path: Path, energies, shape=(4, 3, 7), atoms=None, broadening=0.1):
    paths = []
    for i, energy in enumerate(energies):
        path = tmp_path / f"ldos{i + 1:03d}.cube"
        write_cube(
            path,
            atoms if atoms is not None else _small_atoms(),
            np.abs(_small_data(shape, seed=i)),
            quantity="ldos",
            energy_ev=energy,
            broadening_ev=broadening,
        )
        paths.append(path)
    return paths


def test_ldos_set_reads_in_energy_order(tmp_path: Path) -> None:
    paths = _ldos_set(tmp_path, [0.2, 0.0, 0.1])
    ldos, energies, header = read_ldos_cubes(paths)
    np.testing.assert_allclose(energies, [0.0, 0.1, 0.2])
    assert ldos.shape == (4, 3, 7, 3) and ldos.dtype == np.float32
    np.testing.assert_allclose(ldos[..., 0], read_cube(paths[1], "ldos").data, rtol=1e-6)
    assert header.energy_ev == 0.2


def test_ldos_grid_mismatch(tmp_path: Path) -> None:
    paths = _ldos_set(tmp_path, [0.0, 0.1])
    odd = tmp_path / "odd.cube"
    write_cube(odd, _small_atoms(), np.ones((4, 3, 6)), quantity="ldos", energy_ev=0.2)
    with pytest.raises(InputError) as excinfo:
        read_ldos_cubes([*paths, odd])
    _assert_input_error(excinfo, odd, "grid shape", str(paths[0]))


def test_ldos_cell_and_atoms_mismatch(tmp_path: Path) -> None:
    (first,) = _ldos_set(tmp_path / "a", [0.0])
    stretched = _small_atoms()
    stretched.set_cell(stretched.cell[:] * 1.01, scale_atoms=False)
    (other,) = _ldos_set(tmp_path / "b", [0.1], atoms=stretched)
    with pytest.raises(InputError) as excinfo:
        read_ldos_cubes([first, other])
    _assert_input_error(excinfo, other, "cell", str(first))

    moved = _small_atoms()
    moved.positions[1] += 0.01
    (other,) = _ldos_set(tmp_path / "c", [0.1], atoms=moved)
    with pytest.raises(InputError) as excinfo:
        read_ldos_cubes([first, other])
    _assert_input_error(excinfo, other, "atom positions (atom 2", str(first))


def test_ldos_missing_energy(tmp_path: Path) -> None:
    paths = _ldos_set(tmp_path, [0.0, 0.1, 0.2, 0.4, 0.5])
    with pytest.raises(InputError) as excinfo:
        read_ldos_cubes(paths)
    _assert_input_error(excinfo, paths[3], "1 energy file(s) missing", "0.2000", str(paths[2]))


def test_ldos_uneven_spacing(tmp_path: Path) -> None:
    paths = _ldos_set(tmp_path, [0.0, 0.1, 0.2, 0.25, 0.35])
    with pytest.raises(InputError) as excinfo:
        read_ldos_cubes(paths)
    _assert_input_error(excinfo, paths[3], "not uniformly spaced")


def test_ldos_duplicate_energy(tmp_path: Path) -> None:
    paths = _ldos_set(tmp_path, [0.0, 0.1, 0.1, 0.2])
    with pytest.raises(InputError) as excinfo:
        read_ldos_cubes(paths)
    _assert_input_error(excinfo, paths[2], "appears twice", str(paths[1]))


def test_ldos_without_energy_comment(tmp_path: Path) -> None:
    paths = _ldos_set(tmp_path, [0.0])
    bare = _write_small(tmp_path / "bare.cube", quantity="ldos")
    with pytest.raises(InputError) as excinfo:
        read_ldos_cubes([*paths, bare])
    _assert_input_error(excinfo, bare, "Energy = ... eV")


def test_ldos_broadening_mismatch(tmp_path: Path) -> None:
    (first,) = _ldos_set(tmp_path / "a", [0.0])
    (other,) = _ldos_set(tmp_path / "b", [0.1], broadening=0.2)
    with pytest.raises(InputError) as excinfo:
        read_ldos_cubes([first, other])
    _assert_input_error(excinfo, other, "broadening")


def test_ldos_no_files() -> None:
    with pytest.raises(InputError, match="no LDOS cube files"):
        read_ldos_cubes([])
