"""Read MALA snapshots and trained-model archives, without MALA and without running pickles.

MALA (materials-learning-algorithms, formats of version 1.4.0) keeps one snapshot as three
files side by side, named after the snapshot (``Be_snapshot0.in.npy`` and so on):

``X.in.npy``
    Descriptors, ``np.save`` of an array [nx, ny, nz, 3 + F] in C order. With MALA's
    default ``descriptors_contain_xyz = True`` the first three columns are the Cartesian
    coordinates (Å) of each grid point and the other F columns the descriptors (bispectrum
    components, unitless). Float32 unless MALA was told ``use_fp64``.
``X.out.npy``
    The LDOS, an array [nx, ny, nz, E] in 1/(eV·Å³): MALA's unit, which is also
    nearsight's. MALA converts when it makes the file (Quantum ESPRESSO's ``pp.x`` cube
    files are read as 1/(Ry·Bohr³)), so nothing is converted here. The energy grid is not
    in the snapshot: it lives in the model's parameters (``targets.ldos_gridoffset_ev``,
    ``ldos_gridspacing_ev``, ``ldos_gridsize``).
``X.info.json``
    ``Target.write_additional_calculation_data``: keys ``fermi_energy_dft`` (eV),
    ``temperature`` (K), ``number_of_electrons_exact``, ``band_energy_dft_calculation``,
    ``total_energy_dft_calculation`` (eV), ``grid_dimensions`` [nx, ny, nz],
    ``electrons_per_atom``, ``number_of_electrons_from_eigenvals``, ``ibrav``, ``ecutwfc``,
    ``ecutrho``, ``degauss`` (Ry, as QE prints them), ``pseudopotentials`` {element: file},
    ``entropy_contribution_dft_calculation``, ``one_electron_contribution``,
    ``hartree_contribution``, ``xc_contribution``, ``ewald_contribution`` (eV), and when
    known ``voxel`` {"array": 3x3 Å}, ``atoms`` (``ase.Atoms.todict``: ``numbers``,
    ``positions`` Å, ``cell`` Å, ``pbc``) and ``atomic_forces_dft`` (eV/Å).

A trained model is the ``{run}.zip`` that ``Runner.save_run`` writes, with members
``{run}.params.json`` (``Parameters.save``), ``{run}.network.pth`` (``torch.save`` of the
network's state dict, legacy non-zip format), ``{run}.iscaler.json`` and
``{run}.oscaler.json`` (``DataScaler.save``; models from before 1.4.0 hold pickled
``{run}.iscaler.pkl`` / ``{run}.oscaler.pkl`` instead) and optionally ``{run}.info.json``.

Pickles are never run: ``network.pth`` goes through ``torch.load(weights_only=True)``, and a
pickled scaler through a restricted unpickler that knows exactly the globals a pickled
``DataScaler`` holds and builds numpy arrays from the raw tensor bytes itself.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms

from nearsight.errors import InputError
from nearsight.grid import EnergyGrid
from nearsight.units import RYDBERG_EV

if TYPE_CHECKING:
    import torch

__all__ = [
    "MALA_ACTIVATIONS",
    "MalaArchive",
    "MalaCalculationInfo",
    "MalaLayer",
    "MalaScalerRecord",
    "MalaSnapshot",
    "MalaSnapshotFiles",
    "read_mala_archive",
    "read_mala_info",
    "read_mala_snapshot",
]

N_XYZ = 3
"""Coordinate columns at the front of a MALA descriptor array (``descriptors_contain_xyz``)."""

MALA_ACTIVATIONS = frozenset(
    {"ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "SiLU", "ELU", "Softplus", "Identity"}
)
"""``torch.nn`` activation names accepted in ``network.layer_activations``.

MALA builds each one as ``getattr(torch.nn, name)()``, i.e. with torch's defaults
(LeakyReLU: negative slope 0.01; ELU: alpha 1; Softplus: beta 1). Activations with weights
of their own (PReLU) are not accepted.
"""

_SCALER_KINDS: dict[str, tuple[str, bool]] = {
    "None": ("none", False),
    "none": ("none", False),
    "standard": ("standard", False),
    "feature-wise-standard": ("standard", True),
    "minmax": ("minmax", False),
    "feature-wise-minmax": ("minmax", True),
    # MALA's deprecated names for min-max scaling
    "normal": ("minmax", False),
    "feature-wise-normal": ("minmax", True),
}
"""MALA ``DataScaler.typestring`` -> (kind, feature_wise)."""

_DATA_SCALER_GLOBAL = ("mala.datahandling.data_scaler", "DataScaler")
"""Where MALA's DataScaler class lives; the only class a scaler pickle may name."""


# --------------------------------------------------------------------------------------
# Calculation info (X.info.json)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class MalaCalculationInfo:
    """What MALA's ``*.info.json`` records about the DFT calculation of a snapshot.

    Every field is None where the file leaves it out or null. Units are nearsight's:
    energies eV, lengths Å, forces eV/Å, temperature K; the QE cutoffs and smearing width,
    which MALA copies in Ry, are converted to eV.

    Attributes:
        path: the file (or ``archive.zip::member``) read.
        grid_dimensions: (nx, ny, nz) of the real-space grid.
        atoms: the structure (numbers, positions, cell, pbc) as ``ase.Atoms``.
        voxel: [3, 3] Å, the cell vectors divided by the grid dimensions (rows).
        fermi_energy: ``fermi_energy_dft``, eV.
        temperature: ``temperature``, the electronic (Fermi-Dirac) temperature in K.
        number_of_electrons: ``number_of_electrons_exact``.
        number_of_electrons_from_eigenvals: as MALA integrated it from the eigenvalues.
        electrons_per_atom: ``electrons_per_atom``.
        band_energy: ``band_energy_dft_calculation``, eV.
        total_energy: ``total_energy_dft_calculation``, eV.
        entropy_contribution: ``entropy_contribution_dft_calculation`` (-TS), eV.
        energy_contributions: ``one_electron_contribution``, ``hartree_contribution``,
            ``xc_contribution``, ``ewald_contribution`` (eV), keyed by those names.
        forces: ``atomic_forces_dft`` [n_atoms, 3], eV/Å.
        ibrav: QE's Bravais-lattice index.
        ecutwfc: wave-function cutoff, eV (file: Ry).
        ecutrho: charge-density cutoff, eV (file: Ry).
        degauss: smearing width, eV (file: Ry).
        pseudopotentials: {element: pseudopotential file name}.
        raw: the parsed JSON as it is.
    """

    path: str
    grid_dimensions: tuple[int, int, int] | None = None
    atoms: Atoms | None = None
    voxel: np.ndarray | None = None
    fermi_energy: float | None = None
    temperature: float | None = None
    number_of_electrons: float | None = None
    number_of_electrons_from_eigenvals: float | None = None
    electrons_per_atom: float | None = None
    band_energy: float | None = None
    total_energy: float | None = None
    entropy_contribution: float | None = None
    energy_contributions: dict[str, float | None] = field(default_factory=dict)
    forces: np.ndarray | None = None
    ibrav: int | None = None
    ecutwfc: float | None = None
    ecutrho: float | None = None
    degauss: float | None = None
    pseudopotentials: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def cell(self) -> np.ndarray | None:
        """The cell [3, 3] in Å (rows are vectors): the atoms' cell, else voxel × grid."""
        if self.atoms is not None:
            return np.array(self.atoms.cell[:], dtype=float)
        if self.voxel is not None and self.grid_dimensions is not None:
            return self.voxel * np.asarray(self.grid_dimensions, dtype=float)[:, None]
        return None


