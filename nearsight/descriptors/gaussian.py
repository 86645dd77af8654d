"""Gaussian atomic-density descriptors on a grid, as LAMMPS ``compute gaussian/grid/local``.

At a grid point ``r`` the descriptor has one column per element e (LAMMPS type order)::

    G_e(r) = Σ_{atoms j of element e, |r − r_j| < rc_e} (2π σ_e²)^(-3/2) exp(−|r − r_j|² / (2 σ_e²))

with ``rc_e = 2 · rcutfac · R_e``: LAMMPS uses the neighbour's radius twice because a grid
point has no radius of its own. Each Gaussian is normalized to one over all space, so with
``rc_e ≫ σ_e`` and a grid spacing below σ_e the integral of column e over the cell is the
number of atoms of element e (the columns sum to the number of atoms): G is an atomic
number density in 1/Å³.

The cell is periodic along all three vectors (``atoms.pbc`` is not consulted), atoms may lie
outside it, and grid points sit at fractional coordinates ``(i/nx, j/ny, k/nz)`` as in
:class:`nearsight.grid.Grid`. Work and memory scale linearly with the grid and the number of
atoms: the grid is cut into blocks of at most ``chunk_points`` points, the periodic images
of the atoms are binned in cells half a cutoff thick, and each block sees only the atoms of
the cells within the cutoff of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from nearsight.errors import InputError
from nearsight.grid import Grid

DEFAULT_CHUNK_POINTS = 4096
"""Grid points per block: small enough for the cache, large enough to amortize Python."""

_PAIR_BUDGET = 1 << 16
"""Point-atom pairs evaluated at once: the temporaries (9 bytes a pair) stay in cache."""


@dataclass(frozen=True)
class GaussianParams:
    """Parameters of ``compute gaussian/grid/local``, in its argument order; lengths in Å.

    Attributes:
        rcutfac: scale of the cutoff radii (Å per unit of radius); element e is cut off at
            ``2 · rcutfac · radii[e]``.
        sigmas: Gaussian width σ per element, in the order of ``elements`` (Å).
        elements: element symbols in LAMMPS type order (type 1 first); one column each.
        radii: per element, in the order of ``elements``.
    """

    rcutfac: float
    sigmas: tuple[float, ...]
    elements: tuple[str, ...] = ("Al",)
    radii: tuple[float, ...] = (0.5,)

    def __post_init__(self) -> None:
        if not self.rcutfac > 0:
            raise InputError(f"rcutfac must be > 0, got {self.rcutfac}", field="rcutfac")
        if not (len(self.elements) == len(self.radii) == len(self.sigmas) >= 1):
            raise InputError(
                "elements, radii and sigmas must have one entry per element",
                field="elements",
                fix="give e.g. elements = ['Al'], radii = [0.5], sigmas = [0.3]",
            )
        if len(set(self.elements)) != len(self.elements):
            raise InputError(f"elements repeat: {list(self.elements)}", field="elements")
        if any(not r > 0 for r in self.radii):
            raise InputError(f"radii must be > 0, got {self.radii}", field="radii")
        if any(not s > 0 for s in self.sigmas):
            raise InputError(f"sigmas must be > 0, got {self.sigmas}", field="sigmas")

    @property
    def n_features(self) -> int:
        """Columns per grid point: one per element."""
        return len(self.elements)

    def cutoffs(self) -> tuple[float, ...]:
        """Cutoff radius per element, ``2 · rcutfac · R_e`` (Å)."""
        return tuple(2.0 * self.rcutfac * r for r in self.radii)

    def species(self, atoms: Atoms) -> np.ndarray:
        """Column index of each atom's element [nat] int; InputError for unknown elements."""
        symbols = atoms.get_chemical_symbols()
        missing = sorted(set(symbols) - set(self.elements))
        if missing:
            raise InputError(
                f"no Gaussian radius and sigma for {', '.join(missing)}",
                field="elements",
                fix=f"add {missing[0]} to elements, radii and sigmas (have {list(self.elements)})",
            )
        return np.array([self.elements.index(s) for s in symbols], dtype=np.int64)


def gaussian_descriptor(
    atoms: Atoms,
    shape: tuple[int, int, int],
    params: GaussianParams,
    *,
    chunk_points: int | None = None,
) -> np.ndarray:
    """Gaussian atomic densities on the grid, [nx, ny, nz, n_elements] float64, 1/Å³.

    Args:
        atoms: the structure; its cell (rows, Å) is taken as periodic along all vectors.
        shape: grid points (nx, ny, nz) along the cell vectors.
        params: widths, radii and cutoff scale per element.
        chunk_points: at most this many grid points per block (default 4096); memory
            is bounded by it and by the atoms within the cutoff of one block.

    Raises:
        InputError: a degenerate cell, a bad grid shape or chunk size, or an element
            without parameters.
    """
    grid = Grid(np.asarray(atoms.cell[:], dtype=float), shape)
    chunk = DEFAULT_CHUNK_POINTS if chunk_points is None else int(chunk_points)
    if chunk < 1:
        raise InputError(f"chunk_points must be >= 1, got {chunk_points}", field="chunk_points")
    species = params.species(atoms)
    # Fractional coordinates wrapped into [0, 1): images are then generated from the cell.
    frac = np.linalg.solve(grid.cell.T, np.asarray(atoms.positions, dtype=float).T).T
    frac -= np.floor(frac)
    out = np.zeros((*grid.shape, params.n_features))
    block = _block_shape(grid, chunk)
    for e, (sigma, cutoff) in enumerate(zip(params.sigmas, params.cutoffs(), strict=True)):
        of_element = frac[species == e]
        if len(of_element):
            _accumulate(out[..., e], grid, block, of_element, sigma, cutoff)
    return out


