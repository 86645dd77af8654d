"""Real-space grids of periodic cells and the energy grid of the LDOS.

A cell with lattice vectors ``a_i`` (rows of ``cell``, Å) carries a periodic grid of
``shape = (nx, ny, nz)`` points at ``r = Σ_i (n_i / N_i) a_i``, the convention of Quantum
ESPRESSO's FFT grid: ``N_i`` points per vector, the last one a voxel short of the next cell.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from nearsight.errors import InputError


@dataclass(frozen=True)
class EnergyGrid:
    """Energies ``e_min + de * arange(n)`` in eV."""

    e_min: float
    de: float
    n: int

    def __post_init__(self) -> None:
        if not (self.de > 0 and self.n > 0 and np.isfinite(self.e_min)):
            raise InputError(
                f"invalid energy grid e_min={self.e_min}, de={self.de}, n={self.n}",
                fix="use a finite e_min, de > 0 and n > 0",
            )

    @property
    def energies(self) -> np.ndarray:
        """The energies [n], eV."""
        return self.e_min + self.de * np.arange(self.n)

    @property
    def e_max(self) -> float:
        """The last energy, eV."""
        return self.e_min + self.de * (self.n - 1)

    @classmethod
    def from_energies(cls, energies: np.ndarray, atol: float = 1e-4) -> EnergyGrid:
        """The grid of uniformly spaced ``energies`` [n] (eV); ``atol`` bounds the misfit."""
        energies = np.asarray(energies, dtype=float)
        if energies.size < 2:
            raise InputError("need at least two energies to define an energy grid")
        de = (energies[-1] - energies[0]) / (energies.size - 1)
        grid = cls(float(energies[0]), float(de), int(energies.size))
        misfit = np.max(np.abs(grid.energies - energies))
        if misfit > atol:
            raise InputError(
                f"energies are not uniformly spaced (misfit {misfit:.2e} eV)",
                fix="give one LDOS file per energy of a uniform grid",
            )
        return grid


@dataclass(frozen=True)
class Grid:
    """A periodic real-space grid of ``shape`` points over ``cell`` (rows are vectors, Å)."""

    cell: np.ndarray
    shape: tuple[int, int, int]

    def __post_init__(self) -> None:
        cell = np.asarray(self.cell, dtype=float)
        if cell.shape != (3, 3):
            raise InputError(f"cell must be 3x3, got shape {cell.shape}")
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise InputError(f"grid shape must be three positive integers, got {self.shape}")
        if not np.linalg.det(cell) > 0:
            raise InputError(
                f"cell volume must be positive, got {np.linalg.det(cell):.6g} Å³",
                fix="give a right-handed cell with non-zero volume",
            )
        object.__setattr__(self, "cell", cell)
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))

    @property
    def volume(self) -> float:
        """Cell volume, Å³."""
        return float(np.linalg.det(self.cell))

    @property
    def voxel_volume(self) -> float:
        """Volume per grid point, Å³."""
        return self.volume / self.size

    @property
    def size(self) -> int:
        """Number of grid points."""
        return int(np.prod(self.shape))

    @property
    def spacing(self) -> np.ndarray:
        """Distance between neighbouring points along each cell vector [3], Å."""
        return np.linalg.norm(self.cell, axis=1) / np.asarray(self.shape)

    def points(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Cartesian coordinates [m, 3] (Å) of flat (C-order) points ``start:stop``."""
        stop = self.size if stop is None else stop
        idx = np.arange(start, stop)
        ijk = np.stack(np.unravel_index(idx, self.shape), axis=1)
        # einsum, not BLAS: OpenBLAS's threads keep spinning after a call and take cores
        # from the torch kernels that run next (descriptors).
        return np.einsum("pi,ij->pj", ijk / np.asarray(self.shape), self.cell)

    def chunks(self, chunk_size: int) -> Iterator[tuple[int, int]]:
        """Flat index ranges ``(start, stop)`` of at most ``chunk_size`` points."""
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        for start in range(0, self.size, chunk_size):
            yield start, min(start + chunk_size, self.size)
