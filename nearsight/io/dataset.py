"""The snapshot file: one HDF5 file per atomic configuration.

Layout (all in nearsight units: eV, Å, 1/Å³, 1/(eV·Å³), K)::

    /                     attrs: format, format_version, nearsight_version, grid_shape,
                                 temperature_k, number_of_electrons
    /atoms/numbers        [nat] int
    /atoms/positions      [nat, 3] Å
    /atoms/cell           [3, 3] Å (rows are lattice vectors)
    /atoms/pbc            [3] bool
    /ldos                 [nx, ny, nz, ne] float32, 1/(eV·Å³); attrs e_min, de, n (eV),
                          broadening_ev, kernel; chunked by slabs along x, gzip + shuffle
    /density              [nx, ny, nz] float64, 1/Å³
    /descriptors          [nx, ny, nz, F] float32 (optional); attr metadata (JSON string)
    /pseudopotentials/El  the UPF file's text; attrs filename, sha256
    /qe                   attrs: version, fermi_energy, number_of_electrons, fft_grid,
                          ecutwfc_ry, ecutrho_ry, degauss_ev, xc_functional
    /qe/energies          attrs: total, one_electron, hartree, xc, ewald, smearing, ...
    /qe/kpoints           [nk, 3] 1/Å;  /qe/k_weights [nk];  /qe/eigenvalues [nk, nb] eV
    /qe/forces            [nat, 3] eV/Å (if printed);  /qe/stress [3, 3] eV/Å³ (if printed)
    /provenance           attrs: free-form strings and numbers (timings, commands)

Descriptors are added by later stages as further datasets of the same file. Files are
written to a temporary name and renamed, so a crash never leaves half a snapshot behind.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from ase import Atoms

from nearsight import __version__
from nearsight.errors import InputError
from nearsight.grid import EnergyGrid, Grid
from nearsight.io.atomic import atomic_path

FORMAT = "nearsight.snapshot"
FORMAT_VERSION = 1
_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class PseudoRecord:
    """The pseudopotential a snapshot was made with, kept whole so results are reproducible."""

    element: str
    filename: str
    sha256: str
    text: str


@dataclass(frozen=True)
class QEReference:
    """What Quantum ESPRESSO computed and printed for a snapshot (eV, Å)."""

    version: str
    energies: dict[str, float]
    fermi_energy: float
    number_of_electrons: float
    fft_grid: tuple[int, int, int]
    ecutwfc_ry: float
    ecutrho_ry: float
    degauss_ev: float
    xc_functional: str
    kpoints: np.ndarray
    k_weights: np.ndarray
    eigenvalues: np.ndarray
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None


@dataclass(frozen=True)
class Snapshot:
    """One atomic configuration with its grid data and QE reference values.

    Attributes:
        atoms: positions and cell, Å.
        grid_shape: (nx, ny, nz) of the real-space grid.
        temperature_k: electronic temperature of the DFT run, K.
        number_of_electrons: valence electrons in the cell.
        pseudopotentials: element -> record.
        ldos: [nx, ny, nz, ne] float32, 1/(eV·Å³), or None.
        energy_grid: the LDOS energies, or None without LDOS.
        ldos_broadening_ev: width of the kernel that broadens each level in the LDOS, eV.
        ldos_kernel: that kernel: "fermi-dirac" (w(x) = 1/(2 + e^x + e^-x)) or
            "gaussian" (exp(-x²)/√π), with x = (E - e) / width; pp.x uses pw.x's smearing.
        density: [nx, ny, nz] float64, 1/Å³, or None.
        qe: QE's printed reference values, or None.
        provenance: how the snapshot was made (timings in s, versions, commands).
        descriptors: [nx, ny, nz, F] float32 descriptors of the grid points, or None.
        descriptor_metadata: how they were computed (kind, parameters, backend, version).
    """

    atoms: Atoms
    grid_shape: tuple[int, int, int]
    temperature_k: float
    number_of_electrons: float
    pseudopotentials: dict[str, PseudoRecord] = field(default_factory=dict)
    ldos: np.ndarray | None = None
    energy_grid: EnergyGrid | None = None
    ldos_broadening_ev: float | None = None
    ldos_kernel: str | None = None
    density: np.ndarray | None = None
    qe: QEReference | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    descriptors: np.ndarray | None = None
    descriptor_metadata: dict[str, Any] | None = None

    @property
    def grid(self) -> Grid:
        """The real-space grid of the cell."""
        return Grid(np.asarray(self.atoms.cell[:]), self.grid_shape)


def write_snapshot(
    path: str | PathLike[str], snapshot: Snapshot, *, ldos_mantissa_bits: int | None = None
) -> Path:
    """Validate ``snapshot`` and write it to ``path`` atomically.

    Args:
        path: the .h5 file to write.
        snapshot: what to write.
        ldos_mantissa_bits: keep this many of float32's 23 explicit mantissa bits of the
            LDOS, rounding the rest away so that gzip compresses them. 17 bits (relative
            change at most 3.8e-6) keep every digit of pp.x's cube files, which print 5
            significant digits (relative resolution 1e-5 or coarser). None keeps all bits.

    Raises:
        InputError: inconsistent shapes, NaN or inf values, or a missing energy grid.
    """
    path = Path(path)
    _validate(snapshot, path)
    if ldos_mantissa_bits is not None and not 1 <= ldos_mantissa_bits <= 23:
        raise ValueError(f"ldos_mantissa_bits must be in 1..23, got {ldos_mantissa_bits}")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs["format"] = FORMAT
        h5.attrs["format_version"] = FORMAT_VERSION
        h5.attrs["nearsight_version"] = __version__
        h5.attrs["grid_shape"] = np.asarray(snapshot.grid_shape, dtype=np.int64)
        h5.attrs["temperature_k"] = float(snapshot.temperature_k)
        h5.attrs["number_of_electrons"] = float(snapshot.number_of_electrons)
        _write_atoms(h5.create_group("atoms"), snapshot.atoms)
        if snapshot.ldos is not None:
            assert snapshot.energy_grid is not None  # checked by _validate
            ldos = np.ascontiguousarray(snapshot.ldos, dtype=np.float32)
            if ldos_mantissa_bits is not None and ldos_mantissa_bits < 23:
                ldos = round_mantissa(ldos, ldos_mantissa_bits)
            ds = h5.create_dataset(
                "ldos",
                data=ldos,
                chunks=_slab_chunks(ldos.shape, ldos.itemsize),
                compression="gzip",
                compression_opts=4,
                shuffle=True,
            )
            ds.attrs["e_min"] = snapshot.energy_grid.e_min
            ds.attrs["de"] = snapshot.energy_grid.de
            ds.attrs["n"] = snapshot.energy_grid.n
            if snapshot.ldos_broadening_ev is not None:
                ds.attrs["broadening_ev"] = snapshot.ldos_broadening_ev
            if snapshot.ldos_kernel is not None:
                ds.attrs["kernel"] = snapshot.ldos_kernel
            ds.attrs["units"] = "1/(eV*Angstrom^3)"
            ds.attrs["mantissa_bits"] = 23 if ldos_mantissa_bits is None else ldos_mantissa_bits
        if snapshot.density is not None:
            density = np.asarray(snapshot.density, dtype=np.float64)
            ds = h5.create_dataset(
                "density",
                data=density,
                chunks=_slab_chunks(density.shape, density.itemsize),
                compression="gzip",
                compression_opts=4,
                shuffle=True,
            )
            ds.attrs["units"] = "1/Angstrom^3"
        if snapshot.descriptors is not None:
            _write_descriptors(h5, snapshot.descriptors, snapshot.descriptor_metadata or {})
        pseudo = h5.create_group("pseudopotentials")
        for element, record in snapshot.pseudopotentials.items():
            # Bytes, not an HDF5 string, so that gzip applies (UPF files are mostly numbers).
            ds = pseudo.create_dataset(
                element,
                data=np.frombuffer(record.text.encode(), dtype=np.uint8),
                compression="gzip",
                compression_opts=9,
            )
            ds.attrs["filename"] = record.filename
            ds.attrs["sha256"] = record.sha256
        if snapshot.qe is not None:
            _write_qe(h5.create_group("qe"), snapshot.qe)
        prov = h5.create_group("provenance")
        for key, value in snapshot.provenance.items():
            prov.attrs[key] = value
    return path


def store_descriptors(
    path: str | PathLike[str], descriptors: np.ndarray, metadata: dict[str, Any]
) -> Path:
    """Add (or replace) the descriptors of an existing snapshot file, atomically.

    The file is copied, changed and renamed back, so an interrupted run leaves the original.

    Args:
        path: the snapshot .h5 file.
        descriptors: [nx, ny, nz, F] on the snapshot's grid; stored as float32.
        metadata: JSON-ready description (kind, parameters, backend, version).

    Raises:
        InputError: the grid of ``descriptors`` differs from the snapshot's, or NaN/inf.
    """
    path = Path(path)
    with open_snapshot(path) as snap:
        shape = snap.grid_shape
    descriptors = np.asarray(descriptors)
    if descriptors.ndim != 4 or tuple(descriptors.shape[:3]) != tuple(shape):
        raise InputError(
            f"descriptors of shape {descriptors.shape} do not fit the grid {shape}",
            path=path,
            field="descriptors",
            fix="compute the descriptors on the snapshot's grid",
        )
    if not np.all(np.isfinite(descriptors)):
        raise InputError("descriptors contain NaN or inf", path=path, field="descriptors")
    with atomic_path(path) as tmp:
        shutil.copyfile(path, tmp)
        with h5py.File(tmp, "r+") as h5:
            if "descriptors" in h5:
                del h5["descriptors"]
            _write_descriptors(h5, descriptors, metadata)
    return path


def _write_descriptors(h5: h5py.File, descriptors: np.ndarray, metadata: dict[str, Any]) -> None:
    data = np.ascontiguousarray(descriptors, dtype=np.float32)
    ds = h5.create_dataset(
        "descriptors",
        data=data,
        chunks=_slab_chunks(data.shape, data.itemsize),
        compression="gzip",
        compression_opts=4,
        shuffle=True,
    )
    ds.attrs["metadata"] = json.dumps(metadata, sort_keys=True)


def read_snapshot(path: str | PathLike[str], *, ldos: bool = True) -> Snapshot:
    """Read a whole snapshot; with ``ldos=False`` the (large) LDOS array is skipped."""
    with open_snapshot(path) as snap:
        return snap.load(ldos=ldos)


@contextlib.contextmanager
def open_snapshot(path: str | PathLike[str]) -> Iterator[SnapshotFile]:
    """Open a snapshot file for lazy reading (slabs of the LDOS without the rest)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            "snapshot file not found",
            path=path,
            fix="check the path; `nearsight dft CONFIG` makes snapshot files",
        )
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise InputError(
            f"not a readable HDF5 file ({err})",
            path=path,
            fix="the file is damaged or not a snapshot; regenerate it",
        ) from err
    try:
        yield SnapshotFile(path, h5)
    finally:
        h5.close()


