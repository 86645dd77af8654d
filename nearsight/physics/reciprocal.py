"""Reciprocal-space grids of periodic cells in numpy's real-FFT layout.

A real field on a ``(nx, ny, nz)`` grid has Fourier coefficients
``f(G) = rfftn(f)[m] / N`` for ``G = m_x b_x + m_y b_y + m_z b_z`` with integer
frequencies ``m`` in numpy's order and ``b_i`` the rows of ``2π (cell⁻¹)ᵀ`` (1/Å). The real
FFT keeps ``nz // 2 + 1`` planes of the last axis; :attr:`ReciprocalGrid.multiplicity` counts
each kept coefficient once or twice so that sums over the half grid equal sums over all G.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from nearsight.grid import Grid
from nearsight.units import BOHR_ANGSTROM


@dataclass(frozen=True, eq=False)
class ReciprocalGrid:
    """The G vectors of the real FFT of a :class:`~nearsight.grid.Grid`."""

    grid: Grid

    @classmethod
    def of(cls, cell: np.ndarray, shape: tuple[int, int, int]) -> ReciprocalGrid:
        """The reciprocal grid of ``shape`` points over ``cell`` (rows are vectors, Å)."""
        return cls(Grid(np.asarray(cell, dtype=float), tuple(shape)))

    @property
    def shape(self) -> tuple[int, int, int]:
        """Real-space grid shape."""
        return self.grid.shape

    @property
    def half_shape(self) -> tuple[int, int, int]:
        """Shape of the real-FFT coefficients, ``(nx, ny, nz // 2 + 1)``."""
        nx, ny, nz = self.shape
        return nx, ny, nz // 2 + 1

    @cached_property
    def reciprocal_vectors(self) -> np.ndarray:
        """Rows ``b_i`` with ``a_i · b_j = 2π δ_ij``, [3, 3] in 1/Å."""
        return 2.0 * np.pi * np.linalg.inv(self.grid.cell).T

    def frequencies(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Integer frequencies per axis, shaped to broadcast over the half grid."""
        nx, ny, nz = self.shape
        mx = np.fft.fftfreq(nx, 1.0 / nx).reshape(-1, 1, 1)
        my = np.fft.fftfreq(ny, 1.0 / ny).reshape(1, -1, 1)
        mz = np.fft.rfftfreq(nz, 1.0 / nz).reshape(1, 1, -1)
        return mx, my, mz

    def component(self, axis: int) -> np.ndarray:
        """Cartesian component ``axis`` of G on the half grid, [nx, ny, nz//2+1] in 1/Å."""
        b = self.reciprocal_vectors
        mx, my, mz = self.frequencies()
        return mx * b[0, axis] + my * b[1, axis] + mz * b[2, axis]

    @cached_property
    def g2(self) -> np.ndarray:
        """|G|² on the half grid, [nx, ny, nz//2+1] in 1/Å²."""
        metric = self.reciprocal_vectors @ self.reciprocal_vectors.T
        m = self.frequencies()
        g2 = np.zeros(self.half_shape)
        for i in range(3):
            for j in range(i, 3):
                factor = metric[i, j] * (1.0 if i == j else 2.0)
                g2 += factor * (m[i] * m[j])
        g2.setflags(write=False)
        return g2

    @cached_property
    def multiplicity(self) -> np.ndarray:
        """How often each half-grid coefficient occurs in the full grid, [1, 1, nz//2+1]."""
        nz = self.shape[2]
        weights = np.full(nz // 2 + 1, 2.0)
        weights[0] = 1.0
        if nz % 2 == 0:
            weights[-1] = 1.0
        weights.setflags(write=False)
        return weights.reshape(1, 1, -1)

    @cached_property
    def nyquist(self) -> np.ndarray:
        """True where any frequency is the unpaired Nyquist one of an even axis."""
        mask = np.zeros(self.half_shape, dtype=bool)
        for axis, n in enumerate(self.shape):
            if n % 2 == 0:
                index = [slice(None)] * 3
                index[axis] = n // 2
                mask[tuple(index)] = True
        mask.setflags(write=False)
        return mask

    def within(self, ecut_ry: float | None) -> np.ndarray:
        """Mask of G with ħ²G²/2m ≤ ``ecut_ry`` (QE's ``ecutrho`` sphere); all G for None.

        QE measures kinetic cutoffs in Ry with G in 1/Bohr, so the sphere is
        G² ≤ ecut_ry / Bohr² (tolerance as QE's ``eps8``).
        """
        if ecut_ry is None:
            return np.ones(self.half_shape, dtype=bool)
        g2_max = ecut_ry / BOHR_ANGSTROM**2
        return self.g2 <= g2_max * (1.0 + 1e-8)
