"""Snapshots as sources of (descriptor, LDOS) rows for training and testing.

A source exposes one snapshot's grid points in flat C order (x slowest): ``features(start,
stop)`` gives descriptor rows [n, F] and ``targets(start, stop)`` LDOS rows [n, E], both
float32, read from disk on demand so a dataset never has to fit in memory. Reads aligned
to x-planes map onto the HDF5 chunks of a snapshot file (one plane per chunk).

Descriptors come from the snapshot file when it holds ones made with the requested
parameters, else from a cache file ``{cache_dir}/{stem}-{key}.npy`` (computed on first use,
written atomically), where the key hashes the structure, the grid and the parameters, so a
changed snapshot or parameter never reuses stale descriptors.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
from collections.abc import Callable, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from ase import Atoms

from nearsight.config import DescriptorsConfig
from nearsight.errors import InputError
from nearsight.grid import EnergyGrid
from nearsight.io.atomic import atomic_path
from nearsight.io.dataset import Snapshot, open_snapshot

Progress = Callable[[int, int], None]

PARAMETER_KEYS = (
    "kind",
    "twojmax",
    "rcutfac",
    "elements",
    "radii",
    "weights",
    "rfac0",
    "rmin0",
    "switchflag",
    "bzeroflag",
    "wselfallflag",
)
"""Descriptor metadata that changes the numbers (backend and storage dtype do not)."""


class PointSource(Protocol):
    """One snapshot's grid points as rows; see the module docstring."""

    path: Path
    grid_shape: tuple[int, int, int]
    n_features: int
    energy_grid: EnergyGrid

    @property
    def n_points(self) -> int: ...

    def features(self, start: int, stop: int) -> np.ndarray: ...

    def targets(self, start: int, stop: int) -> np.ndarray: ...

    def snapshot(self) -> Snapshot: ...

    def close(self) -> None: ...


def descriptor_parameters(metadata: dict[str, Any]) -> dict[str, Any]:
    """The entries of descriptor metadata that define the numbers."""
    return {k: metadata.get(k) for k in PARAMETER_KEYS}


class SnapshotSource:
    """Rows of a nearsight snapshot file (``.h5``).

    Args:
        path: the snapshot file; it must hold an LDOS.
        descriptors: parameters the features must have been computed with.
        cache_dir: where descriptors missing from the file are cached; None keeps them in
            memory only.
        progress: reports descriptor computation as (points done, points in all).
    """

    def __init__(
        self,
        path: str | PathLike[str],
        descriptors: DescriptorsConfig,
        *,
        cache_dir: str | PathLike[str] | None = None,
        progress: Progress | None = None,
    ) -> None:
        from nearsight.descriptors.compute import metadata

        self.path = Path(path)
        self._context = open_snapshot(self.path)
        self._file = self._context.__enter__()
        try:
            self.grid_shape = self._file.grid_shape
            grid = self._file.energy_grid
            if grid is None:
                raise InputError(
                    "this snapshot has no LDOS to train or test on",
                    path=self.path,
                    field="ldos",
                    fix="run `nearsight dft` with an [ldos] section, or leave the file out",
                )
            self.energy_grid = grid
            self.metadata = metadata(descriptors)
            wanted = descriptor_parameters(self.metadata)
            stored = self._file.descriptor_metadata
            self._features: np.ndarray | None = None
            if stored is None or descriptor_parameters(stored) != wanted:
                self._features = _cached_descriptors(
                    self._file.atoms(), self.grid_shape, descriptors, self.path, cache_dir,
                    progress,
                )  # fmt: skip
            self.n_features = int(self.metadata["features"])
        except BaseException:
            self.close()
            raise

    @property
    def n_points(self) -> int:
        """Grid points of the snapshot."""
        return int(np.prod(self.grid_shape))

    @property
    def plane(self) -> int:
        """Points per x-plane (ny·nz), the natural block of an HDF5 read."""
        return self.grid_shape[1] * self.grid_shape[2]

    def features(self, start: int, stop: int) -> np.ndarray:
        """Descriptor rows of flat points ``start:stop``: [n, F] float32."""
        if self._features is not None:
            return np.asarray(self._features[start:stop], dtype=np.float32)
        return self._rows(self._file.descriptors_slab, start, stop)

    def targets(self, start: int, stop: int) -> np.ndarray:
        """LDOS rows of flat points ``start:stop``: [n, E] float32, 1/(eV·Å³)."""
        return self._rows(self._file.ldos_slab, start, stop)

    def _rows(self, slab: Callable[[int, int], np.ndarray], start: int, stop: int) -> np.ndarray:
        x0, x1 = start // self.plane, -(-stop // self.plane)
        rows = slab(x0, x1)
        rows = rows.reshape(-1, rows.shape[-1])
        offset = x0 * self.plane
        return np.asarray(rows[start - offset : stop - offset], dtype=np.float32)

    def snapshot(self) -> Snapshot:
        """Everything but the LDOS and descriptors (atoms, QE values, density, ...)."""
        snap = self._file.load(ldos=False)
        return dataclasses.replace(snap, descriptors=None, descriptor_metadata=None)

    def atoms(self) -> Atoms:
        return self._file.atoms()

    def __enter__(self) -> SnapshotSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if getattr(self, "_context", None) is not None:
            self._context.__exit__(None, None, None)
            self._context = None