def read_mala_info(path: str | PathLike[str]) -> MalaCalculationInfo:
    """Read a MALA ``*.info.json`` (see the module docstring for its keys)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            "MALA info file not found",
            path=path,
            fix="give the *.info.json that MALA's DataConverter wrote beside the snapshot",
        )
    return _parse_info(_load_json(path.read_bytes(), str(path)), str(path))


def _load_json(data: bytes, label: str) -> dict[str, Any]:
    try:
        parsed = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(
            f"not valid JSON: {exc}", path=label, fix="give the JSON file that MALA wrote"
        ) from exc
    if not isinstance(parsed, dict):
        raise InputError(
            f"expected a JSON object, got {type(parsed).__name__}",
            path=label,
            fix="give the JSON file that MALA wrote",
        )
    return parsed


def _optional_float(data: dict[str, Any], key: str, label: str, scale: float = 1.0) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(
            f"expected a number, got {value!r}",
            path=label,
            field=key,
            fix="give a number or null",
        )
    return float(value) * scale


def _float_array(value: Any, shape: tuple[int, ...] | None, label: str, key: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"expected an array of numbers: {exc}", path=label, field=key, fix="give numbers"
        ) from exc
    if shape is not None and array.shape != shape:
        raise InputError(
            f"expected shape {shape}, got {array.shape}",
            path=label,
            field=key,
            fix=f"give a {'x'.join(map(str, shape))} array",
        )
    if not np.all(np.isfinite(array)):
        raise InputError("contains non-finite numbers", path=label, field=key, fix="fix the file")
    return array


def _parse_atoms(value: Any, label: str) -> Atoms:
    if not isinstance(value, dict) or "numbers" not in value or "positions" not in value:
        raise InputError(
            "atoms must be an object with 'numbers', 'positions' and 'cell'",
            path=label,
            field="atoms",
            fix="give the atoms as MALA writes them (ase.Atoms.todict)",
        )
    try:
        numbers = np.asarray(value["numbers"], dtype=int)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"atomic numbers are not integers: {exc}",
            path=label,
            field="atoms.numbers",
            fix="give integer atomic numbers",
        ) from exc
    if numbers.ndim != 1 or np.any(numbers < 1) or np.any(numbers > 118):
        raise InputError(
            "atomic numbers must be a list of integers 1..118",
            path=label,
            field="atoms.numbers",
            fix="give integer atomic numbers",
        )
    positions = _float_array(value["positions"], (len(numbers), 3), label, "atoms.positions")
    cell = value.get("cell")
    if isinstance(cell, dict):  # some ASE versions write the Cell object's dict
        cell = cell.get("array")
    cell = _float_array(cell, (3, 3), label, "atoms.cell")
    pbc = value.get("pbc", True)
    if isinstance(pbc, dict):
        pbc = True
    return Atoms(numbers=numbers, positions=positions, cell=cell, pbc=pbc)


def _parse_info(data: dict[str, Any], label: str) -> MalaCalculationInfo:
    grid = data.get("grid_dimensions")
    grid_dimensions = None
    if grid is not None:
        if (
            not isinstance(grid, list)
            or len(grid) != 3
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in grid)
        ):
            raise InputError(
                f"grid_dimensions must be three integers, got {grid!r}",
                path=label,
                field="grid_dimensions",
                fix="give [nx, ny, nz]",
            )
        if min(grid) > 0:  # MALA writes [0, 0, 0] when it does not know the grid
            grid_dimensions = (grid[0], grid[1], grid[2])
    atoms = _parse_atoms(data["atoms"], label) if data.get("atoms") is not None else None
    voxel = None
    if isinstance(data.get("voxel"), dict) and data["voxel"].get("array") is not None:
        voxel = _float_array(data["voxel"]["array"], (3, 3), label, "voxel.array")
    forces = None
    if data.get("atomic_forces_dft") is not None:
        n_atoms = len(atoms) if atoms is not None else None
        forces = _float_array(data["atomic_forces_dft"], None, label, "atomic_forces_dft")
        if forces.ndim != 2 or forces.shape[1] != 3 or (n_atoms not in (None, len(forces))):
            raise InputError(
                f"atomic_forces_dft has shape {forces.shape}, expected [n_atoms, 3]",
                path=label,
                field="atomic_forces_dft",
                fix="give one force vector per atom",
            )
    ibrav = data.get("ibrav")
    if ibrav is not None and (isinstance(ibrav, bool) or not isinstance(ibrav, int)):
        raise InputError(
            f"ibrav must be an integer, got {ibrav!r}", path=label, field="ibrav", fix="fix it"
        )
    pseudos = data.get("pseudopotentials") or {}
    if not isinstance(pseudos, dict):
        raise InputError(
            "pseudopotentials must be an object {element: file}",
            path=label,
            field="pseudopotentials",
            fix="give {element: file}",
        )
    contributions = {
        key: _optional_float(data, key, label)
        for key in (
            "one_electron_contribution",
            "hartree_contribution",
            "xc_contribution",
            "ewald_contribution",
        )
    }
    return MalaCalculationInfo(
        path=label,
        grid_dimensions=grid_dimensions,
        atoms=atoms,
        voxel=voxel,
        fermi_energy=_optional_float(data, "fermi_energy_dft", label),
        temperature=_optional_float(data, "temperature", label),
        number_of_electrons=_optional_float(data, "number_of_electrons_exact", label),
        number_of_electrons_from_eigenvals=_optional_float(
            data, "number_of_electrons_from_eigenvals", label
        ),
        electrons_per_atom=_optional_float(data, "electrons_per_atom", label),
        band_energy=_optional_float(data, "band_energy_dft_calculation", label),
        total_energy=_optional_float(data, "total_energy_dft_calculation", label),
        entropy_contribution=_optional_float(data, "entropy_contribution_dft_calculation", label),
        energy_contributions=contributions,
        forces=forces,
        ibrav=ibrav,
        ecutwfc=_optional_float(data, "ecutwfc", label, RYDBERG_EV),
        ecutrho=_optional_float(data, "ecutrho", label, RYDBERG_EV),
        degauss=_optional_float(data, "degauss", label, RYDBERG_EV),
        pseudopotentials={str(k): str(v) for k, v in pseudos.items()},
        raw=data,
    )


# --------------------------------------------------------------------------------------
# Snapshots (X.in.npy, X.out.npy, X.info.json)
# --------------------------------------------------------------------------------------


def _sibling(in_path: Path, suffix: str) -> Path | None:
    """``X.out.npy`` / ``X.info.json`` beside ``X.in.npy``; None if the name has no ``.in.npy``."""
    if not in_path.name.endswith(".in.npy"):
        return None
    return in_path.with_name(in_path.name[: -len(".in.npy")] + suffix)


def _open_npy(path: Path, what: str) -> np.ndarray:
    """Memory-map a 4-D floating-point ``.npy`` (never unpickling anything)."""
    if not path.is_file():
        raise InputError(
            f"MALA {what} file not found",
            path=path,
            fix=f"give the {what} .npy that MALA's DataConverter wrote",
        )
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise InputError(
                "holds Python objects (a pickled object array), which are never loaded",
                path=path,
                fix="save the array with a floating-point dtype (np.save of float32/float64)",
            ) from exc
        raise InputError(
            f"not a readable .npy file: {exc}",
            path=path,
            fix="give a .npy array written by np.save",
        ) from exc
    except (OSError, EOFError) as exc:
        raise InputError(
            f"not a readable .npy file: {exc}", path=path, fix="give a .npy written by np.save"
        ) from exc
    if not isinstance(array, np.ndarray):  # an .npz archive
        raise InputError(
            "is an .npz archive, not a single .npy array",
            path=path,
            fix="give the .npy file MALA wrote",
        )
    if array.dtype.kind != "f":
        raise InputError(
            f"dtype {array.dtype} is not floating point",
            path=path,
            fix="save the array as float32 or float64",
        )
    if array.ndim != 4:
        raise InputError(
            f"expected a 4-D array [nx, ny, nz, columns], got shape {array.shape}",
            path=path,
            fix="give the grid-shaped array MALA saves (not a flattened or shuffled one)",
        )
    if min(array.shape) < 1:
        raise InputError(
            f"array has an empty dimension, shape {array.shape}",
            path=path,
            fix="give a non-empty array",
        )
    return array


class MalaSnapshotFiles:
    """One MALA snapshot on disk, memory-mapped: rows are read only when asked for.

    Points are numbered in flat C order over the grid (x slowest, z fastest), as in
    ``array.reshape(-1, columns)``.

    Args:
        in_path: the descriptors ``X.in.npy`` [nx, ny, nz, 3 + F] (3 + F columns when
            ``contains_xyz``, else F).
        out_path: the LDOS ``X.out.npy`` [nx, ny, nz, E]. None: ``X.out.npy`` beside
            ``in_path`` if it exists (a snapshot for inference has none).
        info_path: the ``X.info.json``. None: the one beside ``in_path`` if it exists.
        contains_xyz: whether the first three descriptor columns are coordinates (MALA's
            ``descriptors.descriptors_contain_xyz``, True by default).
        energy_grid: the LDOS energy grid, which MALA keeps in the model parameters, not
            in the snapshot; checked against the LDOS column count when both are known.

    Attributes:
        path: ``in_path``.
        out_path, info_path: the files used, or None.
        grid_shape: (nx, ny, nz).
        n_features: descriptor count F, coordinates excluded.
        n_energies: LDOS energy count E, or None without an LDOS file.
        energy_grid: as given, or None.
        info: the parsed info file, or None.
    """

    def __init__(
        self,
        in_path: str | PathLike[str],
        out_path: str | PathLike[str] | None = None,
        info_path: str | PathLike[str] | None = None,
        *,
        contains_xyz: bool = True,
        energy_grid: EnergyGrid | None = None,
    ) -> None:
        self.path = Path(in_path)
        if out_path is None:
            found = _sibling(self.path, ".out.npy")
            self.out_path = found if found is not None and found.is_file() else None
        else:
            self.out_path = Path(out_path)
        if info_path is None:
            found = _sibling(self.path, ".info.json")
            self.info_path = found if found is not None and found.is_file() else None
        else:
            self.info_path = Path(info_path)
        self.contains_xyz = bool(contains_xyz)

        self._inputs: np.ndarray | None = _open_npy(self.path, "descriptor")
        self._skip = N_XYZ if self.contains_xyz else 0
        n_columns = self._inputs.shape[3]
        if n_columns <= self._skip:
            raise InputError(
                f"descriptor array has {n_columns} columns; with the {N_XYZ} coordinate "
                f"columns in front it needs at least {N_XYZ + 1}",
                path=self.path,
                fix="give descriptors saved with descriptors_contain_xyz=True, or pass "
                "contains_xyz=False if the file holds no coordinates",
            )
        self.grid_shape: tuple[int, int, int] = tuple(int(n) for n in self._inputs.shape[:3])
        self.n_features = n_columns - self._skip

        self._outputs: np.ndarray | None = None
        self.n_energies: int | None = None
        if self.out_path is not None:
            self._outputs = _open_npy(self.out_path, "LDOS")
            if self._outputs.shape[:3] != self.grid_shape:
                raise InputError(
                    f"LDOS grid {self._outputs.shape[:3]} differs from the descriptor grid "
                    f"{self.grid_shape} of {self.path}",
                    path=self.out_path,
                    fix="give the .in.npy and .out.npy of one and the same snapshot",
                )
            self.n_energies = int(self._outputs.shape[3])

        self.energy_grid = energy_grid
        if (
            energy_grid is not None
            and self.n_energies is not None
            and energy_grid.n != self.n_energies
        ):
            raise InputError(
                f"the LDOS has {self.n_energies} energies but the energy grid has {energy_grid.n}",
                path=self.out_path,
                fix="give the energy grid of the model/parameters this LDOS was made with",
            )

        self.info: MalaCalculationInfo | None = None
        if self.info_path is not None:
            self.info = read_mala_info(self.info_path)
            dims = self.info.grid_dimensions
            if dims is not None and dims != self.grid_shape:
                raise InputError(
                    f"grid_dimensions {list(dims)} differ from the descriptor grid "
                    f"{list(self.grid_shape)} of {self.path}",
                    path=self.info_path,
                    field="grid_dimensions",
                    fix="give the info file of the same snapshot",
                )

    # -- context manager ---------------------------------------------------------------

    def __enter__(self) -> MalaSnapshotFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the memory maps (they unmap once no returned view refers to them)."""
        self._inputs = None
        self._outputs = None

    # -- shape -------------------------------------------------------------------------

    @property
    def n_points(self) -> int:
        """Grid points nx·ny·nz."""
        nx, ny, nz = self.grid_shape
        return nx * ny * nz

    @property
    def has_targets(self) -> bool:
        """Whether an LDOS file was found."""
        return self.n_energies is not None

    @property
    def atoms(self) -> Atoms | None:
        """The structure from the info file, or None."""
        return None if self.info is None else self.info.atoms

    @property
    def temperature(self) -> float | None:
        """The electronic temperature (K) from the info file, or None."""
        return None if self.info is None else self.info.temperature

    # -- rows --------------------------------------------------------------------------

    def _rows(self, array: np.ndarray | None, start: int, stop: int | None) -> np.ndarray:
        if array is None:
            raise ValueError(f"read from closed MALA snapshot files ({self.path})")
        n = self.n_points
        stop = n if stop is None else stop
        if not (0 <= start <= stop <= n):
            raise IndexError(f"rows [{start}, {stop}) outside [0, {n})")
        if array.flags.c_contiguous:
            return array.reshape(n, array.shape[3])[start:stop]
        # Fortran-ordered file: a flat reshape would read everything; gather the points.
        ix, iy, iz = np.unravel_index(np.arange(start, stop), self.grid_shape)
        return array[ix, iy, iz]

    def features(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Descriptors of points [start, stop): float32 [n, F], unitless, no coordinates."""
        rows = self._rows(self._inputs, start, stop)
        return np.array(rows[:, self._skip :], dtype=np.float32)

    def targets(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """LDOS of points [start, stop): float32 [n, E] in 1/(eV·Å³)."""
        if self.n_energies is None:
            raise InputError(
                "this snapshot has no LDOS file",
                path=self.path,
                fix="put the X.out.npy beside X.in.npy, or pass out_path",
            )
        return np.array(self._rows(self._outputs, start, stop), dtype=np.float32)

    def coordinates(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Cartesian coordinates of points [start, stop): float64 [n, 3] in Å."""
        if not self.contains_xyz:
            raise InputError(
                "this descriptor file holds no coordinate columns",
                path=self.path,
                fix="open it with contains_xyz=True if its first three columns are x, y, z",
            )
        return np.array(self._rows(self._inputs, start, stop)[:, :N_XYZ], dtype=np.float64)


@dataclass(frozen=True, eq=False)
class MalaSnapshot:
    """A MALA snapshot read into memory.

    Attributes:
        in_path, out_path, info_path: the files read (out/info None where absent).
        features: descriptors [nx, ny, nz, F], float32, unitless (coordinates removed).
        coordinates: grid-point coordinates [nx, ny, nz, 3] in Å (float64), or None when
            the file holds none.
        ldos: [nx, ny, nz, E] float32 in 1/(eV·Å³), or None without an LDOS file.
        info: the info file, or None.
        energy_grid: as given to the reader, or None (MALA keeps it in the parameters).
    """

    in_path: Path
    out_path: Path | None
    info_path: Path | None
    features: np.ndarray
    coordinates: np.ndarray | None
    ldos: np.ndarray | None
    info: MalaCalculationInfo | None
    energy_grid: EnergyGrid | None = None

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        """(nx, ny, nz)."""
        nx, ny, nz = self.features.shape[:3]
        return (nx, ny, nz)

    @property
    def atoms(self) -> Atoms | None:
        """The structure from the info file, or None."""
        return None if self.info is None else self.info.atoms


def read_mala_snapshot(
    in_path: str | PathLike[str],
    out_path: str | PathLike[str] | None = None,
    info_path: str | PathLike[str] | None = None,
    *,
    contains_xyz: bool = True,
    energy_grid: EnergyGrid | None = None,
) -> MalaSnapshot:
    """Read a MALA snapshot into memory; arguments as for :class:`MalaSnapshotFiles`."""
    with MalaSnapshotFiles(
        in_path, out_path, info_path, contains_xyz=contains_xyz, energy_grid=energy_grid
    ) as files:
        shape = (*files.grid_shape, -1)
        features = files.features().reshape(shape)
        coordinates = files.coordinates().reshape(shape) if contains_xyz else None
        ldos = files.targets().reshape(shape) if files.has_targets else None
        return MalaSnapshot(
            in_path=files.path,
            out_path=files.out_path,
            info_path=files.info_path,
            features=features,
            coordinates=coordinates,
            ldos=ldos,
            info=files.info,
            energy_grid=energy_grid,
        )


# --------------------------------------------------------------------------------------
# Restricted unpickling of legacy scalers
# --------------------------------------------------------------------------------------

_STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),  # widened to float32 after reading
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}
"""torch's legacy storage classes -> the numpy dtype of their raw bytes (little endian)."""

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class _NoState:
    """Helper objects that a pickle must never BUILD into."""

    __slots__ = ()

    def __setstate__(self, state: object) -> None:
        raise pickle.UnpicklingError("refused to set the state of an internal object")


