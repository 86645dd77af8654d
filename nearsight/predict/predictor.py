"""Energy, density and DOS of any structure from a trained model, streamed over the grid.

The grid of a new cell keeps the training spacing. Prediction runs in two passes over
contiguous chunks of flat grid points (C order, x slowest):

1. descriptors of the chunk -> network -> LDOS rows, whose sum (× voxel volume) builds the
   DOS and which are parked in a float32 memory map in a temporary directory (or kept in
   memory when the caller asks for the LDOS);
2. once the DOS gives the Fermi level, each parked chunk is read back and contracted with
   the occupation weights into the density.

Working memory is therefore a few chunk-sized arrays (the network's float64 output is
chunk_points × E × 8 bytes, 65 MB for 8192 points and 1000 energies) plus the density grid
(8 bytes a point); the LDOS itself (4 × E bytes a point, e.g. 1.2 GB for 1.7 M points and
176 energies) lives in the file, cached by the operating system as far as memory allows
and dropped when memory is short. The density terms (Hartree, exchange-correlation, Ewald)
then need FFTs of the whole density grid, a few density-sized arrays at once. (On 48³
points with 1000 energies the process's own memory grows by about 130 MB streamed and by
530 MB with the 420 MB LDOS kept.) The LAMMPS descriptor backend computes whole grids only,
so with it the descriptors (8 × F bytes a point) are held whole.

Under MPI each rank streams its contiguous share of the points; the DOS is summed over
ranks, rank 0 finds the Fermi level, gathers the density, computes the density terms and
sends every rank the result.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from os import PathLike
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from ase import Atoms

from nearsight.descriptors import bispectrum as bispectrum_module
from nearsight.descriptors.compute import bispectrum_params, compute_descriptors, split
from nearsight.errors import InputError, NearsightError
from nearsight.grid import EnergyGrid, Grid
from nearsight.io.upf import parse_upf
from nearsight.model.bundle import Bundle
from nearsight.model.inference import predict_ldos
from nearsight.physics.energy import EnergyTerms, _check_cutoff, density_terms, harris_foulkes
from nearsight.physics.fermi import BandObservables, band_observables, integration_weights
from nearsight.physics.system import EnergySystem

Progress = Callable[[int, int], None]
"""Called with (grid points done, grid points to do) on this rank: once with 0 done before
the first chunk, then after each chunk."""

_T = TypeVar("_T")


@dataclass(frozen=True, eq=False)
class Prediction:
    """What the model predicts for one structure.

    Attributes:
        terms: every term of the total free energy, eV (electrons for the count).
        density: valence density [nx, ny, nz], 1/Å³, float64; None on MPI ranks other
            than 0.
        dos: density of states [E], states/eV, on ``energy_grid``.
        energy_grid: the LDOS energies, eV.
        grid_shape: real-space grid points along each cell vector.
        atoms: the structure (a copy), Å.
        temperature_k: electronic temperature of the Fermi-Dirac occupations, K.
        functional: exchange-correlation functional of the pseudopotentials.
        method: energy integration against the Fermi function.
        ldos: [nx, ny, nz, E] float32, 1/(eV·Å³), when asked for (on rank 0 under MPI),
            else None.
        timings: seconds spent on ``descriptors``, ``network``, ``physics`` (Fermi level,
            density, density terms) and ``total``, on this rank.
    """

    terms: EnergyTerms
    density: np.ndarray | None
    dos: np.ndarray
    energy_grid: EnergyGrid
    grid_shape: tuple[int, int, int]
    atoms: Atoms
    temperature_k: float
    functional: str
    method: str
    ldos: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def number_of_atoms(self) -> int:
        return len(self.atoms)

    @property
    def energy_per_atom(self) -> float:
        """Total free energy per atom, eV."""
        return float(self.terms.total_energy) / self.number_of_atoms

    def as_json(self, *, source: str | None = None, qe: dict[str, float] | None = None) -> dict:
        """The keys of ``nearsight energy --json`` with the predicted values, JSON-ready.

        Args:
            source: the structure file, recorded under ``source``.
            qe: reference values from QE under the energy keys, if there are any; the
                ``qe`` key is left out without them.

        Returns:
            Every term of :meth:`EnergyTerms.as_dict` (eV), the context keys of ``nearsight
            energy`` (``density_mape_percent`` is None: there is no reference density), and
            ``energy_per_atom`` (eV) and ``timings`` (s).
        """
        out: dict[str, Any] = {k: float(v) for k, v in self.terms.as_dict().items()}
        if qe is not None:
            out["qe"] = qe
        return out | {
            "number_of_atoms": self.number_of_atoms,
            "grid_shape": list(self.grid_shape),
            "temperature_k": self.temperature_k,
            "functional": self.functional,
            "method": self.method,
            "density_mape_percent": None,
            "source": source,
            "energy_per_atom": self.energy_per_atom,
            "timings": dict(self.timings),
        }


class Predictor:
    """Predicts the LDOS, density and total free energy of structures with one model.

    Args:
        bundle: a :class:`Bundle` or the path of a bundle file.
        device: torch device of the descriptors and the network, e.g. "cpu" or "cuda".
        chunk_points: grid points per chunk (memory grows with it); default the bundle's
            ``descriptors.chunk_points``.
        method: energy integration, see :func:`nearsight.physics.fermi.integration_weights`.
        progress: reports the first pass, see :data:`Progress`.
        comm: an mpi4py communicator to split the grid over; None (or one rank) runs
            serially. Every rank must call :meth:`predict` with the same arguments.
        scratch_dir: where the temporary LDOS memory map goes; default the system's
            temporary directory (``TMPDIR``). Put it on disk, not on a RAM-backed ``/tmp``,
            for grids whose LDOS does not fit in memory.
    """

    def __init__(
        self,
        bundle: Bundle | str | PathLike[str],
        *,
        device: str = "cpu",
        chunk_points: int | None = None,
        method: str = "analytic",
        progress: Progress | None = None,
        comm: Any = None,
        scratch_dir: str | PathLike[str] | None = None,
    ) -> None:
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
        self.device = device
        self.chunk_points = int(
            self.bundle.descriptors.chunk_points if chunk_points is None else chunk_points
        )
        if self.chunk_points < 1:
            raise InputError(
                f"chunk_points must be >= 1, got {self.chunk_points}",
                field="chunk_points",
                fix="give a positive number of grid points per chunk, e.g. 8192",
            )
        self.method = method
        self.progress = progress
        self.comm = comm if comm is not None and comm.Get_size() > 1 else None
        self.scratch_dir = scratch_dir
        # Parsed once: every prediction needs the same pseudopotentials.
        self._pseudos = {
            el: parse_upf(rec.text.encode(), Path(rec.filename))
            for el, rec in self.bundle.pseudopotentials.items()
        }

    def system(self, atoms: Atoms) -> EnergySystem:
        """The physics of ``atoms`` under this model: pseudopotentials, T, electrons, cutoff.

        Raises:
            InputError: an element the model does not know, a cell that is not periodic
                in 3 dimensions or has no positive volume.
        """
        _check_atoms(atoms)
        return EnergySystem.create(
            atoms,
            self._pseudos,
            self.bundle.temperature_k,
            number_of_electrons=self.bundle.number_of_electrons(atoms),
            ecutrho_ry=self.bundle.ecutrho_ry,
        )

    def descriptors(
        self, atoms: Atoms, *, grid_shape: tuple[int, int, int] | None = None
    ) -> np.ndarray:
        """Descriptors [nx, ny, nz, F] of the whole grid, serially (for caching them).

        The grid is the one :meth:`predict` uses; memory is that of the whole array
        (8 bytes × F a point in float64).
        """
        _check_atoms(atoms)
        shape = self._grid_shape(atoms, grid_shape)
        config = replace(
            self.bundle.descriptors, device=self.device, chunk_points=self.chunk_points
        )
        return compute_descriptors(atoms, shape, config, progress=self.progress)

    def predict(
        self,
        atoms: Atoms,
        *,
        grid_shape: tuple[int, int, int] | None = None,
        keep_ldos: bool = False,
        descriptors: np.ndarray | None = None,
    ) -> Prediction:
        """Predict the energy terms, density and DOS of ``atoms``.

        Args:
            atoms: periodic structure of the elements the model knows, Å.
            grid_shape: real-space grid; default the training spacing,
                :meth:`Bundle.grid_shape`.
            keep_ldos: return the LDOS [nx, ny, nz, E] (held in memory, float32) instead
                of streaming it through a temporary file.
            descriptors: precomputed descriptors of the grid, [nx, ny, nz, F] or [N, F]
                (e.g. from :meth:`descriptors`); skips computing them.

        Raises:
            InputError: an unknown element, a non-periodic or flat cell, a grid too coarse
                for the model's density cutoff, descriptors that do not fit the grid, an
                electron count the LDOS window cannot hold.
        """
        start = time.perf_counter()
        system = self.system(atoms)
        shape = self._grid_shape(atoms, grid_shape)
        # Fail before the expensive passes, not after them in the density terms.
        _check_cutoff(system, shape)
        grid = Grid(np.asarray(atoms.cell[:], dtype=float), shape)
        rows = None if descriptors is None else self._checked_descriptors(descriptors, grid)
        timings = {"descriptors": 0.0, "network": 0.0, "physics": 0.0}
        if rows is None and self.bundle.descriptors.backend == "lammps":
            # The LAMMPS backend computes whole grids only (spread over the ranks itself).
            t0 = time.perf_counter()
            rows = self._lammps_descriptors(atoms, shape).reshape(grid.size, -1)
            timings["descriptors"] += time.perf_counter() - t0

        size, rank = (1, 0) if self.comm is None else (self.comm.Get_size(), self.comm.Get_rank())
        share = split(grid.size, size, rank)
        n_mine = share.stop - share.start
        energy_grid = self.bundle.energy_grid
        if keep_ldos or n_mine == 0:  # a memory map cannot be empty
            store = np.empty((n_mine, energy_grid.n), dtype=np.float32)
            dos, density, band = self._passes(atoms, grid, share, rows, store, system, timings)
            ldos = self._gather_rows(store, grid.size) if keep_ldos else None
        else:
            with tempfile.TemporaryDirectory(prefix="nearsight-ldos-", dir=self.scratch_dir) as tmp:
                store = np.memmap(
                    Path(tmp) / "ldos.f32",
                    dtype=np.float32,
                    mode="w+",
                    shape=(n_mine, energy_grid.n),
                )
                dos, density, band = self._passes(atoms, grid, share, rows, store, system, timings)
                # The map must be closed before its directory goes (required on Windows).
                del store
            ldos = None

        t0 = time.perf_counter()
        if density is not None:
            density = density.reshape(shape)
        d = self._on_root(lambda: density_terms(density, system))
        terms = harris_foulkes(
            band.fermi_energy,
            band.number_of_electrons,
            band.band_energy,
            band.entropy_contribution,
            d,
        )
        timings["physics"] += time.perf_counter() - t0
        timings["total"] = time.perf_counter() - start
        return Prediction(
            terms=terms,
            density=density,
            dos=dos,
            energy_grid=energy_grid,
            grid_shape=shape,
            atoms=atoms.copy(),
            temperature_k=system.temperature_k,
            functional=system.functional,
            method=self.method,
            ldos=None if ldos is None else ldos.reshape(*shape, energy_grid.n),
            timings=timings,
        )

    def _passes(
        self,
        atoms: Atoms,
        grid: Grid,
        share: slice,
        rows: np.ndarray | None,
        store: np.ndarray,
        system: EnergySystem,
        timings: dict[str, float],
    ) -> tuple[np.ndarray, np.ndarray | None, BandObservables]:
        """Both passes over this rank's ``share`` of the points, LDOS rows parked in ``store``.

        Returns:
            The DOS [E] (states/eV), the density [N] (1/Å³, on rank 0 only) and the band
            observables (Fermi level, count, band energy, -TS).
        """
        params = bispectrum_params(self.bundle.descriptors)
        b = self.bundle
        partial = np.zeros(b.energy_grid.n)
        n_mine = share.stop - share.start
        if self.progress is not None:
            self.progress(0, n_mine)  # the total is known before the first, slowest, chunk
        for lo in range(share.start, share.stop, self.chunk_points):
            hi = min(lo + self.chunk_points, share.stop)
            t0 = time.perf_counter()
            if rows is None:
                chunk = bispectrum_module.bispectrum(
                    atoms,
                    grid.shape,
                    params,
                    dtype=b.descriptors.dtype,
                    device=self.device,
                    chunk_points=self.chunk_points,
                    points=slice(lo, hi),
                )
            else:
                chunk = rows[lo:hi]
            t1 = time.perf_counter()
            out = store[lo - share.start : hi - share.start]
            predict_ldos(
                b.network, b.input_scaler, b.output_scaler, chunk, device=self.device, out=out
            )
            # float64 accumulator: millions of float32 rows would otherwise lose digits.
            partial += np.sum(out, axis=0, dtype=np.float64)
            t2 = time.perf_counter()
            timings["descriptors"] += t1 - t0
            timings["network"] += t2 - t1
            if self.progress is not None:
                self.progress(hi - share.start, n_mine)

        t0 = time.perf_counter()
        partial *= grid.voxel_volume
        summed = partial if self.comm is None else self.comm.reduce(partial, root=0)
        kt, n_e = system.kt_ev, system.number_of_electrons
        # One rank finds the Fermi level, so that every rank weights with the same one.
        dos, band = self._on_root(
            lambda: (summed, band_observables(summed, b.energy_grid, n_e, kt, self.method))
        )
        weights = integration_weights(b.energy_grid, band.fermi_energy, kt, self.method).number
        density = np.empty(n_mine)
        for lo in range(0, n_mine, self.chunk_points):
            hi = min(lo + self.chunk_points, n_mine)
            density[lo:hi] = store[lo:hi].astype(np.float64) @ weights
        density = self._gather_rows(density, grid.size)
        timings["physics"] += time.perf_counter() - t0
        return dos, density, band

    def _gather_rows(self, mine: np.ndarray, n_points: int) -> np.ndarray | None:
        """This rank's rows of a per-point array gathered in order on rank 0 (None elsewhere)."""
        if self.comm is None:
            return mine
        from mpi4py import MPI

        comm = self.comm
        size, rank = comm.Get_size(), comm.Get_rank()
        width = int(np.prod(mine.shape[1:]))
        counts = [
            (s.stop - s.start) * width for s in (split(n_points, size, r) for r in range(size))
        ]
        out = np.empty((n_points, *mine.shape[1:]), dtype=mine.dtype) if rank == 0 else None
        kind = MPI.DOUBLE if mine.dtype == np.float64 else MPI.FLOAT
        comm.Gatherv(np.ascontiguousarray(mine), [out, counts, kind] if rank == 0 else None, root=0)
        return out

    def _on_root(self, compute: Callable[[], _T]) -> _T:
        """``compute()`` on rank 0, its result sent to every rank.

        A failure on rank 0 is raised on every rank, so that none waits forever for a
        result that will not come.
        """
        if self.comm is None:
            return compute()
        if self.comm.Get_rank() == 0:
            try:
                result = compute()
            except Exception as err:
                self.comm.bcast((None, f"{type(err).__name__}: {err}"), root=0)
                raise
            self.comm.bcast((result, None), root=0)
            return result
        result, message = self.comm.bcast(None, root=0)
        if message is not None:
            raise NearsightError(f"rank 0 failed: {message}")
        return result

    def _grid_shape(
        self, atoms: Atoms, grid_shape: tuple[int, int, int] | None
    ) -> tuple[int, int, int]:
        if grid_shape is None:
            return self.bundle.grid_shape(atoms)
        shape = tuple(int(n) for n in grid_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise InputError(
                f"grid shape must be three positive integers, got {grid_shape}",
                field="grid_shape",
                fix="give (nx, ny, nz), or leave it out to keep the training spacing",
            )
        return shape

    def _checked_descriptors(self, descriptors: np.ndarray, grid: Grid) -> np.ndarray:
        features = self.bundle.n_features
        ok = descriptors.shape in ((*grid.shape, features), (grid.size, features))
        if not ok:
            raise InputError(
                f"descriptors have shape {tuple(descriptors.shape)}, the grid {grid.shape} "
                f"with {features} features needs {(*grid.shape, features)}",
                field="descriptors",
                fix="compute them with Predictor.descriptors on the same grid, or leave them out",
            )
        return descriptors.reshape(grid.size, features)

    def _lammps_descriptors(self, atoms: Atoms, shape: tuple[int, int, int]) -> np.ndarray:
        config = replace(self.bundle.descriptors, device=self.device)
        return compute_descriptors(atoms, shape, config, comm=self.comm)


def _check_atoms(atoms: Atoms) -> None:
    """The model's physics is periodic: a molecule or a slab would be silently mis-modelled."""
    if not np.all(atoms.pbc):
        raise InputError(
            f"structure is not periodic along every cell vector (pbc = {atoms.pbc.tolist()})",
            field="pbc",
            fix="give a periodic cell (atoms.pbc = True); a molecule or surface needs a box "
            "with vacuum around it",
        )
    volume = float(np.linalg.det(np.asarray(atoms.cell[:], dtype=float)))
    if not volume > 0:
        raise InputError(
            f"cell volume must be positive, got {volume:.6g} Å³",
            field="cell",
            fix="give a right-handed cell with three non-zero lattice vectors",
        )
