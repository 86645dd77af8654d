"""The average cosine similarity distance (ACSD): choosing descriptors without training.

Paper 000 (Eq. 8-9). For two grid points t and s, the cosine similarity of two vectors is

    S_C(X_t, X_s) = X_t · X_s / (‖X_t‖ ‖X_s‖)                                      (8)

taken once between their descriptor vectors B and once between their LDOS vectors d. Over
N_sim sampled pairs i,

    ACSD = (1 / N_sim) Σ_i |S_C^i(d) − S_C^i(B)|                                    (9)

the mean distance of the cloud {S_C(B), S_C(d)} from the diagonal S_C(B) = S_C(d): 0 when
points that look alike to the descriptors have alike LDOS and vice versa; lower is better.

Sampling, as in the paper and MALA's ``ACSDAnalyzer``: ``n_points`` distinct grid points,
and for each of them ``n_points`` distinct partners drawn afresh, so N_sim = n_points²
(200 × 200 by default). A point may be drawn as its own partner (both similarities are 1,
a zero term), as in MALA. With ``n_points`` equal to the number of grid points the cloud is
every ordered pair, whatever the seed.

Departures from MALA, where the paper is followed instead: MALA's current code averages
``max(S_C(B) − S_C(d), 0)``, counting only descriptors that are more alike than the LDOS;
Eq. (9), like MALA's earlier code, counts both sides. MALA compares one-component vectors
by min/max; Eq. (8) is used for any length. Neither the paper nor MALA standardizes the
features, so neither does this module; the vectors are used as given (without the
coordinate columns MALA strips).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
from ase import Atoms

from nearsight.errors import InputError

DescriptorFn = Callable[[Atoms, tuple[int, int, int], int, float], np.ndarray]
"""``(atoms, shape, twojmax, rcut) -> [nx, ny, nz, F]`` descriptors on the LDOS grid."""

Progress = Callable[[int, int], None]
"""Called with (descriptor sets done, descriptor sets in all)."""


def acsd(descriptors: np.ndarray, ldos: np.ndarray, *, n_points: int = 200, seed: int = 0) -> float:
    """The ACSD of Eq. (9) between descriptors and LDOS of one snapshot (dimensionless).

    Args:
        descriptors: [nx, ny, nz, F] descriptor vectors of the grid points.
        ldos: [nx, ny, nz, ne] LDOS of the same points (any units; only directions count).
        n_points: grid points sampled, each paired with ``n_points`` random partners.
        seed: seed of the sampling; the same seed gives the same pairs and value.

    Returns:
        The mean of |S_C(d) − S_C(B)| over the n_points² pairs, in [0, 2].

    Raises:
        InputError: arrays that are not 4-D, grids that differ, NaN or inf, a zero vector
            at a sampled point, or ``n_points`` outside 1..number of grid points.
    """
    s_b, s_d = similarity_cloud(descriptors, ldos, n_points=n_points, seed=seed)
    return float(np.mean(np.abs(s_d - s_b)))


def similarity_cloud(
    descriptors: np.ndarray, ldos: np.ndarray, *, n_points: int = 200, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The paper's 2D cloud: (S_C(B), S_C(d)), each [n_points, n_points], of the same pairs.

    Row r holds the pairs of the r-th sampled point with its partners. Arguments and
    errors as in :func:`acsd`.
    """
    ldos = _checked(ldos, "ldos")
    descriptors = _checked_like(descriptors, ldos)
    rows, partners = _sample(int(np.prod(ldos.shape[:3])), n_points, seed)
    s_b = _similarities(descriptors, rows, partners, "descriptors")
    return s_b, _similarities(ldos, rows, partners, "ldos")