class _StorageType(_NoState):
    """Stands in for ``torch.FloatStorage`` etc.: only a name and a dtype."""

    __slots__ = ("dtype", "name")

    def __init__(self, name: str, dtype: np.dtype) -> None:
        self.name = name
        self.dtype = dtype


class _Storage(_NoState):
    """A storage met in a legacy ``torch.save`` stream, filled from its raw bytes."""

    __slots__ = ("data", "dtype", "key", "numel", "type_name")

    def __init__(self, type_name: str, dtype: np.dtype, key: str, numel: int) -> None:
        self.type_name = type_name
        self.dtype = dtype
        self.key = key
        self.numel = numel
        self.data: np.ndarray | None = None


class _PickledDataScaler:
    """Stands in for MALA's ``DataScaler``: keeps the pickled attributes, runs nothing."""

    __slots__ = ("attributes",)

    def __setstate__(self, state: object) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots) form
            merged: dict[Any, Any] = {}
            for part in state:
                if part is not None and not isinstance(part, dict):
                    raise pickle.UnpicklingError("DataScaler state is not a dict")
                merged.update(part or {})
            state = merged
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise pickle.UnpicklingError("DataScaler state is not a dict of attributes")
        self.attributes = dict(state)


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals in ``allowed`` and refuses the rest."""

    def __init__(
        self,
        file: io.BytesIO,
        label: str,
        allowed: dict[tuple[str, str], Any],
    ) -> None:
        super().__init__(file)
        self._label = label
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        target = self._allowed.get((module, name))
        if target is None:
            raise InputError(
                f"the pickle names the global {module}.{name}, which is not allowed "
                "(only MALA's DataScaler and plain torch tensors are read)",
                path=self._label,
                field=f"{module}.{name}",
                fix="do not load this file: it is not a plain MALA scaler; if it is yours, "
                "re-save the model with MALA >= 1.4.0 so its scalers are JSON",
            )
        return target


def _refuse_persistent(pid: object) -> Any:
    raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")


def _run_unpickler(unpickler: _RestrictedUnpickler, label: str, what: str) -> Any:
    try:
        return unpickler.load()
    except InputError:
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        AttributeError,
        IndexError,
        KeyError,
        OverflowError,
        TypeError,
        ValueError,
        ImportError,
        RecursionError,
        MemoryError,
    ) as exc:
        raise InputError(
            f"cannot read {what}: {type(exc).__name__}: {exc}",
            path=label,
            fix="give the file as MALA wrote it, or re-save the model with MALA >= 1.4.0",
        ) from exc


def _storage_types() -> dict[tuple[str, str], Any]:
    return {("torch", name): _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()}


def _read_legacy_storage(data: bytes, label: str) -> _Storage:
    """Decode the bytes of ``torch.storage._load_from_bytes``: one legacy-format storage.

    The stream (``torch.save(..., _use_new_zipfile_serialization=False)``) is five pickles
    (magic number, protocol version, system info, the storage as a persistent id
    ``('storage', torch.<Type>Storage, key, location, numel, view_metadata)``, the list of
    storage keys) followed, per key, by an int64 element count and the raw bytes.
    """
    if not isinstance(data, bytes | bytearray):
        raise pickle.UnpicklingError("storage payload is not bytes")
    if data[:2] == b"PK":
        raise InputError(
            "a tensor inside is stored in torch's zip format, which is not read here",
            path=label,
            fix="re-save the model with MALA >= 1.4.0 so its scalers are JSON",
        )
    stream = io.BytesIO(data)

    def plain() -> Any:
        unpickler = _RestrictedUnpickler(stream, label, {})
        unpickler.persistent_load = _refuse_persistent  # type: ignore[assignment]
        return _run_unpickler(unpickler, label, "a pickled tensor")

    if plain() != _LEGACY_MAGIC:
        raise pickle.UnpicklingError("tensor bytes lack torch's legacy magic number")
    if plain() != _LEGACY_PROTOCOL:
        raise pickle.UnpicklingError("unknown torch legacy protocol version")
    sys_info = plain()
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise pickle.UnpicklingError("tensor bytes are not little-endian")

    storages: dict[str, _Storage] = {}

    def persistent_load(pid: object) -> _Storage:
        if (
            not isinstance(pid, tuple)
            or len(pid) not in (5, 6)
            or pid[0] != "storage"
            or not isinstance(pid[1], _StorageType)
            or not isinstance(pid[2], str)
            or not isinstance(pid[4], int)
            or pid[4] < 0
        ):
            raise pickle.UnpicklingError(f"unexpected storage id {pid!r}")
        if len(pid) == 6 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        kind, key, numel = pid[1], pid[2], pid[4]
        if key not in storages:
            storages[key] = _Storage(kind.name, kind.dtype, key, numel)
        return storages[key]

    unpickler = _RestrictedUnpickler(stream, label, _storage_types())
    unpickler.persistent_load = persistent_load  # type: ignore[assignment]
    result = _run_unpickler(unpickler, label, "a pickled tensor")
    keys = plain()
    if not isinstance(keys, list) or sorted(keys) != sorted(storages):
        raise pickle.UnpicklingError("storage key list does not match the storages")
    for key in keys:
        storage = storages[key]
        header = stream.read(8)
        if len(header) != 8:
            raise pickle.UnpicklingError("tensor bytes end early")
        numel = int.from_bytes(header, "little", signed=True)
        if numel != storage.numel:
            raise pickle.UnpicklingError(f"storage {key} holds {numel}, expected {storage.numel}")
        raw = stream.read(numel * storage.dtype.itemsize)
        if len(raw) != numel * storage.dtype.itemsize:
            raise pickle.UnpicklingError("tensor bytes end early")
        values = np.frombuffer(raw, dtype=storage.dtype)
        if storage.type_name == "BFloat16Storage":
            values = (values.astype(np.uint32) << 16).view(np.float32)
        storage.data = values.copy()
    if not isinstance(result, _Storage) or result.data is None:
        raise pickle.UnpicklingError("tensor bytes hold no storage")
    return result


def _rebuild_tensor(
    storage: object,
    storage_offset: object,
    size: object,
    stride: object,
    requires_grad: object = False,
    backward_hooks: object = None,
    metadata: object = None,
) -> np.ndarray:
    """Our ``torch._utils._rebuild_tensor_v2``: a numpy copy of a strided storage view."""
    if not isinstance(storage, _Storage) or storage.data is None:
        raise pickle.UnpicklingError("tensor without a storage")

    def natural(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    if (
        not natural(storage_offset)
        or not isinstance(size, tuple)
        or not isinstance(stride, tuple)
        or len(size) != len(stride)
        or not all(natural(v) for v in (*size, *stride))
    ):
        raise pickle.UnpicklingError("tensor with a bad offset, size or stride")
    data = storage.data
    offset = int(storage_offset)  # type: ignore[call-overload]
    if any(n == 0 for n in size):
        return np.zeros(size, dtype=data.dtype)
    if int(np.prod(size, dtype=object)) > data.size:  # no stride-0 blow-ups
        raise pickle.UnpicklingError("tensor has more elements than its storage")
    last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if last >= data.size:
        raise pickle.UnpicklingError("tensor reaches past the end of its storage")
    view = np.lib.stride_tricks.as_strided(
        data[offset:],
        shape=size,
        strides=tuple(s * data.itemsize for s in stride),
        writeable=False,
    )
    return np.array(view)


def _ordered_dict(*args: object) -> dict[Any, Any]:
    """Our ``collections.OrderedDict``: the (always empty) backward hooks of a tensor."""
    if args and args != ((),) and args != ([],):
        raise pickle.UnpicklingError("unexpected OrderedDict contents in a tensor")
    return {}


def _load_from_bytes(data: object, *, label: str) -> _Storage:
    return _read_legacy_storage(data, label)  # type: ignore[arg-type]


def _unpickle_data_scaler(data: bytes, label: str) -> dict[str, Any]:
    """The attributes of a pickled MALA ``DataScaler``, tensors as numpy arrays."""

    def load_from_bytes(payload: object) -> _Storage:
        return _load_from_bytes(payload, label=label)

    allowed: dict[tuple[str, str], Any] = {
        _DATA_SCALER_GLOBAL: _PickledDataScaler,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch.storage", "_load_from_bytes"): load_from_bytes,
        ("collections", "OrderedDict"): _ordered_dict,
    }
    unpickler = _RestrictedUnpickler(io.BytesIO(data), label, allowed)
    unpickler.persistent_load = _refuse_persistent  # type: ignore[assignment]
    result = _run_unpickler(unpickler, label, "the pickled DataScaler")
    if not isinstance(result, _PickledDataScaler) or not hasattr(result, "attributes"):
        raise InputError(
            f"the pickle holds a {type(result).__name__}, not a MALA DataScaler",
            path=label,
            fix="give the *.iscaler.pkl / *.oscaler.pkl that MALA wrote",
        )
    return result.attributes


# --------------------------------------------------------------------------------------
# Scalers
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class MalaScalerRecord:
    """A MALA ``DataScaler`` as plain numbers.

    MALA scales ``x_scaled = (x - mean) / std`` (standard) or
    ``x_scaled = (x - min) / (max - min)`` (minmax), per column when ``feature_wise``,
    else with one number for the whole array; ``none`` leaves data as they are.

    Attributes:
        kind: ``"none"``, ``"standard"`` or ``"minmax"`` (MALA's deprecated ``"normal"``
            names are mapped to ``"minmax"``).
        feature_wise: one mean/std/min/max per column (True) or one for all (False).
        mean, std: float64 [F] when feature_wise, else [1]; set for ``standard`` only.
            MALA does not guard against std = 0 (constant columns); neither is it
            changed here.
        min, max: float64 [F] or [1]; set for ``minmax`` only.
        typestring: MALA's own name of the scaling (``DataScaler.typestring``).
        source: where it was read, ``archive.zip::member``.
    """

    kind: str
    feature_wise: bool
    mean: np.ndarray | None
    std: np.ndarray | None
    min: np.ndarray | None
    max: np.ndarray | None
    typestring: str
    source: str

    @property
    def n_features(self) -> int | None:
        """Columns a feature-wise scaler was fitted on; None for none/global scalers."""
        if not self.feature_wise:
            return None
        values = self.mean if self.kind == "standard" else self.min
        return None if values is None else int(values.size)


def _scaler_values(
    attributes: dict[str, Any], key: str, label: str, feature_wise: bool
) -> np.ndarray:
    if key not in attributes:
        raise InputError(
            "the scaler lacks this value",
            path=label,
            field=key,
            fix="give a scaler that MALA fitted (DataScaler.fit) before saving",
        )
    value = attributes[key]
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"expected numbers: {exc}", path=label, field=key, fix="give a MALA scaler"
        ) from exc
    array = array.reshape(-1)
    if feature_wise and array.size == 0:
        raise InputError(
            "the scaler was never fitted (no per-feature values)",
            path=label,
            field=key,
            fix="fit the scaler in MALA (train the model) before saving it",
        )
    if not feature_wise and array.size != 1:
        raise InputError(
            f"expected one number for a global scaler, got {array.size}",
            path=label,
            field=key,
            fix="give a MALA scaler",
        )
    if not np.all(np.isfinite(array)):
        raise InputError(
            "the scaler holds non-finite values (it was never fitted?)",
            path=label,
            field=key,
            fix="fit the scaler in MALA (train the model) before saving it",
        )
    return array


def _scaler_record(attributes: dict[str, Any], label: str) -> MalaScalerRecord:
    typestring = attributes.get("typestring")
    if typestring not in _SCALER_KINDS:
        raise InputError(
            f"unknown scaler type {typestring!r}",
            path=label,
            field="typestring",
            fix="use one of MALA's rescaling types: " + ", ".join(sorted(_SCALER_KINDS)),
        )
    kind, feature_wise = _SCALER_KINDS[typestring]
    # MALA transforms by the flags, not by the name: they must agree.
    minmax = attributes.get("scale_minmax", attributes.get("scale_normal"))
    flags = {
        "scale_standard": (attributes.get("scale_standard"), kind == "standard"),
        "scale_minmax": (minmax, kind == "minmax"),
        "feature_wise": (attributes.get("feature_wise"), feature_wise),
    }
    for name, (stored, expected) in flags.items():
        if stored is not None and bool(stored) != expected:
            raise InputError(
                f"{name} = {stored} contradicts typestring {typestring!r}",
                path=label,
                field=name,
                fix="give the scaler as MALA wrote it",
            )
    if kind != "none" and attributes.get("cantransform") is False:
        raise InputError(
            "the scaler was never fitted (cantransform is false)",
            path=label,
            field="cantransform",
            fix="fit the scaler in MALA (train the model) before saving it",
        )
    mean = std = low = high = None
    if kind == "standard":
        keys = ("means", "stds") if feature_wise else ("total_mean", "total_std")
        mean, std = (_scaler_values(attributes, k, label, feature_wise) for k in keys)
    elif kind == "minmax":
        keys = ("mins", "maxs") if feature_wise else ("total_min", "total_max")
        low, high = (_scaler_values(attributes, k, label, feature_wise) for k in keys)
    pair = (mean, std) if kind == "standard" else (low, high)
    if pair[0] is not None and pair[1] is not None and pair[0].size != pair[1].size:
        raise InputError(
            f"scaler values differ in length ({pair[0].size} vs {pair[1].size})",
            path=label,
            fix="give the scaler as MALA wrote it",
        )
    return MalaScalerRecord(
        kind=kind,
        feature_wise=feature_wise,
        mean=mean,
        std=std,
        min=low,
        max=high,
        typestring=str(typestring),
        source=label,
    )


def _read_scaler(data: bytes, member: str, label: str) -> MalaScalerRecord:
    if member.endswith(".json"):
        return _scaler_record(_load_json(data, label), label)
    return _scaler_record(_unpickle_data_scaler(data, label), label)


# --------------------------------------------------------------------------------------
# Model archives
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MalaLayer:
    """One entry of MALA's ``FeedForwardNet.layers`` (a ``torch.nn.ModuleList``).

    Attributes:
        index: position in the list, the N of ``layers.N.weight`` in the state dict.
        kind: ``"linear"`` or ``"activation"``.
        name: ``"Linear"`` or the ``torch.nn`` activation class name (``"ReLU"``, ...).
        in_features, out_features: the Linear's widths; 0 for activations.
    """

    index: int
    kind: str
    name: str
    in_features: int = 0
    out_features: int = 0


@dataclass(frozen=True, eq=False)
class MalaArchive:
    """A trained MALA model read from its ``save_run`` zip.

    Attributes:
        path: the zip.
        run_name: the member prefix (``{run_name}.params.json`` ...).
        params: ``params.json`` parsed as it is (sections ``network``, ``descriptors``,
            ``targets``, ``data``, ``running``, ...).
        state_dict: ``network.pth``, keys ``layers.N.weight`` [out, in] and ``layers.N.bias``
            [out] for the Linear entries N of ``layers``, on the CPU.
        layers: MALA's module list, Linear and activation entries in order.
        layer_sizes: ``network.layer_sizes``: input width (descriptor count F, coordinates
            excluded) through output width (energy count E).
        activations: per Linear layer, the activation after it or None.
        input_scaler, output_scaler: the descriptor and LDOS scalers.
        energy_grid: LDOS energies, ``ldos_gridoffset_ev + ldos_gridspacing_ev · k`` (eV),
            k < ``ldos_gridsize``; None for targets without an energy axis.
        target_type: ``targets.target_type`` (``"LDOS"`` for LDOS models).
        restrict_targets: what MALA does to predictions after unscaling:
            ``"zero_out_negative"``, ``"absolute_values"`` or None.
        descriptor_type: ``descriptors.descriptor_type`` (``"Bispectrum"``, ...).
        twojmax: ``descriptors.bispectrum_twojmax`` (bispectrum only, else None).
        cutoff: ``descriptors.bispectrum_cutoff`` in Å (bispectrum only, else None).
        descriptors_contain_xyz: whether the model's snapshots carry coordinate columns.
        info: the archive's ``{run}.info.json``, or None.
        members: the zip's member names.
    """

    path: Path
    run_name: str
    params: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    layers: tuple[MalaLayer, ...]
    layer_sizes: tuple[int, ...]
    activations: tuple[str | None, ...]
    input_scaler: MalaScalerRecord
    output_scaler: MalaScalerRecord
    energy_grid: EnergyGrid | None
    target_type: str
    restrict_targets: str | None
    descriptor_type: str
    twojmax: int | None
    cutoff: float | None
    descriptors_contain_xyz: bool
    info: MalaCalculationInfo | None
    members: tuple[str, ...]

    @property
    def n_features(self) -> int:
        """Descriptor count the network takes."""
        return self.layer_sizes[0]

    @property
    def n_energies(self) -> int:
        """Output count of the network (LDOS energies)."""
        return self.layer_sizes[-1]


def _find_member(names: Sequence[str], suffix: str, stem: str) -> str | None:
    """The member named ``*{suffix}`` (or plain ``{suffix}`` without the dot).

    None if there is none, ``""`` if there are several and none is ``{stem}{suffix}``.
    """
    hits = [
        n
        for n in names
        if n.rsplit("/", 1)[-1].endswith(suffix) or n.rsplit("/", 1)[-1] == suffix[1:]
    ]
    if len(hits) == 1:
        return hits[0]
    for hit in hits:
        if hit.rsplit("/", 1)[-1] == stem + suffix:
            return hit
    return "" if hits else None


def _section(params: dict[str, Any], name: str, label: str) -> dict[str, Any]:
    section = params.get(name)
    if not isinstance(section, dict):
        raise InputError(
            f"params has no '{name}' section",
            path=label,
            field=name,
            fix="give the params.json that MALA's Parameters.save wrote",
        )
    return section


def _layer_sequence(
    network: dict[str, Any], label: str, legacy_activation_list: bool
) -> tuple[tuple[MalaLayer, ...], tuple[int, ...], tuple[str | None, ...]]:
    """Rebuild ``FeedForwardNet.layers`` exactly as MALA 1.4.0 does."""
    nn_type = network.get("nn_type", "feed-forward")
    if nn_type != "feed-forward":
        raise InputError(
            f"network type {nn_type!r} is not supported",
            path=label,
            field="network.nn_type",
            fix="give a MALA feed-forward model (nn_type 'feed-forward')",
        )
    sizes = network.get("layer_sizes")
    if (
        not isinstance(sizes, list)
        or len(sizes) < 2
        or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes)
    ):
        raise InputError(
            f"layer_sizes must list two or more positive integers, got {sizes!r}",
            path=label,
            field="network.layer_sizes",
            fix="give the params.json that MALA saved with the model",
        )
    activations = network.get("layer_activations")
    if legacy_activation_list and isinstance(activations, list) and len(activations) == 1:
        activations = activations[0]
    if not (activations is None or isinstance(activations, str | list)):
        raise InputError(
            f"layer_activations must be a name or a list of names, got {activations!r}",
            path=label,
            field="network.layer_activations",
            fix='give torch.nn activation names, e.g. "ReLU"',
        )
    include_output = network.get("layer_activations_include_output_layer", True)
    n_linear = len(sizes) - 1
    layers: list[MalaLayer] = []
    after: list[str | None] = []
    for i in range(n_linear):
        layers.append(MalaLayer(len(layers), "linear", "Linear", sizes[i], sizes[i + 1]))
        name: str | None = None
        if i < n_linear - 1 or include_output:
            if isinstance(activations, list):
                name = activations[i] if i < len(activations) else None
            else:
                name = activations
        if name is not None:
            if not isinstance(name, str) or name not in MALA_ACTIVATIONS:
                raise InputError(
                    f"unknown activation {name!r}",
                    path=label,
                    field="network.layer_activations",
                    fix="use one of " + ", ".join(sorted(MALA_ACTIVATIONS)),
                )
            layers.append(MalaLayer(len(layers), "activation", name))
        after.append(name)
    return tuple(layers), tuple(sizes), tuple(after)


def _energy_grid(targets: dict[str, Any], label: str) -> EnergyGrid | None:
    target_type = targets.get("target_type", "LDOS")
    if target_type not in ("LDOS", "DOS"):
        return None
    size = targets.get("ldos_gridsize")
    spacing = targets.get("ldos_gridspacing_ev")
    offset = targets.get("ldos_gridoffset_ev")
    fix = "set targets.ldos_gridsize, ldos_gridspacing_ev and ldos_gridoffset_ev"
    if isinstance(size, list) and isinstance(spacing, list) and isinstance(offset, list):
        if not (len(size) == len(spacing) == len(offset) >= 1):
            raise InputError(
                "split energy grids need lists of one length",
                path=label,
                field="targets.ldos_gridsize",
                fix=fix,
            )
        # MALA's split grid: segments joined, each but the last losing its final point.
        parts = []
        for k, (n, de, e0) in enumerate(zip(size, spacing, offset, strict=True)):
            if not (isinstance(n, int) and n > 0 and isinstance(de, int | float) and de > 0):
                raise InputError(
                    "bad split energy grid", path=label, field="targets.ldos_gridsize", fix=fix
                )
            segment = float(e0) + float(de) * np.arange(n)
            parts.append(segment if k == len(size) - 1 else segment[:-1])
        energies = np.concatenate(parts)
        if energies.size == 1:
            return EnergyGrid(float(energies[0]), float(spacing[0]), 1)
        try:
            return EnergyGrid.from_energies(energies, atol=1e-6)
        except InputError as exc:
            raise InputError(
                "the split energy grid is not uniformly spaced",
                path=label,
                field="targets.ldos_gridspacing_ev",
                fix="use a model with one uniform energy grid",
            ) from exc
    numbers = (size, spacing, offset)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers):
        raise InputError(
            f"energy grid (size, spacing, offset) = {numbers!r} is not numeric",
            path=label,
            field="targets.ldos_gridsize",
            fix=fix,
        )
    if not isinstance(size, int) or size < 1 or not spacing > 0:
        raise InputError(
            f"energy grid has size {size} and spacing {spacing} eV; both must be positive",
            path=label,
            field="targets.ldos_gridsize",
            fix=fix,
        )
    return EnergyGrid(float(offset), float(spacing), int(size))


def _load_state_dict(data: bytes, label: str) -> dict[str, torch.Tensor]:
    try:
        import torch
    except ImportError as exc:
        raise ModuleNotFoundError(
            "reading MALA network weights needs torch: pip install 'nearsight[ml]'"
        ) from exc

    try:
        state = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as exc:  # torch raises many types for bad or unsafe files
        raise InputError(
            f"cannot read the network weights: {type(exc).__name__}: {exc}",
            path=label,
            fix="give the network.pth that MALA's Network.save_network wrote "
            "(a plain state dict of tensors)",
        ) from exc
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise InputError(
            "network.pth is not a state dict {name: tensor}",
            path=label,
            fix="give the network.pth that MALA's Network.save_network wrote",
        )
    return dict(state)


def _check_state_dict(
    state: dict[str, torch.Tensor],
    layers: tuple[MalaLayer, ...],
    label: str,
    legacy_hint: bool,
) -> None:
    expected: dict[str, tuple[int, ...]] = {}
    for layer in layers:
        if layer.kind == "linear":
            expected[f"layers.{layer.index}.weight"] = (layer.out_features, layer.in_features)
            expected[f"layers.{layer.index}.bias"] = (layer.out_features,)
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        fix = "give the network.pth and params.json of one and the same model"
        if legacy_hint:
            fix += (
                "; a model saved by MALA < 1.3.1 with a one-element layer_activations list "
                "needs legacy_activation_list=True"
            )
        raise InputError(
            f"state dict keys do not match the layers in params.json: missing {missing}, "
            f"unexpected {extra}",
            path=label,
            field="network.layer_activations",
            fix=fix,
        )
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise InputError(
                f"{key} has shape {tuple(state[key].shape)}, expected {shape} from layer_sizes",
                path=label,
                field=key,
                fix="give the network.pth and params.json of one and the same model",
            )
        if not state[key].is_floating_point():
            raise InputError(
                f"{key} is not floating point ({state[key].dtype})",
                path=label,
                field=key,
                fix="give the network.pth MALA wrote",
            )


def read_mala_archive(
    zip_path: str | PathLike[str], *, legacy_activation_list: bool = False
) -> MalaArchive:
    """Read a MALA model zip (``Runner.save_run``) without MALA and without running pickles.

    Args:
        zip_path: the ``{run}.zip``.
        legacy_activation_list: read a one-element ``layer_activations`` list as "this
            activation after every layer", as models saved by MALA < 1.3.1 meant it
            (MALA's ``activation_list_legacy_load``); by default (MALA >= 1.3.1) it is
            the activation of the first layer only.

    Raises:
        InputError: not a zip; params/network/scaler member missing; unknown activation
            or scaler type; weights that do not fit the layer sizes; a scaler pickle that
            names anything beyond MALA's DataScaler and plain tensors.
    """
    path = Path(zip_path)
    fix_zip = "give the .zip that MALA's save_run wrote"
    if not path.is_file():
        raise InputError("MALA model archive not found", path=path, fix=fix_zip)
    if not zipfile.is_zipfile(path):
        raise InputError("not a zip archive", path=path, fix=fix_zip)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"cannot open the zip: {exc}", path=path, fix=fix_zip) from exc
    with archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        stem = path.name[: -len(".zip")] if path.name.endswith(".zip") else path.stem

        def member(suffix: str, what: str, fix: str, required: bool = True) -> str | None:
            found = _find_member(names, suffix, stem)
            if found == "":
                raise InputError(
                    f"several members end in {suffix!r} and none is {stem + suffix!r}",
                    path=path,
                    field=suffix.lstrip("."),
                    fix="keep one model per archive",
                )
            if found is None and required:
                raise InputError(
                    f"no {what} (*{suffix}) in the archive; members: {names}",
                    path=path,
                    field=suffix.lstrip("."),
                    fix=fix,
                )
            return found

        def read(name: str) -> bytes:
            try:
                return archive.read(name)
            except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
                raise InputError(
                    f"cannot read member {name}: {exc}", path=path, field=name, fix=fix_zip
                ) from exc

        params_name = member(".params.json", "parameters", "", required=False)
        if params_name is None:
            pickled = _find_member(names, ".params.pkl", stem)
            raise InputError(
                "no parameters (*.params.json) in the archive"
                + ("; it holds pickled parameters, which are not read" if pickled else ""),
                path=path,
                field="params.json",
                fix="load the model in MALA and save it again with save_run (JSON parameters)"
                if pickled
                else fix_zip,
            )
        assert params_name is not None
        run_name = params_name.rsplit("/", 1)[-1][: -len(".params.json")]
        params_label = f"{path}::{params_name}"
        params = _load_json(read(params_name), params_label)

        network_name = member(".network.pth", "network weights", fix_zip)
        assert network_name is not None
        scaler_names = []
        for prefix, what in (("iscaler", "input scaler"), ("oscaler", "output scaler")):
            name = member(f".{prefix}.json", what, fix_zip, required=False)
            if name is None:
                name = member(
                    f".{prefix}.pkl",
                    what,
                    f"{fix_zip}; it must hold *.{prefix}.json (or a legacy *.{prefix}.pkl)",
                )
            assert name is not None
            scaler_names.append(name)
        info_name = member(".info.json", "info", "", required=False)

        network = _section(params, "network", params_label)
        targets = _section(params, "targets", params_label)
        descriptors = _section(params, "descriptors", params_label)
        layers, sizes, activations = _layer_sequence(network, params_label, legacy_activation_list)
        energy_grid = _energy_grid(targets, params_label)
        if energy_grid is not None and energy_grid.n != sizes[-1]:
            raise InputError(
                f"the network has {sizes[-1]} outputs but the energy grid has "
                f"{energy_grid.n} energies",
                path=params_label,
                field="targets.ldos_gridsize",
                fix="give the params.json saved with this model",
            )
        descriptor_type = str(descriptors.get("descriptor_type", "Bispectrum"))
        twojmax = cutoff = None
        if descriptor_type == "Bispectrum":
            twojmax = descriptors.get("bispectrum_twojmax")
            cutoff = descriptors.get("bispectrum_cutoff")
            if not (isinstance(twojmax, int) and not isinstance(twojmax, bool) and twojmax >= 0):
                raise InputError(
                    f"bispectrum_twojmax must be a non-negative integer, got {twojmax!r}",
                    path=params_label,
                    field="descriptors.bispectrum_twojmax",
                    fix="give the params.json saved with this model",
                )
            if isinstance(cutoff, bool) or not isinstance(cutoff, int | float) or cutoff <= 0:
                raise InputError(
                    f"bispectrum_cutoff must be a positive number (Å), got {cutoff!r}",
                    path=params_label,
                    field="descriptors.bispectrum_cutoff",
                    fix="give the params.json saved with this model",
                )
            cutoff = float(cutoff)
            n_bispectrum = (twojmax + 2) * (twojmax + 3) * (twojmax + 4) // 24
            if not descriptors.get("custom_lammps_compute_file") and sizes[0] != n_bispectrum:
                raise InputError(
                    f"the network takes {sizes[0]} inputs but twojmax={twojmax} gives "
                    f"{n_bispectrum} bispectrum components",
                    path=params_label,
                    field="network.layer_sizes",
                    fix="give the params.json saved with this model",
                )
        restrict = targets.get("restrict_targets", "zero_out_negative")
        if restrict not in ("zero_out_negative", "absolute_values", None):
            restrict = None  # MALA's setter turns anything else into None

        scalers = [_read_scaler(read(name), name, f"{path}::{name}") for name in scaler_names]
        for scaler, width, what in (
            (scalers[0], sizes[0], "input"),
            (scalers[1], sizes[-1], "output"),
        ):
            if scaler.n_features is not None and scaler.n_features != width:
                raise InputError(
                    f"the {what} scaler has {scaler.n_features} columns but the network "
                    f"{what} has {width}",
                    path=scaler.source,
                    fix="give the scalers saved with this model",
                )

        network_label = f"{path}::{network_name}"
        state_dict = _load_state_dict(read(network_name), network_label)
        _check_state_dict(
            state_dict,
            layers,
            network_label,
            legacy_hint=isinstance(network.get("layer_activations"), list)
            and len(network["layer_activations"]) == 1,
        )

        info = None
        if info_name:
            info_label = f"{path}::{info_name}"
            info = _parse_info(_load_json(read(info_name), info_label), info_label)

    return MalaArchive(
        path=path,
        run_name=run_name,
        params=params,
        state_dict=state_dict,
        layers=layers,
        layer_sizes=sizes,
        activations=activations,
        input_scaler=scalers[0],
        output_scaler=scalers[1],
        energy_grid=energy_grid,
        target_type=str(targets.get("target_type", "LDOS")),
        restrict_targets=restrict,
        descriptor_type=descriptor_type,
        twojmax=twojmax,
        cutoff=cutoff,
        descriptors_contain_xyz=bool(descriptors.get("descriptors_contain_xyz", True)),
        info=info,
        members=tuple(names),
    )
