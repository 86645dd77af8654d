"""Cell lists: the atoms (periodic images included) within a cutoff of many points.

The atoms of a periodic cell are wrapped into it, and the periodic images that can lie
within ``cutoff`` of a point of the cell are added. All of them are binned in fractional
coordinates in bins at least ``cutoff`` thick between opposite faces, so that every atom
within ``cutoff`` of a point lies in the point's bin or one of its 26 neighbours, for any
cell shape. A batch of points then meets only the atoms of those bins: the work per point
is bounded by the density and the cutoff, never by the number of atoms, and memory by the
batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nearsight.errors import InputError

_PAIR_BUDGET = 1 << 18
"""Point-candidate pairs screened at once (about 20 bytes each in temporaries)."""


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for an inner dimension of 3, without BLAS: OpenBLAS's threads, spinning
    after a call, would take cores from the torch kernels that run next."""
    return np.einsum("ij,jk->ik", a, b)


@dataclass(frozen=True)
class Pairs:
    """Point-atom pairs within the cutoff, sorted by point.

    Attributes:
        point: index of the point in the batch [n_pairs].
        atom: index of the atom in the original structure [n_pairs].
        species: species of the atom [n_pairs].
        delta: point minus atom image [n_pairs, 3], Å.
    """

    point: np.ndarray
    atom: np.ndarray
    species: np.ndarray
    delta: np.ndarray


