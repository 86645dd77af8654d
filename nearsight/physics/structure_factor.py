"""Structure factors ``S(G) = Σ_α w_α exp(-i G·R_α)`` of point sets on a reciprocal grid.

The sign is that of numpy's forward FFT of ``Σ_α w_α δ(r - R_α)``, and the result has the
real-FFT layout of :class:`~nearsight.physics.reciprocal.ReciprocalGrid`: the coefficient
at index ``[i, j, k]`` belongs to ``G = m_x b_x + m_y b_y + m_z b_z`` with the integer
frequencies ``rgrid.frequencies()``.

:func:`structure_factor_direct` sums the plane waves: O(N_atoms × N_G), which is O(N²)
because the grid grows with the cell. It is the reference.

:func:`structure_factor` scales linearly (MALA's linear-scaling total energy, Eq. 19-21):
it spreads a normalised Gaussian over a real-space grid around every atom, Fourier
transforms the grid and divides by the Gaussian's transform. Three choices make this exact
to ~1e-12 × Σ|w_α| at every G of the target grid, for any cell shape:

* The Gaussian is separable in fractional coordinates ``u = r · cell⁻¹``, with standard
  deviation ``τ`` fine-grid spacings along every cell vector (``τ |a_i| / M_i`` Å along
  ``a_i`` for a fine grid of ``M_i`` points). In Cartesian space it is an ordinary 3D
  Gaussian, isotropic for a cubic cell with equal grid sizes and sheared with the cell
  otherwise; its transform at ``G = Σ m_i b_i`` is ``Π_i exp(-2π² τ² m_i² / M_i²)``.
  Because that factorises over the three frequency indices, the aliasing and truncation
  analysis below holds axis by axis, whatever the grid spacings, the angles between cell
  vectors or the distances between lattice planes, and each atom's window of grid points
  is an outer product of three 1D arrays.
* Aliasing: a grid of ``M`` points sees the coefficient at ``m`` plus the ones at
  ``m + kM``. Spreading on a grid ``p = 2`` times finer than the target (``M = 2N``), the
  worst relative alias, at ``|m| = N/2``, is ``exp(-2π² τ² (1 - 1/p))`` per axis.
  ``τ`` is the smallest width that makes it ``_TOLERANCE``.
* Truncation: each Gaussian is cut at ``_RADIUS`` fine spacings. Dividing by the
  transform amplifies errors by at most ``exp(3 π² τ² / (2 p²))`` (≈ 3e4, at the corner
  ``|m_i| = N_i/2`` of the target grid), so the cut-off mass ``3 erfc(R / τ√2)`` is held
  below ``_TOLERANCE`` divided by that gain.

The fine grid is never formed. Its points ``k = p n + r`` split into ``p³`` sub-grids of
the target's size, one per residue ``r``; the fine transform at a target frequency ``m`` is
``Σ_r exp(-2πi m·r/M) FFT_r[m]`` ("interlacing"), so memory stays at a few target grids and
the work is ``p³`` target-size FFTs plus a fixed number of grid points per atom.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import scipy.fft
from scipy.special import erfcinv

from nearsight.errors import InputError
from nearsight.physics.reciprocal import ReciprocalGrid

__all__ = ["structure_factor", "structure_factor_direct"]

_OVERSAMPLING = 2
"""Fine grid points per target grid point along each axis."""
_TOLERANCE = 1e-12
"""Bound on each error source (aliasing, truncation), relative to Σ|w_α|."""
_WIDTH = math.sqrt(math.log(1.0 / _TOLERANCE) / (2.0 * math.pi**2 * (1.0 - 1.0 / _OVERSAMPLING)))
"""Gaussian standard deviation τ in fine-grid spacings (≈ 1.67)."""
_GAIN = math.exp(3.0 * math.pi**2 * _WIDTH**2 / (2.0 * _OVERSAMPLING**2))
"""Largest 1/ĝ(G) on the target grid, at its corner."""
_RADIUS = _WIDTH * math.sqrt(2.0) * float(erfcinv(_TOLERANCE / (3.0 * _GAIN)))
"""Cut-off of each Gaussian in fine-grid spacings (≈ 14.3)."""
_WINDOW = math.floor(2.0 * _RADIUS / _OVERSAMPLING) + 1
"""Sub-grid points per axis that can lie within ``_RADIUS`` of an atom."""
_CHUNK_POINTS = 1 << 22
"""Grid points (atoms × window) handled at once, bounding temporary memory to ~100 MB."""


def structure_factor_direct(
    positions: np.ndarray, rgrid: ReciprocalGrid, weights: np.ndarray | None = None
) -> np.ndarray:
    """``S(G) = Σ_α w_α exp(-i G·R_α)`` by summing plane waves: the O(N_atoms × N_G) reference.

    Args:
        positions: Cartesian positions [N, 3] in Å; any lattice image of an atom will do.
        rgrid: the G vectors.
        weights: real weight of each atom [N]; ones when None.

    Returns:
        S on the half grid, [nx, ny, nz//2+1] complex128 (dimensionless, in the units of
        ``weights``).
    """
    u = _fractional(positions, rgrid)
    w = _weights(weights, len(u))
    nx, ny, nzh = rgrid.half_shape
    mx, my, mz = (m.ravel() for m in rgrid.frequencies())
    s = np.zeros((nx * ny, nzh), dtype=complex)
    # exp(-i G·R) factorises over the three frequency indices: an [atoms, nx·ny] table times
    # an [atoms, nz//2+1] table is one matrix product per chunk of atoms.
    chunk = max(1, _CHUNK_POINTS // (nx * ny))
    for start in range(0, len(u), chunk):
        uc, wc = u[start : start + chunk], w[start : start + chunk]
        ex = np.exp(-2j * np.pi * uc[:, 0:1] * mx)
        ey = np.exp(-2j * np.pi * uc[:, 1:2] * my)
        ez = np.exp(-2j * np.pi * uc[:, 2:3] * mz)
        exy = (wc[:, None, None] * ex[:, :, None] * ey[:, None, :]).reshape(len(uc), nx * ny)
        s += exy.T @ ez
    return s.reshape(nx, ny, nzh)


def structure_factor(
    positions: np.ndarray, rgrid: ReciprocalGrid, weights: np.ndarray | None = None
) -> np.ndarray:
    """``S(G) = Σ_α w_α exp(-i G·R_α)`` in O(N_atoms + N_G log N_G) by Gaussian spreading.

    Agrees with :func:`structure_factor_direct` to ~1e-12 × Σ|w_α| at every G (see the
    module docstring). Work: ``8 × 15³`` grid points per atom and 8 real FFTs of
    ``rgrid.shape``; memory: about three complex arrays of the target half grid's size.

    Args:
        positions: Cartesian positions [N, 3] in Å; any lattice image of an atom will do.
        rgrid: the G vectors.
        weights: real weight of each atom [N]; ones when None.

    Returns:
        S on the half grid, [nx, ny, nz//2+1] complex128 (dimensionless, in the units of
        ``weights``).
    """
    u = _fractional(positions, rgrid)
    w = _weights(weights, len(u))
    shape = rgrid.shape
    fine = tuple(_OVERSAMPLING * n for n in shape)
    freqs = rgrid.frequencies()
    s = np.zeros(rgrid.half_shape, dtype=complex)
    for residue in itertools.product(range(_OVERSAMPLING), repeat=3):
        part = scipy.fft.rfftn(_spread(u, w, shape, residue))
        # The sub-grid of residue r sits r/M (fractional) off the target grid; the phase
        # moves its transform onto the fine grid's frequencies m (not m mod N). Factors are
        # applied one axis at a time so that no second grid-sized array is made.
        for m, r, big_m in zip(freqs, residue, fine, strict=True):
            if r:
                part *= np.exp(-2j * np.pi * m * (r / big_m))
        s += part
    for m, big_m in zip(freqs, fine, strict=True):
        s *= np.exp(2.0 * (np.pi * _WIDTH * m / big_m) ** 2)
    return s


def _spread(
    u: np.ndarray, w: np.ndarray, shape: tuple[int, int, int], residue: tuple[int, ...]
) -> np.ndarray:
    """Gaussians of weights ``w`` at fractional ``u`` sampled on the sub-grid ``residue``.

    Point ``n`` of the returned [nx, ny, nz] grid is fine point ``k = p n + residue``. The
    1D Gaussians are normalised to unit sum over the fine grid (spacing 1), so the grid's
    DFT at m is ``Σ_α w_α ĝ(m) exp(-2πi m·u_α)`` up to the aliasing and truncation above.
    """
    p = _OVERSAMPLING
    offsets = np.arange(_WINDOW)
    norm = 1.0 / (math.sqrt(2.0 * math.pi) * _WIDTH)
    grid = np.zeros(math.prod(shape))
    chunk = max(1, _CHUNK_POINTS // _WINDOW**3)
    for start in range(0, len(u), chunk):
        flat = np.zeros((min(chunk, len(u) - start), 1), dtype=np.int64)
        values = w[start : start + chunk, None]
        for axis, (n_axis, r) in enumerate(zip(shape, residue, strict=True)):
            t = u[start : start + chunk, axis] * (p * n_axis)
            first = np.ceil((t - _RADIUS - r) / p)
            n = first[:, None] + offsets
            g = norm * np.exp(-0.5 * ((p * n + r - t[:, None]) / _WIDTH) ** 2)
            # Window points past the cell edge are the Gaussians of the atom's periodic
            # images, folded back; on grids narrower than the window one point may take
            # several images, which the summed scatter below adds up.
            index = n.astype(np.int64) % n_axis
            flat = (flat[:, :, None] * n_axis + index[:, None, :]).reshape(len(t), -1)
            values = (values[:, :, None] * g[:, None, :]).reshape(len(t), -1)
        np.add.at(grid, flat.ravel(), values.ravel())
    return grid.reshape(shape)


def checked_positions(positions: np.ndarray) -> np.ndarray:
    """``positions`` as float64 [N, 3] (Å); InputError for another shape, NaN or inf."""
    positions = np.asarray(positions, dtype=float)
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise InputError(
            f"positions must have shape [N, 3], got {positions.shape}",
            field="positions",
            fix="give one Cartesian position (Å) per atom",
        )
    if not np.all(np.isfinite(positions)):
        raise InputError(
            "positions contain NaN or infinite values",
            field="positions",
            fix="give finite Cartesian positions in Å",
        )
    return positions


def _fractional(positions: np.ndarray, rgrid: ReciprocalGrid) -> np.ndarray:
    """Fractional coordinates [N, 3] of Cartesian ``positions`` (Å), wrapped into [0, 1]."""
    u = checked_positions(positions) @ np.linalg.inv(rgrid.grid.cell)
    return u - np.floor(u)


def _weights(weights: np.ndarray | None, n_atoms: int) -> np.ndarray:
    """The weights [n_atoms] as float64, ones when None."""
    if weights is None:
        return np.ones(n_atoms)
    w = np.asarray(weights)
    if w.shape != (n_atoms,) or np.iscomplexobj(w):
        raise InputError(
            f"weights must be {n_atoms} real numbers (one per atom), got shape {w.shape} "
            f"of {w.dtype}",
            field="weights",
            fix="give one real weight per position",
        )
    w = w.astype(float)
    if not np.all(np.isfinite(w)):
        raise InputError(
            "weights contain NaN or infinite values", field="weights", fix="give finite weights"
        )
    return w
