"""Gaussian cube files as Quantum ESPRESSO's pp.x writes them, converted to nearsight units.

pp.x (``output_format=6``) writes lengths in Bohr, the valence density (``plot_num=0``) in
electrons/Bohr³ and the local density of states (``plot_num=3``) in states/(Ry·Bohr³). This
module is the boundary where those become Å, 1/Å³ and 1/(eV·Å³); nothing else in nearsight
should see Bohr or Rydberg.

Grid convention. QE's real-space grid is periodic: ``n`` points along each cell vector, the
voxel vector is ``cell_vector / n`` (not ``n - 1``), and the point ``n`` would repeat point 0.
The values are written x-slowest, z-fastest, so a C-order reshape gives ``[nx, ny, nz]``,
which is nearsight's layout.

LDOS convention (measured on QE 6.7 against pw.x's own eigenvalues, see
``tests/test_cube.py``). The cube written for energy ``E`` holds

    LDOS(r, E) = sum_{k,n} max(0, w_k / sigma * w0((E - e_{kn}) / sigma)) * |psi_{kn}(r)|²

with ``sigma = degauss_ldos``, ``w_k`` pw.x's k-point weights (summing to 2 without spin
polarisation, so the spin factor is included), ``E`` the absolute energy printed in the
comment (not relative to the Fermi level), and ``w0`` the *smearing function of the pw.x
run*, not always a Gaussian: ``smearing='fd'`` gives the Fermi-Dirac derivative
``1 / (2 + exp(x) + exp(-x))``; ``'gaussian'`` gives ``exp(-x²) / sqrt(pi)`` (so ``sigma``
is sqrt(2) times the standard deviation); ``'mv'`` gives the cold-smearing function with
its negative lobe dropped (pp.x skips levels whose weight is not positive), so such an LDOS
does not integrate to the band count. QE 6.7 has no ``use_gauss_ldos``. pp.x also counts its
energies by truncation, so ``emax`` itself may be left out (emin=6, emax=7, delta_e=0.1
gives 6.0 ... 6.9).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import numpy as np
from ase import Atoms
from numpy.typing import DTypeLike

from nearsight.errors import InputError
from nearsight.io.atomic import atomic_path
from nearsight.units import BOHR3_ANGSTROM3, BOHR_ANGSTROM, RYDBERG_EV

__all__ = [
    "Cube",
    "CubeHeader",
    "Quantity",
    "read_cube",
    "read_cube_header",
    "read_ldos_cubes",
    "write_cube",
]

Quantity = Literal["density", "ldos", "raw"]

PathLike = str | os.PathLike[str]

# Factor from the file's native unit to nearsight's unit, per quantity.
_TO_NEARSIGHT: dict[str, float] = {
    "raw": 1.0,
    "density": 1.0 / BOHR3_ANGSTROM3,
    "ldos": 1.0 / (RYDBERG_EV * BOHR3_ANGSTROM3),
}

# pp.x prints energies with 4 decimals, so each is off by at most 5e-5 eV and a difference
# of two by at most 1e-4 eV; a step measured as a median of such differences adds another
# 1e-4 eV. A larger deviation is a real gap in the energy grid.
_ENERGY_PRINT_HALF_ULP_EV = 5.0e-5
_DUPLICATE_TOL_EV = 2 * _ENERGY_PRINT_HALF_ULP_EV + 1.0e-9
_SPACING_TOL_EV = 4 * _ENERGY_PRINT_HALF_ULP_EV + 1.0e-9

# Header numbers are printed with 6 decimals (pp.x) or more (ours): two files describing the
# same grid and atoms agree to the last printed digit.
_HEADER_TOL_BOHR = 2.0e-6

_ENERGY_RE = re.compile(r"Energy\s*=\s*(\S+)\s*eV", re.IGNORECASE)
_BROADENING_RE = re.compile(r"broadening\s*=\s*(\S+)\s*eV", re.IGNORECASE)
# Fortran drops the "E" when an exponent needs three digits: 0.12345-100 means 0.12345E-100.
_FORTRAN_EXP_RE = re.compile(r"(?<=[0-9.])([+-]\d{3})(?![0-9.])")
_FORTRAN_EXP_BYTES_RE = re.compile(rb"[0-9.][+-][0-9]{3}")

_POW10 = np.array([float(10**i) for i in range(309)])
_SPACE, _MINUS, _PLUS, _POINT = (ord(c) for c in " -+.")
_EXP_LETTERS = (ord("E"), ord("e"))

_FIX_PPX = "regenerate it with pp.x (output_format=6) or write it with nearsight.io.cube.write_cube"


@dataclass(frozen=True, eq=False)
class CubeHeader:
    """Everything in a cube file but the values.

    Attributes:
        shape: grid points ``(nx, ny, nz)`` along the three cell vectors.
        atoms: positions and cell in Å, ``pbc=True``; ``cell = voxel vectors * shape``.
        origin: ``[3]`` position of grid point (0, 0, 0), Å.
        comment: the two comment lines, without their line ends.
        energy_ev: energy of an LDOS cube (pp.x's "Energy = ... eV" comment), eV; else None.
        broadening_ev: pp.x's "broadening = ... eV" (``degauss_ldos``), eV; else None.
    """

    shape: tuple[int, int, int]
    atoms: Atoms
    origin: np.ndarray
    comment: tuple[str, str]
    energy_ev: float | None
    broadening_ev: float | None

    @property
    def voxel(self) -> np.ndarray:
        """``[3, 3]`` voxel vectors (rows), Å: cell vector / grid count."""
        return np.asarray(self.atoms.cell[:]) / np.asarray(self.shape)[:, None]

    @property
    def voxel_volume(self) -> float:
        """Volume of one voxel, Å³: an integral over the cell is ``data.sum() * voxel_volume``."""
        return float(abs(np.linalg.det(self.voxel)))


@dataclass(frozen=True, eq=False)
class Cube:
    """One cube file: grid values, atoms and comments.

    Attributes:
        data: ``[nx, ny, nz]`` float64 values, in nearsight units for the quantity read:
            density in 1/Å³, LDOS in 1/(eV·Å³), ``"raw"`` as written in the file.
        atoms: positions and cell in Å, ``pbc=True``; ``cell = voxel vectors * n``.
        origin: ``[3]`` position of grid point (0, 0, 0), Å.
        comment: the two comment lines, without their line ends.
        energy_ev: energy of an LDOS cube (pp.x's "Energy = ... eV" comment), eV; else None.
        broadening_ev: pp.x's "broadening = ... eV" (``degauss_ldos``), eV; else None.
    """

    data: np.ndarray
    atoms: Atoms
    origin: np.ndarray
    comment: tuple[str, str]
    energy_ev: float | None
    broadening_ev: float | None

    @property
    def shape(self) -> tuple[int, int, int]:
        """Grid points ``(nx, ny, nz)``."""
        nx, ny, nz = self.data.shape
        return (nx, ny, nz)

    @property
    def header(self) -> CubeHeader:
        """The header alone (shares ``atoms`` and ``origin`` with this cube)."""
        return CubeHeader(
            self.shape, self.atoms, self.origin, self.comment, self.energy_ev, self.broadening_ev
        )

    @property
    def voxel(self) -> np.ndarray:
        """``[3, 3]`` voxel vectors (rows), Å: cell vector / grid count."""
        return self.header.voxel

    @property
    def voxel_volume(self) -> float:
        """Volume of one voxel, Å³: an integral over the cell is ``data.sum() * voxel_volume``."""
        return self.header.voxel_volume


@dataclass(frozen=True, eq=False)
class _RawHeader:
    """A header as written (Bohr), kept for exact comparisons between files."""

    comment: tuple[str, str]
    origin_bohr: np.ndarray  # [3]
    shape: tuple[int, int, int]
    voxel_bohr: np.ndarray  # [3, 3], rows are voxel vectors
    numbers: np.ndarray  # [natoms] int
    positions_bohr: np.ndarray  # [natoms, 3]
    energy_ev: float | None
    broadening_ev: float | None

    @property
    def count(self) -> int:
        return self.shape[0] * self.shape[1] * self.shape[2]

    def to_header(self) -> CubeHeader:
        cell = self.voxel_bohr * np.asarray(self.shape, dtype=float)[:, None] * BOHR_ANGSTROM
        atoms = Atoms(
            numbers=self.numbers,
            positions=self.positions_bohr * BOHR_ANGSTROM,
            cell=cell,
            pbc=True,
        )
        return CubeHeader(
            shape=self.shape,
            atoms=atoms,
            origin=self.origin_bohr * BOHR_ANGSTROM,
            comment=self.comment,
            energy_ev=self.energy_ev,
            broadening_ev=self.broadening_ev,
        )


# ----------------------------------------------------------------------------- reading


def read_cube(path: PathLike, quantity: Quantity = "raw") -> Cube:
    """Read one cube file.

    Args:
        path: a cube file, e.g. from pp.x with ``output_format=6``.
        quantity: what the file holds, which sets the unit conversion: ``"density"``
            (pp.x ``plot_num=0``, electrons/Bohr³ -> 1/Å³), ``"ldos"`` (``plot_num=3``,
            states/(Ry·Bohr³) -> 1/(eV·Å³)) or ``"raw"`` (values as written).

    Returns:
        The cube; ``data`` is ``[nx, ny, nz]`` float64 in nearsight units.

    Raises:
        InputError: missing or unreadable file, malformed header, too few or too many values,
            NaN or infinite values.
    """
    factor = _factor(quantity)
    path = Path(path)
    with _open(path) as fh:
        raw = _read_header(fh.readline, path)
        values = _parse_values(fh.read(), raw.count, path)
    data = values.reshape(raw.shape)
    if factor != 1.0:
        data *= factor
    header = raw.to_header()
    return Cube(
        data=data,
        atoms=header.atoms,
        origin=header.origin,
        comment=header.comment,
        energy_ev=header.energy_ev,
        broadening_ev=header.broadening_ev,
    )


def read_cube_header(path: PathLike) -> CubeHeader:
    """Read only the header of a cube file (cheap: the values are not read).

    Raises:
        InputError: missing file or malformed header.
    """
    path = Path(path)
    with _open(path) as fh:
        return _read_header(fh.readline, path).to_header()


def read_ldos_cubes(
    paths: Sequence[PathLike], dtype: DTypeLike = np.float32
) -> tuple[np.ndarray, np.ndarray, CubeHeader]:
    """Read the LDOS cubes of one snapshot (pp.x ``plot_num=3``, one file per energy).

    The output is allocated once and filled one file at a time, so memory stays at the
    output plus one file.

    Args:
        paths: the cube files, in any order; each must carry pp.x's
            ``Energy = ... eV`` comment on its second line.
        dtype: floating type of the returned LDOS.

    Returns:
        ``(ldos, energies, header)``: ``ldos`` is ``[nx, ny, nz, ne]`` in 1/(eV·Å³);
        ``energies`` is ``[ne]`` float64 in eV, ascending, as printed by pp.x (4 decimals),
        and ``ldos[..., i]`` belongs to ``energies[i]``; ``header`` is that of ``paths[0]``.

    Raises:
        InputError: no files; a file that cannot be read as a cube; a file without an
            energy; files that differ in grid shape, cell, origin, atoms or broadening;
            duplicate energies; energies not uniformly spaced (a missing file).
    """
    out_dtype = np.dtype(dtype)
    if out_dtype.kind != "f":
        raise InputError(
            f"dtype must be a floating type, got {out_dtype}",
            field="dtype",
            fix="pass np.float32 or np.float64",
        )
    files = [Path(p) for p in paths]
    if not files:
        raise InputError(
            "no LDOS cube files given",
            field="paths",
            fix="pass the ldos*.cube files pp.x wrote for one snapshot",
        )

    # First pass reads headers only, so energies can be sorted before any data is placed
    # and a bad file is reported before minutes of reading.
    headers = []
    for path in files:
        with _open(path) as fh:
            header = _read_header(fh.readline, path)
        if header.energy_ev is None:
            raise InputError(
                "no 'Energy = ... eV' on the second comment line, so this cube's energy is unknown",
                path=path,
                field="line 2",
                fix="pass the cubes pp.x wrote with plot_num=3 and emin/emax/delta_e "
                "(their second line reads 'Energy = ... eV, broadening = ... eV')",
            )
        _check_same_grid(files[0], headers[0] if headers else header, path, header)
        headers.append(header)

    energies = np.array([h.energy_ev for h in headers], dtype=np.float64)
    order = np.argsort(energies, kind="stable")
    _check_energy_grid(energies[order], [files[i] for i in order])

    first = headers[0]
    ldos = np.empty((*first.shape, len(files)), dtype=out_dtype)
    factor = _TO_NEARSIGHT["ldos"]
    for slot, index in enumerate(order):
        path = files[index]
        with _open(path) as fh:
            header = _read_header(fh.readline, path)
            # The file may have been replaced since the first pass.
            _check_same_grid(files[0], first, path, header)
            values = _parse_values(fh.read(), header.count, path)
        values *= factor
        ldos[..., slot] = values.reshape(header.shape)
    return ldos, energies[order], first.to_header()


def _factor(quantity: str) -> float:
    try:
        return _TO_NEARSIGHT[quantity]
    except KeyError:
        raise InputError(
            f"unknown quantity {quantity!r}",
            field="quantity",
            fix="use 'density' (pp.x plot_num=0), 'ldos' (plot_num=3) or 'raw'",
        ) from None


def _open(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise InputError(
            "cube file not found",
            path=path,
            fix="check the path; pp.x writes the cube named by 'fileout' in its &plot namelist",
        ) from None
    except IsADirectoryError:
        raise InputError(
            "is a directory, not a cube file", path=path, fix="pass the .cube file itself"
        ) from None
    except OSError as exc:
        raise InputError(
            f"cannot open cube file: {exc.strerror}", path=path, fix="check its permissions"
        ) from None


def _read_header(readline: Callable[[], bytes], path: Path) -> _RawHeader:
    """Parse the comment, origin, grid and atom lines; leave the reader at the values."""
    line_no = 0

    def next_line(what: str) -> str:
        nonlocal line_no
        line_no += 1
        line = readline()
        if not line:
            raise InputError(
                f"file ends at line {line_no}, where the {what} should be "
                "(empty or truncated cube file)",
                path=path,
                field=f"line {line_no}",
                fix=_FIX_PPX,
            )
        return line.decode("latin-1").rstrip("\r\n")

    comment = (next_line("first comment line"), next_line("second comment line"))
    if "OUTER LOOP" in comment[1].upper():
        order = [t[0] for t in comment[1].upper().split()[2::3]]
        if order != ["X", "Y", "Z"]:
            raise InputError(
                f"values are ordered {comment[1].strip()!r}; only x-slowest, z-fastest "
                "(OUTER LOOP: X, MIDDLE LOOP: Y, INNER LOOP: Z) is supported",
                path=path,
                field="line 2",
                fix="rewrite the cube with x as the outer and z as the inner loop",
            )

    tokens = next_line("atom count and origin").split()
    natoms = _parse_int(tokens[0] if tokens else "", path, line_no, "atom count")
    if natoms < 0:
        raise InputError(
            f"negative atom count {natoms}: this cube convention (molecular-orbital cubes "
            "with an extra orbital line) is not supported",
            path=path,
            field="line 3 (atom count)",
            fix="use a density or LDOS cube from pp.x, whose atom count is positive",
        )
    if len(tokens) < 4:
        raise InputError(
            f"line 3 has {len(tokens)} fields; expected the atom count and 3 origin coordinates",
            path=path,
            field="line 3",
            fix=_FIX_PPX,
        )
    origin = _parse_floats(tokens[1:4], path, line_no, "origin")
    if len(tokens) >= 5 and tokens[4] != "1":
        raise InputError(
            f"{tokens[4]} values per grid point; only one value per point is supported",
            path=path,
            field="line 3",
            fix="write one quantity per cube file",
        )

    counts = []
    voxel = np.empty((3, 3))
    for axis in range(3):
        tokens = next_line(f"grid line for axis {axis + 1} of 3").split()
        field = f"line {line_no} (grid line {axis + 1} of 3)"
        if len(tokens) != 4:
            raise InputError(
                f"expected 3 grid lines of 'count vx vy vz', but line {line_no} has "
                f"{len(tokens)} fields" + (" (an atom line?)" if len(tokens) == 5 else ""),
                path=path,
                field=field,
                fix=_FIX_PPX,
            )
        count = _parse_int(tokens[0], path, line_no, "grid count")
        if count <= 0:
            raise InputError(
                f"grid count {count} must be positive (a negative count, which some programs "
                "use to mean Å units, is not supported: pp.x writes Bohr)",
                path=path,
                field=field,
                fix="write the grid with positive counts and voxel vectors in Bohr",
            )
        counts.append(count)
        voxel[axis] = _parse_floats(tokens[1:], path, line_no, "voxel vector")
    if abs(np.linalg.det(voxel)) < 1e-12:
        raise InputError(
            "the three voxel vectors are linearly dependent (zero cell volume)",
            path=path,
            field="lines 4-6",
            fix="write the voxel vectors of a 3-dimensional cell",
        )

    numbers = np.empty(natoms, dtype=int)
    positions = np.empty((natoms, 3))
    for i in range(natoms):
        tokens = next_line(f"atom {i + 1} of {natoms}").split()
        if len(tokens) != 5:
            raise InputError(
                f"atom line has {len(tokens)} fields; expected 'Z charge x y z'",
                path=path,
                field=f"line {line_no} (atom {i + 1})",
                fix=_FIX_PPX,
            )
        numbers[i] = _parse_int(tokens[0], path, line_no, "atomic number")
        if not 0 <= numbers[i] <= 118:
            raise InputError(
                f"atomic number {numbers[i]} is not an element",
                path=path,
                field=f"line {line_no} (atom {i + 1})",
                fix=_FIX_PPX,
            )
        positions[i] = _parse_floats(tokens[2:], path, line_no, "atom position")

    energy = _comment_number(_ENERGY_RE, comment[1], path, "Energy")
    broadening = _comment_number(_BROADENING_RE, comment[1], path, "broadening")
    return _RawHeader(
        comment=comment,
        origin_bohr=origin,
        shape=(counts[0], counts[1], counts[2]),
        voxel_bohr=voxel,
        numbers=numbers,
        positions_bohr=positions,
        energy_ev=energy,
        broadening_ev=broadening,
    )


def _parse_int(token: str, path: Path, line_no: int, what: str) -> int:
    try:
        return int(token)
    except ValueError:
        raise InputError(
            f"{what} {token!r} is not an integer",
            path=path,
            field=f"line {line_no} ({what})",
            fix=_FIX_PPX,
        ) from None


def _parse_floats(tokens: list[str], path: Path, line_no: int, what: str) -> np.ndarray:
    try:
        values = np.array([float(t) for t in tokens], dtype=float)
    except ValueError:
        values = np.array([np.nan])
    if values.shape != (3,) or not np.isfinite(values).all():
        raise InputError(
            f"{what} {' '.join(tokens)!r} is not 3 finite numbers",
            path=path,
            field=f"line {line_no} ({what})",
            fix=_FIX_PPX,
        )
    return values


def _comment_number(pattern: re.Pattern[str], comment: str, path: Path, what: str) -> float | None:
    match = pattern.search(comment)
    if match is None:
        return None
    try:
        value = float(match.group(1).rstrip(","))
    except ValueError:
        value = float("nan")
    if not np.isfinite(value):
        raise InputError(
            f"{what} {match.group(1)!r} in the comment is not a number",
            path=path,
            field="line 2",
            fix=f"write '{what} = <number> eV' as pp.x does",
        )
    return value


def _parse_values(text: bytes, count: int, path: Path) -> np.ndarray:
    """All values after the header as a flat float64 array of exactly ``count`` numbers."""
    values = _parse_fixed_width(text, count)
    if values is None:
        values = _parse_free_format(text, count, path)
    if values.size != count:
        if values.size < count:
            message = f"found {values.size} values, fewer than the {count} the grid holds"
            fix = "the file is truncated: " + _FIX_PPX
        else:
            message = f"found {values.size} values, more than the {count} the grid holds"
            fix = "check the grid counts on lines 4-6, or write one quantity per cube file"
        raise InputError(message, path=path, field="values", fix=fix)
    finite = np.isfinite(values)
    if not finite.all():
        bad = int(np.count_nonzero(~finite))
        first = int(np.argmin(finite))
        raise InputError(
            f"{bad} values are NaN or infinite (the first is value {first + 1}: {values[first]})",
            path=path,
            field="values",
            fix="the run that wrote this file diverged or overflowed: rerun it",
        )
    return values


def _parse_fixed_width(text: bytes, count: int) -> np.ndarray | None:
    """Vectorised parser for fixed-width E-format columns (pp.x's ``0.12345E-11``).

    About 10x faster than ``np.fromstring`` on pp.x files. Returns None, so the caller
    falls back to the free-format parser, for anything that does not match one fixed
    layout exactly. Results equal ``float(token)`` bit for bit while
    ``|exponent - mantissa digits| <= 22`` (the exactly representable powers of ten) and
    to 1 ulp beyond.
    """
    if count == 0:
        return None
    # pp.x breaks lines after 6 values and at each z-row end; without the line ends every
    # value is one fixed-width cell.
    text = text.replace(b"\n", b"")
    if b"\r" in text:
        text = text.replace(b"\r", b"")
    if len(text) % count:
        return None
    width = len(text) // count
    if not 8 <= width <= 40:
        return None
    rows = np.frombuffer(text, dtype=np.uint8).reshape(count, width)
    point = text.find(b".", 0, width)
    exp_at = width - 4  # "E-11" and Fortran's three-digit "-100" are both 4 wide
    digit_cols = [point - 1, *range(point + 1, exp_at)]
    if point < 2 or exp_at <= point + 1 or len(digit_cols) > 17:
        return None
    if not (rows[:, point] == _POINT).all():
        return None
    if point > 2 and not (rows[:, : point - 2] == _SPACE).all():
        return None
    sign = rows[:, point - 2]
    negative = sign == _MINUS
    if not (negative | (sign == _SPACE)).all():
        return None
    zero = np.uint8(ord("0"))
    digits = rows[:, digit_cols] - zero  # non-digits wrap around to > 9
    if (digits > 9).any():
        return None
    mantissa = np.zeros(count, dtype=np.int64)
    for col in range(digits.shape[1]):
        mantissa *= 10
        mantissa += digits[:, col]

    exp = rows[:, exp_at:]
    has_letter = (exp[:, 0] == _EXP_LETTERS[0]) | (exp[:, 0] == _EXP_LETTERS[1])
    tens = exp[:, 2] - zero
    ones = exp[:, 3] - zero
    exponent = tens.astype(np.int32) * 10 + ones
    if has_letter.all():
        exp_sign = exp[:, 1]
        bad_digits = (tens > 9) | (ones > 9)
    else:
        # Fortran drops the E for three-digit exponents: "-100" beside "E-11".
        exp_sign = np.where(has_letter, exp[:, 1], exp[:, 0])
        hundreds = np.where(has_letter, zero, exp[:, 1]) - zero
        bad_digits = (hundreds > 9) | (tens > 9) | (ones > 9)
        exponent += hundreds.astype(np.int32) * 100
    if bad_digits.any() or not ((exp_sign == _MINUS) | (exp_sign == _PLUS)).all():
        return None
    exponent = np.where(exp_sign == _MINUS, -exponent, exponent) - (len(digit_cols) - 1)
    magnitude = np.abs(exponent)
    if magnitude.max() >= _POW10.size:
        return None
    scale = _POW10[magnitude]
    # Multiplying or dividing by an exact power of ten rounds once, as strtod does.
    below_one = exponent < 0
    if below_one.all():
        values = mantissa / scale
    else:
        values = mantissa.astype(np.float64)
        np.divide(values, scale, out=values, where=below_one)
        np.multiply(values, scale, out=values, where=~below_one)
    np.negative(values, out=values, where=negative)
    return values


def _parse_free_format(text: bytes, count: int, path: Path) -> np.ndarray:
    """Whitespace-separated numbers in any layout, parsed in C by ``np.fromstring``."""
    if not text.strip():
        # np.fromstring returns [-1.0] for blank input.
        return np.empty(0)
    decoded = text.decode("latin-1")
    if _FORTRAN_EXP_BYTES_RE.search(text):
        decoded = _FORTRAN_EXP_RE.sub(r"E\1", decoded)
    try:
        return np.fromstring(decoded, dtype=np.float64, sep=" ")
    except ValueError:
        pass
    # Error path only: find the offending token to name it.
    tokens = decoded.split()
    for index, token in enumerate(tokens):
        try:
            float(token)
        except ValueError:
            if index == len(tokens) - 1 and not decoded[-1].isspace():
                raise InputError(
                    f"the file ends inside value {index + 1} ({token[:40]!r}) of the "
                    f"{count} the grid holds",
                    path=path,
                    field="values",
                    fix="the file is truncated: " + _FIX_PPX,
                ) from None
            raise InputError(
                f"value {index + 1} is {token[:40]!r}, not a number",
                path=path,
                field="values",
                fix="the file is corrupt: " + _FIX_PPX,
            ) from None
    raise InputError(  # pragma: no cover - fromstring failed but every token parses
        "values cannot be parsed", path=path, field="values", fix=_FIX_PPX
    )


def _check_same_grid(path0: Path, h0: _RawHeader, path: Path, h: _RawHeader) -> None:
    """Raise if ``h`` (from ``path``) describes another grid or structure than ``h0``."""

    def differ(field: str, a: object, b: object) -> InputError:
        return InputError(
            f"{field} differs from {path0}: {a} there, {b} here; all LDOS cubes of one "
            "snapshot must share grid, cell, origin, atoms and broadening",
            path=path,
            field=field,
            fix="pass only the cubes of one pp.x run (one snapshot)",
        )

    if h.shape != h0.shape:
        raise differ("grid shape", h0.shape, h.shape)
    if not np.allclose(h.voxel_bohr, h0.voxel_bohr, rtol=0.0, atol=_HEADER_TOL_BOHR):
        raise differ("cell (voxel vectors, Bohr)", h0.voxel_bohr.tolist(), h.voxel_bohr.tolist())
    if not np.allclose(h.origin_bohr, h0.origin_bohr, rtol=0.0, atol=_HEADER_TOL_BOHR):
        raise differ("origin (Bohr)", h0.origin_bohr.tolist(), h.origin_bohr.tolist())
    if h.numbers.shape != h0.numbers.shape:
        raise differ("atom count", len(h0.numbers), len(h.numbers))
    if not np.array_equal(h.numbers, h0.numbers):
        raise differ("atomic numbers", h0.numbers.tolist(), h.numbers.tolist())
    if not np.allclose(h.positions_bohr, h0.positions_bohr, rtol=0.0, atol=_HEADER_TOL_BOHR):
        worst = int(np.abs(h.positions_bohr - h0.positions_bohr).max(axis=1).argmax())
        raise differ(
            f"atom positions (atom {worst + 1}, Bohr)",
            h0.positions_bohr[worst].tolist(),
            h.positions_bohr[worst].tolist(),
        )
    if h.broadening_ev != h0.broadening_ev:
        raise differ("broadening (eV)", h0.broadening_ev, h.broadening_ev)


def _check_energy_grid(energies: np.ndarray, files: list[Path]) -> None:
    """Raise unless the sorted ``energies`` are unique and uniformly spaced."""
    if energies.size < 2:
        return
    steps = np.diff(energies)
    same = np.flatnonzero(steps <= _DUPLICATE_TOL_EV)
    if same.size:
        i = int(same[0])
        raise InputError(
            f"energy {energies[i]:.4f} eV appears twice, also in {files[i]}",
            path=files[i + 1],
            field="line 2 (Energy)",
            fix="pass each energy once: the files probably mix two pp.x runs",
        )
    step = float(np.median(steps))
    off = np.flatnonzero(np.abs(steps - step) > _SPACING_TOL_EV)
    if off.size:
        i = int(off[0])
        gap = steps[i]
        missing = round(gap / step) - 1
        what = (
            f"{missing} energy file(s) missing" if missing >= 1 else "energies not uniformly spaced"
        )
        raise InputError(
            f"{what}: {energies[i]:.4f} eV ({files[i]}) is followed by {energies[i + 1]:.4f} eV, "
            f"a step of {gap:.4f} eV where the grid step is {step:.4f} eV",
            path=files[i + 1],
            field="line 2 (Energy)",
            fix="pass all the cubes of one pp.x run (emin to emax in steps of delta_e)",
        )


# ----------------------------------------------------------------------------- writing


def write_cube(
    path: PathLike,
    atoms: Atoms,
    data: np.ndarray,
    *,
    quantity: Quantity = "raw",
    origin: Sequence[float] | np.ndarray | None = None,
    comment: tuple[str, str] = ("", ""),
    energy_ev: float | None = None,
    broadening_ev: float | None = None,
) -> None:
    """Write a cube file in Bohr and QE's native units (the inverse of :func:`read_cube`).

    Values are written with 8 significant digits (relative rounding <= 5e-9), 6 a line and
    a new line after each z-row, as pp.x does; header numbers with 8 decimals of Bohr.
    The atomic number is repeated in the charge column, as pp.x does. The file appears
    complete or not at all.

    Args:
        path: file to write (replaced if it exists).
        atoms: cell and positions in Å; the cell must span 3 dimensions. The voxel
            vectors written are ``atoms.cell[i] / data.shape[i]`` (periodic grid).
        data: ``[nx, ny, nz]`` values in nearsight units for ``quantity``: 1/Å³ for
            ``"density"``, 1/(eV·Å³) for ``"ldos"``, anything for ``"raw"``.
        quantity: sets the conversion to the file's unit (electrons/Bohr³,
            states/(Ry·Bohr³), or none).
        origin: ``[3]`` position of grid point (0, 0, 0), Å; default zero.
        comment: the two comment lines (no line breaks inside).
        energy_ev: for an LDOS cube, the energy in eV; replaces the second comment line
            with pp.x's ``Energy = ... eV, broadening = ... eV`` (4 decimals, as pp.x).
        broadening_ev: the broadening (``degauss_ldos``) in eV; needs ``energy_ev``.

    Raises:
        InputError: data not 3-dimensional or not finite, a flat cell, a bad origin or
            comment.
    """
    factor = 1.0 / _factor(quantity)
    target = Path(path)
    values = np.asarray(data, dtype=np.float64)
    if values.ndim != 3 or min(values.shape) < 1:
        raise InputError(
            f"data must be a non-empty [nx, ny, nz] array, got shape {values.shape}",
            path=target,
            field="data",
            fix="pass one 3-dimensional grid per cube file",
        )
    if not np.isfinite(values).all():
        raise InputError(
            "data holds NaN or infinite values",
            path=target,
            field="data",
            fix="write only finite values",
        )
    cell = np.asarray(atoms.cell[:], dtype=float)
    if abs(np.linalg.det(cell)) < 1e-12:
        raise InputError(
            "atoms.cell does not span 3 dimensions",
            path=target,
            field="atoms.cell",
            fix="give the atoms the periodic cell the grid covers",
        )
    origin_a = np.zeros(3) if origin is None else np.asarray(origin, dtype=float)
    if origin_a.shape != (3,) or not np.isfinite(origin_a).all():
        raise InputError(
            f"origin must be 3 finite numbers (Å), got {origin!r}",
            path=target,
            field="origin",
            fix="pass origin=None or a length-3 position in Å",
        )
    lines = list(comment)
    if len(lines) != 2 or any("\n" in c or "\r" in c for c in lines):
        raise InputError(
            "comment must be two lines without line breaks",
            path=target,
            field="comment",
            fix="pass comment=(first_line, second_line)",
        )
    if broadening_ev is not None and energy_ev is None:
        raise InputError(
            "broadening_ev given without energy_ev",
            path=target,
            field="broadening_ev",
            fix="pass energy_ev too, or neither",
        )
    if energy_ev is not None:
        lines[1] = f"  Energy = {energy_ev:8.4f} eV"
        if broadening_ev is not None:
            lines[1] += f", broadening = {broadening_ev:8.4f} eV"

    shape = values.shape
    voxel_bohr = cell / np.asarray(shape, dtype=float)[:, None] / BOHR_ANGSTROM
    positions_bohr = atoms.positions / BOHR_ANGSTROM
    header = [lines[0], lines[1]]
    header.append(_header_row(len(atoms), origin_a / BOHR_ANGSTROM))
    header.extend(_header_row(n, v) for n, v in zip(shape, voxel_bohr, strict=True))
    header.extend(
        _header_row(int(z), np.array([float(z), *p]))
        for z, p in zip(atoms.numbers, positions_bohr, strict=True)
    )

    nx, ny, nz = shape
    full, rest = divmod(nz, 6)
    z_row = (" %14.7E" * 6 + "\n") * full + ((" %14.7E" * rest + "\n") if rest else "")
    plane_format = z_row * ny
    with atomic_path(target) as tmp, tmp.open("w", encoding="ascii", newline="\n") as fh:
        fh.write("\n".join(header) + "\n")
        # One x-plane per write keeps memory at one plane of text.
        for plane in values:
            fh.write(plane_format % tuple((plane * factor).ravel().tolist()))


def _header_row(count: int, numbers: np.ndarray) -> str:
    return f"{count:5d}" + "".join(f"{x:14.8f}" for x in numbers)