class CellList:
    """Binned periodic images of the atoms of a cell, for neighbour queries of points in it.

    Args:
        cell: lattice vectors as rows [3, 3], Å, with a positive determinant.
        positions: atom positions [n, 3], Å, anywhere (they are wrapped into the cell).
        species: integer species of each atom [n].
        cutoffs: cutoff radius of each species [n_species], Å: a pair counts when
            ``1e-20 < |point − atom|² < cutoffs[species]²`` (LAMMPS's test in ``sna/grid``,
            which leaves out an atom sitting exactly on the point).
    """

    def __init__(
        self,
        cell: np.ndarray,
        positions: np.ndarray,
        species: np.ndarray,
        cutoffs: np.ndarray,
    ) -> None:
        cell = np.asarray(cell, dtype=float)
        if cell.shape != (3, 3) or not np.linalg.det(cell) > 0:
            raise InputError(
                "cell must be three lattice vectors (rows) with a positive determinant",
                field="cell",
            )
        positions = np.asarray(positions, dtype=float).reshape(-1, 3)
        species = np.asarray(species, dtype=np.int64).reshape(-1)
        self._cutsq = np.asarray(cutoffs, dtype=float) ** 2
        cutoff = float(np.max(cutoffs))
        inverse = np.linalg.inv(cell)
        # Distance between opposite faces is 1/|column i of inv(cell)|: the fractional
        # padding below covers exactly the atoms within the cutoff of the cell.
        self._pad = cutoff * np.linalg.norm(inverse, axis=0)
        extent = 1.0 + 2.0 * self._pad
        self._nbins = np.maximum(1, np.floor(extent / self._pad).astype(np.int64))
        self._width = extent / self._nbins
        self._inverse = inverse

        frac = _matmul(positions, inverse)
        frac -= np.floor(frac)
        frac[frac >= 1.0] = 0.0  # floor can round x - floor(x) up to 1 for tiny negative x
        reach = np.ceil(self._pad).astype(np.int64)
        shifts = np.stack(
            np.meshgrid(*(np.arange(-n, n + 1) for n in reach), indexing="ij"), axis=-1
        ).reshape(-1, 3)
        image_frac = (frac[None, :, :] + shifts[:, None, :]).reshape(-1, 3)
        atom = np.tile(np.arange(len(positions)), len(shifts))
        keep = np.all((image_frac >= -self._pad) & (image_frac < 1.0 + self._pad), axis=1)
        image_frac, atom = image_frac[keep], atom[keep]

        bins = self._bin_index(image_frac)
        order = np.argsort(bins, kind="stable")
        self._atom = atom[order]
        self._species = species[self._atom]
        # Cartesian images from the wrapped fractional coordinates: pairs see the same
        # atom image whichever lattice vectors shifted the input positions.
        self._frac = image_frac[order]
        self._xyz = _matmul(self._frac, cell)
        n_bins = int(np.prod(self._nbins))
        self._start = np.searchsorted(bins[order], np.arange(n_bins + 1))

    def _bin_coords(self, frac: np.ndarray) -> np.ndarray:
        b = np.floor((frac + self._pad) / self._width).astype(np.int64)
        return np.clip(b, 0, self._nbins - 1)

    def _bin_index(self, frac: np.ndarray) -> np.ndarray:
        b = self._bin_coords(frac)
        return (b[:, 0] * self._nbins[1] + b[:, 1]) * self._nbins[2] + b[:, 2]

    def _candidates(self, frac: np.ndarray) -> np.ndarray:
        """Indices of the binned images in the bins of points ``frac`` [m, 3] (fractional)
        and their neighbours."""
        bins = self._bin_coords(frac)
        lo = np.maximum(bins.min(0) - 1, 0)
        hi = np.minimum(bins.max(0) + 1, self._nbins - 1)
        ranges = [np.arange(a, b + 1) for a, b in zip(lo, hi, strict=True)]
        near = np.stack(np.meshgrid(*ranges, indexing="ij"), axis=-1).reshape(-1, 3)
        flat = (near[:, 0] * self._nbins[1] + near[:, 1]) * self._nbins[2] + near[:, 2]
        return np.concatenate([np.arange(self._start[i], self._start[i + 1]) for i in flat])

    def pairs(self, points: np.ndarray) -> Pairs:
        """The atoms within the cutoff of each of ``points`` [m, 3] (Å, inside the cell)."""
        points = np.asarray(points, dtype=float).reshape(-1, 3)
        frac = _matmul(points, self._inverse)
        # Points are grouped by half bins: a group's candidates (its bin and the 26
        # neighbours) are cut down to the box its points reach, ~2x fewer to screen.
        half = np.floor((frac + self._pad) / (0.5 * self._width)).astype(np.int64)
        half = np.clip(half, 0, 2 * self._nbins - 1)
        flat = (half[:, 0] * 2 * self._nbins[1] + half[:, 1]) * 2 * self._nbins[2] + half[:, 2]
        order = np.argsort(flat, kind="stable")
        starts = np.flatnonzero(np.diff(flat[order], prepend=-1))
        found_point, found_image = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
        for lo, hi in zip(starts, np.append(starts[1:], len(order)), strict=True):
            members = order[lo:hi]
            reach = frac[members]
            cand = self._candidates(reach)
            inside = (self._frac[cand] >= reach.min(0) - self._pad) & (
                self._frac[cand] <= reach.max(0) + self._pad
            )
            cand = cand[np.all(inside, axis=1)]
            if len(cand) == 0:
                continue
            # Screen with |p − a|² = |p|² + |a|² − 2 p·a (a matrix product, no [points,
            # candidates, 3] temporary), about the candidates' centre so that rounding stays
            # ~1e-13 Å²; the pairs passing the screen are tested exactly below.
            centre = self._xyz[cand].mean(0)
            atoms = self._xyz[cand] - centre
            screen = self._cutsq[self._species[cand]] + 1e-8
            # slices of at most _PAIR_BUDGET point-candidate pairs keep temporaries small
            step = max(1, _PAIR_BUDGET // len(cand))
            for s in range(0, len(members), step):
                some = members[s : s + step]
                near = points[some] - centre
                rsq = (near * near).sum(1)[:, None] + (atoms * atoms).sum(1)
                rsq -= 2.0 * _matmul(near, atoms.T)
                p, c = np.nonzero(rsq < screen)
                found_point.append(some[p])
                found_image.append(cand[c])
        point = np.concatenate(found_point)
        image = np.concatenate(found_image)
        delta = points[point] - self._xyz[image]
        rsq = np.einsum("px,px->p", delta, delta)
        # LAMMPS's test, on the exact difference
        keep = (rsq < self._cutsq[self._species[image]]) & (rsq > 1e-20)
        point, image, delta = point[keep], image[keep], delta[keep]
        by_point = np.argsort(point, kind="stable")
        image = image[by_point]
        return Pairs(
            point=point[by_point],
            atom=self._atom[image],
            species=self._species[image],
            delta=delta[by_point],
        )