@dataclass(frozen=True)
class ACSDScan:
    """ACSD of descriptors over a grid of cutoffs and 2·J_max values.

    Attributes:
        rcuts: cutoff radii (Å), the rows of ``values``.
        twojmaxes: 2·J_max values, the columns of ``values``.
        values: ACSD [len(rcuts), len(twojmaxes)].
    """

    rcuts: tuple[float, ...]
    twojmaxes: tuple[int, ...]
    values: np.ndarray

    def __post_init__(self) -> None:
        if np.shape(self.values) != (len(self.rcuts), len(self.twojmaxes)):
            raise InputError(
                f"values must have shape {(len(self.rcuts), len(self.twojmaxes))}, "
                f"got {np.shape(self.values)}",
                field="values",
            )

    def best(self) -> tuple[float, int, float]:
        """(rcut, twojmax, ACSD) of the lowest ACSD; ties go to the earlier rcut, then twojmax."""
        i, j = np.unravel_index(int(np.argmin(self.values)), self.values.shape)
        return self.rcuts[i], self.twojmaxes[j], float(self.values[i, j])


def acsd_scan(
    snapshot_atoms: Atoms,
    ldos: np.ndarray,
    rcuts: Sequence[float],
    twojmaxes: Sequence[int],
    *,
    descriptor_fn: DescriptorFn,
    n_points: int = 200,
    seed: int = 0,
    progress: Progress | None = None,
) -> ACSDScan:
    """ACSD of ``descriptor_fn``'s descriptors for every (rcut, twojmax) on one snapshot.

    All entries use the same sampled pairs (the same ``seed``), so their differences come
    from the descriptors, not from the sampling; the LDOS side is computed once.

    Args:
        snapshot_atoms: the snapshot's structure (Å).
        ldos: its LDOS [nx, ny, nz, ne]; the descriptors are computed on this grid.
        rcuts: cutoff radii to try (Å).
        twojmaxes: 2·J_max values to try.
        descriptor_fn: ``(atoms, shape, twojmax, rcut) -> [nx, ny, nz, F]``.
        n_points, seed: sampling, as in :func:`acsd`.
        progress: called with (done, total) after each descriptor set.

    Raises:
        InputError: empty ``rcuts`` or ``twojmaxes``, bad LDOS, or descriptors that do not
            fit the grid (as in :func:`acsd`).
    """
    rcuts = tuple(float(r) for r in rcuts)
    twojmaxes = tuple(int(t) for t in twojmaxes)
    if not rcuts or not twojmaxes:
        raise InputError(
            "need at least one rcut and one twojmax to scan",
            field="rcuts" if not rcuts else "twojmaxes",
        )
    ldos = _checked(ldos, "ldos")
    shape = tuple(int(n) for n in ldos.shape[:3])
    rows, partners = _sample(int(np.prod(shape)), n_points, seed)
    s_d = _similarities(ldos, rows, partners, "ldos")
    values = np.empty((len(rcuts), len(twojmaxes)))
    for done, ((i, rcut), (j, twojmax)) in enumerate(
        itertools.product(enumerate(rcuts), enumerate(twojmaxes)), start=1
    ):
        descriptors = _checked_like(descriptor_fn(snapshot_atoms, shape, twojmax, rcut), ldos)
        s_b = _similarities(descriptors, rows, partners, "descriptors")
        values[i, j] = np.mean(np.abs(s_d - s_b))
        if progress is not None:
            progress(done, values.size)
    return ACSDScan(rcuts, twojmaxes, values)