class SnapshotFile:
    """An open snapshot file. Use through :func:`open_snapshot`."""

    def __init__(self, path: Path, h5: h5py.File) -> None:
        self.path = path
        self._h5 = h5
        fmt = h5.attrs.get("format")
        if fmt != FORMAT:
            raise InputError(
                f"not a nearsight snapshot (format attribute {fmt!r})",
                path=path,
                fix="give a file written by `nearsight dft` or write_snapshot",
            )
        version = int(h5.attrs.get("format_version", -1))
        if version > FORMAT_VERSION or version < 1:
            raise InputError(
                f"snapshot format version {version} is not supported (this nearsight reads "
                f"1..{FORMAT_VERSION})",
                path=path,
                fix="upgrade nearsight, or regenerate the file with this version",
            )
        for name in ("atoms",):
            if name not in h5:
                raise InputError(
                    f"group '/{name}' is missing",
                    path=path,
                    field=name,
                    fix="the file is incomplete; regenerate it",
                )
        self.grid_shape: tuple[int, int, int] = tuple(int(n) for n in h5.attrs["grid_shape"])

    @property
    def has_ldos(self) -> bool:
        return "ldos" in self._h5

    @property
    def energy_grid(self) -> EnergyGrid | None:
        if not self.has_ldos:
            return None
        a = self._h5["ldos"].attrs
        return EnergyGrid(float(a["e_min"]), float(a["de"]), int(a["n"]))

    def atoms(self) -> Atoms:
        g = self._h5["atoms"]
        return Atoms(
            numbers=g["numbers"][()],
            positions=g["positions"][()],
            cell=g["cell"][()],
            pbc=g["pbc"][()],
        )

    @property
    def has_descriptors(self) -> bool:
        return "descriptors" in self._h5

    @property
    def descriptor_metadata(self) -> dict[str, Any] | None:
        """How the stored descriptors were computed, or None without descriptors."""
        if not self.has_descriptors:
            return None
        return json.loads(str(self._h5["descriptors"].attrs["metadata"]))

    def descriptors_slab(self, x_start: int, x_stop: int) -> np.ndarray:
        """Descriptors of the x-planes ``x_start:x_stop``, [x_stop - x_start, ny, nz, F]."""
        fix = "compute them with `nearsight descriptors SNAPSHOT.h5`"
        return self._slab("descriptors", "descriptors", x_start, x_stop, fix)

    def ldos_slab(self, x_start: int, x_stop: int) -> np.ndarray:
        """LDOS of grid planes ``x_start:x_stop``: [x_stop - x_start, ny, nz, ne] float32."""
        fix = "run `nearsight dft` with an [ldos] section"
        return self._slab("ldos", "LDOS", x_start, x_stop, fix)

    def _slab(self, name: str, label: str, x_start: int, x_stop: int, fix: str) -> np.ndarray:
        if name not in self._h5:
            raise InputError(f"this snapshot has no {label}", path=self.path, field=name, fix=fix)
        return self._h5[name][x_start:x_stop]

    def ldos_at(self, index: int) -> np.ndarray:
        """LDOS at energy ``index`` of the energy grid: [nx, ny, nz] float32, 1/(eV·Å³)."""
        grid = self.energy_grid
        if grid is None:
            raise InputError(
                "this snapshot has no LDOS",
                path=self.path,
                field="ldos",
                fix="run `nearsight dft` with an [ldos] section",
            )
        if not 0 <= index < grid.n:
            raise IndexError(f"energy index {index} outside 0..{grid.n - 1}")
        return self._h5["ldos"][..., index]

    def load(self, *, ldos: bool = True) -> Snapshot:
        """Read everything (the LDOS only if ``ldos``) into a :class:`Snapshot`."""
        try:
            return self._load(ldos)
        except (OSError, KeyError) as err:
            raise InputError(
                f"damaged or incomplete snapshot ({err})",
                path=self.path,
                fix="regenerate the file with `nearsight dft`",
            ) from err

    def _load(self, ldos: bool) -> Snapshot:
        h5 = self._h5
        pseudos = (
            {
                el: PseudoRecord(
                    el,
                    str(ds.attrs["filename"]),
                    str(ds.attrs["sha256"]),
                    ds[()].tobytes().decode(),
                )
                for el, ds in h5["pseudopotentials"].items()
            }
            if "pseudopotentials" in h5
            else {}
        )
        ldos_data = h5["ldos"][()] if (ldos and self.has_ldos) else None
        ldos_attrs = h5["ldos"].attrs if self.has_ldos else {}
        broadening = ldos_attrs.get("broadening_ev")
        kernel = ldos_attrs.get("kernel")
        return Snapshot(
            atoms=self.atoms(),
            grid_shape=self.grid_shape,
            temperature_k=float(h5.attrs["temperature_k"]),
            number_of_electrons=float(h5.attrs["number_of_electrons"]),
            pseudopotentials=pseudos,
            ldos=ldos_data,
            energy_grid=self.energy_grid,
            ldos_broadening_ev=None if broadening is None else float(broadening),
            ldos_kernel=None if kernel is None else str(kernel),
            density=h5["density"][()] if "density" in h5 else None,
            qe=_read_qe(h5["qe"]) if "qe" in h5 else None,
            provenance=_attrs(h5["provenance"]) if "provenance" in h5 else {},
            descriptors=h5["descriptors"][()] if self.has_descriptors else None,
            descriptor_metadata=self.descriptor_metadata,
        )

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary: atoms, grid, energy grid, QE energies, sizes."""
        atoms = self.atoms()
        out: dict[str, Any] = {
            "file": str(self.path),
            "file_size_mb": round(self.path.stat().st_size / 2**20, 3),
            "formula": atoms.get_chemical_formula(),
            "number_of_atoms": len(atoms),
            "cell_angstrom": np.round(atoms.cell[:], 6).tolist(),
            "grid_shape": list(self.grid_shape),
            "temperature_k": float(self._h5.attrs["temperature_k"]),
            "number_of_electrons": float(self._h5.attrs["number_of_electrons"]),
            "nearsight_version": str(self._h5.attrs.get("nearsight_version", "?")),
        }
        grid = self.energy_grid
        if grid is not None:
            out["energy_grid_ev"] = {
                "e_min": grid.e_min,
                "de": grid.de,
                "n": grid.n,
                "e_max": grid.e_max,
            }
            out["ldos_broadening_ev"] = float(self._h5["ldos"].attrs.get("broadening_ev", "nan"))
            out["ldos_kernel"] = str(self._h5["ldos"].attrs.get("kernel", "unknown"))
        out["has_density"] = "density" in self._h5
        if self.has_descriptors:
            out["descriptors"] = {
                "features": int(self._h5["descriptors"].shape[3]),
                **(self.descriptor_metadata or {}),
            }
        if "pseudopotentials" in self._h5:
            out["pseudopotentials"] = {
                el: {"filename": str(ds.attrs["filename"]), "sha256": str(ds.attrs["sha256"])}
                for el, ds in self._h5["pseudopotentials"].items()
            }
        if "qe" in self._h5:
            qe = self._h5["qe"]
            out["qe"] = {
                "version": str(qe.attrs["version"]),
                "xc_functional": str(qe.attrs["xc_functional"]),
                "fermi_energy_ev": float(qe.attrs["fermi_energy"]),
                "energies_ev": {k: float(v) for k, v in qe["energies"].attrs.items()},
            }
        if "provenance" in self._h5:
            out["provenance"] = {k: _plain(v) for k, v in self._h5["provenance"].attrs.items()}
        return out


def _validate(snapshot: Snapshot, path: Path) -> None:
    shape = tuple(snapshot.grid_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise InputError(f"grid_shape must be three positive integers, got {shape}", path=path)
    if snapshot.atoms.cell.rank != 3:
        raise InputError(
            "atoms have no 3D cell", path=path, field="atoms", fix="give atoms with a periodic cell"
        )
    if snapshot.ldos is not None:
        if snapshot.ldos.ndim != 4 or snapshot.ldos.shape[:3] != shape:
            raise InputError(
                f"LDOS shape {snapshot.ldos.shape} does not match grid {shape}",
                path=path,
                field="ldos",
                fix="LDOS must be [nx, ny, nz, ne] on the snapshot's grid",
            )
        if snapshot.energy_grid is None or snapshot.energy_grid.n != snapshot.ldos.shape[3]:
            raise InputError(
                "LDOS needs an energy grid with one energy per slice",
                path=path,
                field="energy_grid",
                fix="pass energy_grid with n = ldos.shape[3]",
            )
        if not np.isfinite(snapshot.ldos).all():
            raise InputError(
                "LDOS contains NaN or inf",
                path=path,
                field="ldos",
                fix="check the pp.x output that produced it",
            )
    if snapshot.density is not None:
        if snapshot.density.shape != shape:
            raise InputError(
                f"density shape {snapshot.density.shape} does not match grid {shape}",
                path=path,
                field="density",
            )
        if not np.isfinite(snapshot.density).all():
            raise InputError(
                "density contains NaN or inf",
                path=path,
                field="density",
                fix="check the pp.x output that produced it",
            )


def round_mantissa(values: np.ndarray, bits: int) -> np.ndarray:
    """Round float32 ``values`` to ``bits`` explicit mantissa bits (ties away from zero).

    The relative change is at most 2^-(bits+1). Rounding acts on the magnitude bits, so it
    is symmetric in sign; a carry into the exponent is the correct rounding up.
    """
    drop = 23 - bits
    raw = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    half = np.uint32(1 << (drop - 1))
    mask = np.uint32(~((1 << drop) - 1) & 0xFFFFFFFF)
    return ((raw + half) & mask).view(np.float32)


def _slab_chunks(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """Chunks of whole x-planes (or parts of one), about 1 MiB, so a slab reads alone."""
    per_row = int(np.prod(shape[2:])) * itemsize
    rows = max(1, min(shape[1], _CHUNK_BYTES // max(per_row, 1)))
    return (1, rows, *shape[2:])


def _write_atoms(group: h5py.Group, atoms: Atoms) -> None:
    group.create_dataset("numbers", data=atoms.numbers.astype(np.int64))
    group.create_dataset("positions", data=np.asarray(atoms.positions, dtype=np.float64))
    group.create_dataset("cell", data=np.asarray(atoms.cell[:], dtype=np.float64))
    group.create_dataset("pbc", data=np.asarray(atoms.pbc, dtype=bool))


def _write_qe(group: h5py.Group, qe: QEReference) -> None:
    group.attrs["version"] = qe.version
    group.attrs["fermi_energy"] = qe.fermi_energy
    group.attrs["number_of_electrons"] = qe.number_of_electrons
    group.attrs["fft_grid"] = np.asarray(qe.fft_grid, dtype=np.int64)
    group.attrs["ecutwfc_ry"] = qe.ecutwfc_ry
    group.attrs["ecutrho_ry"] = qe.ecutrho_ry
    group.attrs["degauss_ev"] = qe.degauss_ev
    group.attrs["xc_functional"] = qe.xc_functional
    energies = group.create_group("energies", track_order=True)
    for key, value in qe.energies.items():
        energies.attrs[key] = float(value)
    group.create_dataset("kpoints", data=np.asarray(qe.kpoints, dtype=np.float64))
    group.create_dataset("k_weights", data=np.asarray(qe.k_weights, dtype=np.float64))
    group.create_dataset("eigenvalues", data=np.asarray(qe.eigenvalues, dtype=np.float64))
    if qe.forces is not None:
        group.create_dataset("forces", data=np.asarray(qe.forces, dtype=np.float64))
    if qe.stress is not None:
        group.create_dataset("stress", data=np.asarray(qe.stress, dtype=np.float64))


def _read_qe(group: h5py.Group) -> QEReference:
    a = group.attrs
    return QEReference(
        version=str(a["version"]),
        energies={k: float(v) for k, v in group["energies"].attrs.items()},
        fermi_energy=float(a["fermi_energy"]),
        number_of_electrons=float(a["number_of_electrons"]),
        fft_grid=tuple(int(n) for n in a["fft_grid"]),
        ecutwfc_ry=float(a["ecutwfc_ry"]),
        ecutrho_ry=float(a["ecutrho_ry"]),
        degauss_ev=float(a["degauss_ev"]),
        xc_functional=str(a["xc_functional"]),
        kpoints=group["kpoints"][()],
        k_weights=group["k_weights"][()],
        eigenvalues=group["eigenvalues"][()],
        forces=group["forces"][()] if "forces" in group else None,
        stress=group["stress"][()] if "stress" in group else None,
    )


def _attrs(group: h5py.Group) -> dict[str, Any]:
    return {k: _plain(v) for k, v in group.attrs.items()}


def _plain(value: Any) -> Any:
    """HDF5 attribute value -> JSON-ready Python value."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode()
    return value