def _cached_descriptors(
    atoms: Atoms,
    shape: tuple[int, int, int],
    config: DescriptorsConfig,
    path: Path,
    cache_dir: str | PathLike[str] | None,
    progress: Progress | None,
) -> np.ndarray:
    """Flat descriptors [N, F] float32 from the cache, computed and stored when missing."""
    from nearsight.descriptors.compute import compute_descriptors, metadata

    key = descriptor_key(atoms, shape, metadata(config))
    cache = None if cache_dir is None else Path(cache_dir) / f"{path.stem}-{key}.npy"
    if cache is not None and cache.is_file():
        return np.load(cache, mmap_mode="r", allow_pickle=False)
    values = compute_descriptors(atoms, shape, config, progress=progress)
    flat = np.ascontiguousarray(values, dtype=np.float32).reshape(-1, values.shape[-1])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache) as tmp, open(tmp, "wb") as fh:
            np.save(fh, flat, allow_pickle=False)
    return flat


def descriptor_key(atoms: Atoms, shape: Sequence[int], metadata: dict[str, Any]) -> str:
    """A short hash of what determines a snapshot's descriptors."""
    h = hashlib.sha256()
    h.update(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
    h.update(np.asarray(atoms.positions, dtype=np.float64).tobytes())
    h.update(np.asarray(atoms.cell[:], dtype=np.float64).tobytes())
    h.update(np.asarray(shape, dtype=np.int64).tobytes())
    h.update(json.dumps(descriptor_parameters(metadata), sort_keys=True).encode())
    return h.hexdigest()[:12]


def expand_paths(
    patterns: Sequence[str], base: Path, *, field: str, source: str | PathLike[str] | None
) -> list[Path]:
    """Snapshot files of a list of paths and globs relative to ``base``, sorted per pattern.

    Raises:
        InputError: a pattern that matches nothing.
    """
    out: list[Path] = []
    for pattern in patterns:
        full = pattern if Path(pattern).is_absolute() else str(base / pattern)
        matches = sorted(Path(p) for p in glob.glob(full))
        if not matches:
            raise InputError(
                f"no file matches {pattern!r} (looked in {base})",
                path=source,
                field=field,
                fix="give snapshot files (.h5, or MALA *.in.npy) or a glob that matches some",
            )
        out.extend(matches)
    return out


class MalaSource:
    """Rows of a MALA snapshot (``X.in.npy`` with ``X.out.npy`` and ``X.info.json`` beside).

    MALA keeps the LDOS energy grid in its model parameters, not in the snapshot, so it is
    given here. The descriptors are used as they are; they must have been computed with
    the parameters the model expects (MALA files do not record them).

    Raises:
        InputError: no LDOS file, no info file (structure, temperature and electron count
            come from it), or an energy grid that does not fit the LDOS.
    """

    def __init__(self, path: str | PathLike[str], energy_grid: EnergyGrid) -> None:
        from nearsight.io.mala import MalaSnapshotFiles

        self._files = MalaSnapshotFiles(path, energy_grid=energy_grid)
        self.path = self._files.path
        try:
            for missing, what, fix in (
                (not self._files.has_targets, "LDOS X.out.npy", "put X.out.npy beside it"),
                (self._files.info is None, "X.info.json", "put MALA's X.info.json beside it"),
            ):
                if missing:
                    raise InputError(
                        f"no {what} beside this MALA snapshot", path=self.path, fix=fix
                    )
            if self._files.atoms is None or self._files.info.number_of_electrons is None:
                raise InputError(
                    "the info file lacks the atoms or the electron count",
                    path=self._files.info_path,
                    field="atoms",
                    fix="write it with MALA's write_additional_calculation_data",
                )
        except BaseException:
            self._files.close()
            raise
        self.grid_shape = self._files.grid_shape
        self.n_features = self._files.n_features
        self.energy_grid = energy_grid

    @property
    def n_points(self) -> int:
        return self._files.n_points

    def features(self, start: int, stop: int) -> np.ndarray:
        """Descriptor rows [n, F] float32 (the coordinate columns dropped)."""
        return self._files.features(start, stop)

    def targets(self, start: int, stop: int) -> np.ndarray:
        """LDOS rows [n, E] float32, 1/(eV·Å³)."""
        return self._files.targets(start, stop)

    def snapshot(self) -> Snapshot:
        """Structure, grid, temperature and electron count (no pseudopotentials)."""
        info = self._files.info
        return Snapshot(
            atoms=self._files.atoms,
            grid_shape=self.grid_shape,
            temperature_k=float(info.temperature),
            number_of_electrons=float(info.number_of_electrons),
            energy_grid=self.energy_grid,
        )

    def __enter__(self) -> MalaSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._files.close()


def open_source(
    path: str | PathLike[str],
    descriptors: DescriptorsConfig,
    *,
    energy_grid: EnergyGrid | None = None,
    cache_dir: str | PathLike[str] | None = None,
    progress: Progress | None = None,
) -> PointSource:
    """A source for a nearsight ``.h5`` snapshot or a MALA ``*.in.npy`` snapshot.

    ``energy_grid`` is needed for MALA files only (their LDOS energies are not stored).
    """
    path = Path(path)
    if path.name.endswith(".in.npy"):
        if energy_grid is None:
            raise InputError(
                "MALA snapshots do not record their LDOS energy grid",
                path=path,
                field="energy_grid",
                fix="give it: [ldos] emin_ev, de_ev and count in the config",
            )
        return MalaSource(path, energy_grid)
    return SnapshotSource(path, descriptors, cache_dir=cache_dir, progress=progress)