def plot_acsd(scan: ACSDScan, path: str | PathLike[str]) -> Path:
    """Draw ``scan`` as a heatmap (rcut down, 2·J_max across, best entry boxed); PNG path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    path = Path(path)
    rows, cols = scan.values.shape
    fig = Figure(figsize=(1.2 + 0.9 * cols, 1.0 + 0.6 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(scan.values, cmap="viridis_r", aspect="auto")
    fig.colorbar(image, ax=ax, label="ACSD (lower is better)")
    ax.set_xticks(range(cols), [str(t) for t in scan.twojmaxes])
    ax.set_yticks(range(rows), [f"{r:g}" for r in scan.rcuts])
    ax.set_xlabel("twojmax (2·J_max)")
    ax.set_ylabel("rcut (Å)")
    for (i, j), value in np.ndenumerate(scan.values):
        # viridis_r is bright at low values: dark text there, light text elsewhere.
        color = "k" if image.norm(value) < 0.5 else "w"
        ax.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=8, color=color)
    rcut, twojmax, _ = scan.best()
    i, j = scan.rcuts.index(rcut), scan.twojmaxes.index(twojmax)
    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="r", linewidth=2))
    fig.savefig(path, dpi=120)
    return path


def _checked(array: np.ndarray, name: str) -> np.ndarray:
    """``array`` as a [nx, ny, nz, F] array, after checking its shape and values."""
    array = np.asarray(array)
    if array.ndim != 4 or min(array.shape) < 1:
        raise InputError(
            f"{name} must be a non-empty [nx, ny, nz, F] array, got shape {array.shape}",
            field=name,
        )
    # Slab by slab, so that checking a large LDOS costs no copy of it.
    for slab in array:
        if not np.isfinite(slab).all():
            raise InputError(
                f"{name} contains NaN or inf",
                field=name,
                fix="recompute it; ACSD needs finite vectors",
            )
    return array


def _checked_like(descriptors: np.ndarray, ldos: np.ndarray) -> np.ndarray:
    """The descriptors, checked to be on the grid of ``ldos`` [nx, ny, nz, ne]."""
    descriptors = _checked(descriptors, "descriptors")
    if descriptors.shape[:3] != ldos.shape[:3]:
        raise InputError(
            f"descriptors are on a {descriptors.shape[:3]} grid, the LDOS on {ldos.shape[:3]}",
            field="descriptors",
            fix="compute the descriptors on the LDOS grid (shape = ldos.shape[:3])",
        )
    return descriptors


def _sample(n_grid: int, n_points: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n_points`` distinct flat indices [n] and, for each, ``n_points`` distinct partners
    drawn afresh [n, n], as MALA samples (its generator is unseeded, so not its numbers)."""
    if isinstance(n_points, bool) or not isinstance(n_points, int | np.integer):
        raise InputError(f"n_points must be an integer, got {n_points!r}", field="n_points")
    if not 1 <= n_points <= n_grid:
        raise InputError(
            f"n_points = {n_points} is outside 1..{n_grid} (the grid points)",
            field="n_points",
            fix=f"use n_points <= {n_grid}",
        )
    rng = np.random.default_rng(seed)
    rows = rng.choice(n_grid, size=n_points, replace=False)
    partners = np.stack([rng.choice(n_grid, size=n_points, replace=False) for _ in rows])
    return rows, partners


def _similarities(
    array: np.ndarray, rows: np.ndarray, partners: np.ndarray, name: str
) -> np.ndarray:
    """Eq. (8) between each sampled point and its partners [n, n], in float64.

    One row at a time, so memory is [n, F] rather than [n, n, F].
    """
    flat = array.reshape(-1, array.shape[3])
    out = np.empty(partners.shape)
    for r, (row, its_partners) in enumerate(zip(rows, partners, strict=True)):
        vectors = flat[np.append(its_partners, row)].astype(np.float64)
        norms = np.linalg.norm(vectors, axis=1)
        if not norms.all():
            point = np.append(its_partners, row)[np.argmin(norms)]
            raise InputError(
                f"the {name} vector at grid point "
                f"{tuple(int(i) for i in np.unravel_index(point, array.shape[:3]))} is zero; "
                "its cosine similarity is undefined",
                field=name,
                fix="use descriptors that are nonzero everywhere (e.g. a larger cutoff)",
            )
        out[r] = (vectors[:-1] @ vectors[-1]) / (norms[:-1] * norms[-1])
    return out