def _heights(cell: np.ndarray) -> np.ndarray:
    """Distances between opposite faces of the cell [3] (Å): V / |a_j × a_k|."""
    volume = abs(np.linalg.det(cell))
    areas = np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    return volume / areas


def _block_shape(grid: Grid, chunk: int) -> tuple[int, int, int]:
    """Grid points per block along each axis: about as thick along every axis, ≤ chunk."""
    n = np.asarray(grid.shape)
    step = _heights(grid.cell) / n  # distance between grid planes along each axis
    edge = (chunk * np.prod(step)) ** (1 / 3)
    b = np.clip(np.floor(edge / step), 1, n).astype(int)
    while np.prod(b) > chunk:
        b[np.argmax(b * step)] -= 1
    return int(b[0]), int(b[1]), int(b[2])


def _accumulate(
    out: np.ndarray,
    grid: Grid,
    block: tuple[int, int, int],
    frac: np.ndarray,
    sigma: float,
    cutoff: float,
) -> None:
    """Add the Gaussians of atoms at ``frac`` [k, 3] (wrapped) to ``out`` [nx, ny, nz]."""
    n = np.asarray(grid.shape)
    b = np.asarray(block)
    # A grid point and an atom within the cutoff differ by at most cutoff / height in each
    # fractional coordinate; the margin keeps rounding from dropping an atom at the cutoff,
    # whose exact fate the Cartesian test below decides.
    pad = cutoff / _heights(grid.cell) + 1e-9
    images = _periodic_images(frac, pad)
    # Bins half a cutoff thick, counted from the padded edge: a block visits little more
    # than the atoms within the cutoff of it, whatever its own size.
    width = np.minimum(pad / 2, 1.0)
    dims = np.floor((1 + 2 * pad) / width).astype(np.int64) + 1
    bins = np.clip(np.floor((images + pad) / width).astype(np.int64), 0, dims - 1)
    keys = np.ravel_multi_index(bins.T, dims)
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    positions = images[order] @ grid.cell
    starts = np.searchsorted(keys, np.arange(np.prod(dims) + 1))

    prefactor = (2.0 * math.pi * sigma**2) ** -1.5
    inv_two_sigma_sq = 1.0 / (2.0 * sigma**2)
    cutoff_sq = cutoff**2
    n_blocks = -(-n // b)  # ceil(n / b)
    for corner in np.ndindex(*n_blocks):
        lo = np.asarray(corner) * b
        hi = np.minimum(lo + b, n)
        ijk = np.stack(
            np.meshgrid(*(np.arange(lo[a], hi[a]) for a in range(3)), indexing="ij"), axis=-1
        ).reshape(-1, 3)
        points = (ijk / n) @ grid.cell
        # Bins of atoms with fractional coordinates from lo/n − pad to (hi − 1)/n + pad.
        first = np.maximum(np.floor(lo / n / width).astype(np.int64), 0)
        last = np.minimum(np.floor(((hi - 1) / n + 2 * pad) / width).astype(np.int64), dims - 1)
        # Along the last axis the bins of one (x, y) row are consecutive keys: one slice.
        rows = (
            (i * dims[1] + j) * dims[2]
            for i in range(first[0], last[0] + 1)
            for j in range(first[1], last[1] + 1)
        )
        near = np.concatenate(
            [positions[starts[row + first[2]] : starts[row + last[2] + 1]] for row in rows]
        )
        if not len(near):
            continue
        # Coordinates relative to the block keep |p|² + |a|² − 2 p·a free of cancellation
        # beyond ~1e-15 of (block + cutoff)², and the product runs in BLAS.
        origin = points[0]
        points = points - origin
        near = near - origin
        points_sq = np.einsum("pd,pd->p", points, points)[:, None]
        values = np.zeros(len(points))
        per_batch = max(1, _PAIR_BUDGET // len(points))
        for start in range(0, len(near), per_batch):
            batch = near[start : start + per_batch]
            rsq = points @ (-2.0 * batch.T)
            rsq += points_sq
            rsq += np.einsum("ad,ad->a", batch, batch)
            inside = rsq < cutoff_sq
            rsq *= -inv_two_sigma_sq
            np.exp(rsq, out=rsq)
            rsq *= inside
            values += rsq.sum(axis=1)
        out[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] += (prefactor * values).reshape(hi - lo)


def _periodic_images(frac: np.ndarray, pad: np.ndarray) -> np.ndarray:
    """Images ``frac + n`` (n integer) [m, 3] with every coordinate in [−pad, 1 + pad).

    Built one axis at a time, so memory follows the images kept, not those tried.
    """
    images = frac
    for axis in range(3):
        reach = int(math.ceil(pad[axis]))
        shifted = []
        for shift in range(-reach, reach + 1):
            moved = images.copy()
            moved[:, axis] += shift
            keep = (moved[:, axis] >= -pad[axis]) & (moved[:, axis] < 1.0 + pad[axis])
            shifted.append(moved[keep])
        images = np.concatenate(shifted)
    return images
