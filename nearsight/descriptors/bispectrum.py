"""Bispectrum (SNAP) descriptors on a grid, exactly as LAMMPS ``compute sna/grid``.

Every grid point plays SNAP's central atom. An atom of element e at displacement
``d = point − atom`` with ``1e-20 < |d|² < rc_e²``, ``rc_e = 2 · rcutfac · R_e`` (LAMMPS uses
the neighbour's radius twice: a grid point has none), maps to a point of the 3-sphere with
Cayley-Klein parameters ``a = (z0 − i d_z)/r0``, ``b = (d_y − i d_x)/r0``,
``z0 = r / tan θ0``, ``θ0 = rfac0 π (r − rmin0)/(rc_e − rmin0)``, ``r0² = r² + z0²``. With
the Wigner matrices U_j(a, b) from VMK's recursion, the density expansion is::

    U_j = 1 + Σ_atoms w_e f_c(r) U_j(a, b)          (the identity: the centre itself)

(``f_c`` the cosine switching function or 1), and with Clebsch-Gordan coefficients C::

    Z_{j1 j2 j}(ma, mb) = Σ_{ma1, mb1} C(j1 ma1, j2 ma2 | j ma) C(j1 mb1, j2 mb2 | j mb)
                                     · U_j1(ma1, mb1) U_j2(ma2, mb2)
    B(j1, j2, j) = Σ_{ma, mb} Re[conj(U_j(ma, mb)) Z_{j1 j2 j}(ma, mb)]  (− (j + 1) with bzeroflag)

for ``j ≥ j1 ≥ j2`` in LAMMPS's order (all j in doubled units, 0 ≤ ma, mb ≤ j).

How it is computed, per batch of grid points (torch, CPU or CUDA, float64 or float32):

- U: the recursion over j for every point-atom pair at once, rows ``mb ≤ j/2`` only (the
  others follow from ``U(j−ma, j−mb) = (−1)^(ma−mb) conj U(ma, mb)``), summed over the
  atoms of each point.
- B: the sum above is a fixed sparse trilinear form in the entries of U. Its terms are
  listed once per twojmax with their coefficients: each B needs only the half
  ``mb ≤ j/2`` of (ma, mb), counted twice (as LAMMPS does), and when two of (j1, j2, j)
  are equal the odd one is made the output, so that Z's two inputs are the same matrix and
  its terms pair up, using ``B(j1, j2, j)/(j + 1)`` being symmetric in (j1, j2, j). For
  twojmax 10 that leaves 40k terms per point, against LAMMPS's 150k (which builds every Z).
  The terms are evaluated as gathers over the points of a batch, which ``torch.compile``
  fuses into one loop per group of outputs, vectorised over the points (this needs a C++
  compiler on CPU, Triton on CUDA, and compiles for 15-30 s the first time per twojmax and
  dtype; the result is cached on disk). Without compilation the same code runs eagerly,
  7 to 20 times slower (twojmax 6 to 10).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np
import torch
from ase import Atoms

from nearsight.descriptors.neighbors import CellList
from nearsight.descriptors.params import BispectrumParams
from nearsight.errors import InputError
from nearsight.grid import Grid

DEFAULT_CHUNK_POINTS = 8192
"""Grid points whose neighbour lists are built at once (a few MB per 1000 points)."""

_BATCH = {"cpu": 128, "cuda": 1024}
"""Points per kernel call: on CPU the U table of a batch (n_u × 128 × 16 bytes, 1 MB for
twojmax 10) stays in cache; on a GPU a batch must fill the device."""

_PAIR_BLOCK = 8
"""Neighbours per U-kernel call; each point's neighbour list is padded to a multiple."""

_BUCKET_CAPS = tuple(sorted({round(1.25**k) for k in range(29)}))
"""Term counts at which outputs of Z are grouped (1, 2, ..., 414, 517), a group padded to
its longest: 8% padding for twojmax 10, in 16 groups."""


# --------------------------------------------------------------------------- tables


def clebsch_gordan(j1: int, m1: int, j2: int, m2: int, j: int) -> float:
    """⟨j1/2 m1/2, j2/2 m2/2 | j/2 (m1+m2)/2⟩ (Condon-Shortley), all arguments doubled.

    Racah's formula in exact rational arithmetic, so the float is correctly rounded up to
    the one square root.
    """
    m = m1 + m2
    if (
        abs(m1) > j1
        or abs(m2) > j2
        or abs(m) > j
        or (j1 + m1) % 2
        or (j2 + m2) % 2
        or (j1 + j2 + j) % 2
        or not abs(j1 - j2) <= j <= j1 + j2
    ):
        return 0.0
    f = math.factorial
    a, b, c = (j1 + j2 - j) // 2, (j1 - j2 + j) // 2, (-j1 + j2 + j) // 2
    square = Fraction(
        (j + 1)
        * f(a)
        * f(b)
        * f(c)
        * f((j1 + m1) // 2)
        * f((j1 - m1) // 2)
        * f((j2 + m2) // 2)
        * f((j2 - m2) // 2)
        * f((j + m) // 2)
        * f((j - m) // 2),
        f((j1 + j2 + j) // 2 + 1),
    )
    total = Fraction(0)
    for k in range(a + 1):
        d = (
            (j1 - m1) // 2 - k,
            (j2 + m2) // 2 - k,
            (j - j2 + m1) // 2 + k,
            (j - j1 - m2) // 2 + k,
        )
        if min(d) < 0:
            continue
        total += Fraction((-1) ** k, f(k) * f(a - k) * math.prod(f(n) for n in d))
    return float(np.sign(float(total))) * math.sqrt(float(total * total * square))


@dataclass(frozen=True)
class _Group:
    """Outputs of Z with at most ``x.shape[0]`` terms each, padded with zero terms.

    Output o is ``w[o] · Re[conj(U[z[o]]) Σ_l c[l, o] U[x[l, o]] U[y[l, o]]]``, added to
    feature ``feature[o]``; indices are into the flat U table.
    """

    x: np.ndarray
    y: np.ndarray
    c: np.ndarray
    z: np.ndarray
    w: np.ndarray
    feature: np.ndarray


@dataclass(frozen=True)
class _Tables:
    """The terms of B for one twojmax.

    Attributes:
        offsets: start of each U_j in the flat U table, and its length last.
        groups: the outputs of Z, grouped by their number of terms.
        feature_j: j of each feature (its bzero is j + 1).
    """

    offsets: tuple[int, ...]
    groups: tuple[_Group, ...]
    feature_j: np.ndarray

    @property
    def n_u(self) -> int:
        """Entries of the flat U table: Σ_j (j + 1)²."""
        return self.offsets[-1]


@lru_cache(maxsize=16)
def _tables(twojmax: int) -> _Tables:
    offsets = [0]
    for j in range(twojmax + 1):
        offsets.append(offsets[-1] + (j + 1) ** 2)

    def index(j: int, ma: int, mb: int) -> int:
        # LAMMPS's layout: row mb, column ma
        return offsets[j] + (j + 1) * mb + ma

    cg = lru_cache(maxsize=None)(clebsch_gordan)
    outputs = []  # (feature, z, w, {(x, y): c})
    triples = BispectrumParams(twojmax=twojmax, rcutfac=1.0).triples()
    for feature, (j1, j2, j) in enumerate(triples):
        # Z_{ja jb → jc} with ja = jb when two of j ≥ j1 ≥ j2 are equal; B(j1, j2, j) is
        # (j + 1)/(jc + 1) times the contraction of that Z with U_jc.
        ja, jb, jc = (j, j1, j2) if (j == j1 and j1 != j2) else (j1, j2, j)
        scale = (j + 1) / (jc + 1)
        shift = (ja + jb - jc) // 2
        for mb in range(jc // 2 + 1):
            for ma in range(jc + 1):
                if 2 * mb == jc and ma > mb:
                    continue  # the other half of the middle row mirrors this one
                weight = 1.0 if (2 * mb == jc and ma == mb) else 2.0
                terms: dict[tuple[int, int], float] = {}
                for ma1 in range(ja + 1):
                    ma2 = ma + shift - ma1
                    if not 0 <= ma2 <= jb:
                        continue
                    ca = cg(ja, 2 * ma1 - ja, jb, 2 * ma2 - jb, jc)
                    for mb1 in range(ja + 1):
                        mb2 = mb + shift - mb1
                        if not 0 <= mb2 <= jb or ca == 0.0:
                            continue
                        coef = ca * cg(ja, 2 * mb1 - ja, jb, 2 * mb2 - jb, jc)
                        if coef == 0.0:
                            continue
                        x, y = index(ja, ma1, mb1), index(jb, ma2, mb2)
                        key = (min(x, y), max(x, y)) if ja == jb else (x, y)
                        terms[key] = terms.get(key, 0.0) + coef
                outputs.append((feature, index(jc, ma, mb), weight * scale, terms))

    caps = np.asarray(_BUCKET_CAPS)
    by_cap: dict[int, list] = {}
    for out in outputs:
        n = len(out[3])
        cap = int(caps[np.searchsorted(caps, n)]) if n <= caps[-1] else n
        by_cap.setdefault(cap, []).append(out)
    groups = []
    for cap in sorted(by_cap):
        members = by_cap[cap]
        length = max(len(m[3]) for m in members)
        x = np.zeros((length, len(members)), dtype=np.int64)
        y = np.zeros_like(x)
        c = np.zeros((length, len(members)))
        for o, (_, _, _, terms) in enumerate(members):
            for t, ((xi, yi), ci) in enumerate(terms.items()):
                x[t, o], y[t, o], c[t, o] = xi, yi, ci
        groups.append(
            _Group(
                x=x,
                y=y,
                c=c,
                z=np.array([m[1] for m in members]),
                w=np.array([m[2] for m in members]),
                feature=np.array([m[0] for m in members]),
            )
        )
    return _Tables(
        offsets=tuple(offsets),
        groups=tuple(groups),
        feature_j=np.array([t[2] for t in triples]),
    )


@dataclass(frozen=True)
class _Level:
    """VMK's recursion from U_{j−1} to the rows of U_j that are kept.

    The state of level j is rows ``0 ≤ mb ≤ (j+1)//2`` of U_j, flat (row mb, column ma),
    followed by one zero entry. Entry e of the first ``len(ia)`` rows (``mb ≤ j//2``) is
    ``coef_a[e] a* U_{j−1}[ia[e]] − coef_b[e] b* U_{j−1}[ib[e]]``; for odd j the row
    (j+1)/2, needed by level j+1, is the mirror ``sign · conj(U_j[mirror])``.
    """

    ia: np.ndarray
    ib: np.ndarray
    coef_a: np.ndarray
    coef_b: np.ndarray
    mirror: np.ndarray
    sign: np.ndarray


def _levels(twojmax: int) -> tuple[_Level, ...]:
    levels = []
    for j in range(1, twojmax + 1):
        kept_prev = j // 2  # rows kept of level j−1: (j−1+1)//2
        zero_prev = (kept_prev + 1) * j  # the zero entry after them
        mb, ma = np.divmod(np.arange((j // 2 + 1) * (j + 1)), j + 1)
        # U_j(ma, mb) = √((j−ma)/(j−mb)) a* U_{j−1}(ma, mb) − √(ma/(j−mb)) b* U_{j−1}(ma−1, mb)
        ia = np.where(ma < j, mb * j + ma, zero_prev)
        ib = np.where(ma > 0, mb * j + ma - 1, zero_prev)
        coef_a = np.sqrt((j - ma) / (j - mb))
        coef_b = np.sqrt(ma / (j - mb))
        if j % 2:
            # row (j+1)/2 from row (j−1)/2: U(j−ma, j−mb) = (−1)^(ma−mb) conj U(ma, mb)
            row = (j + 1) // 2
            col = np.arange(j + 1)
            mirror = (j - row) * (j + 1) + (j - col)
            sign = np.where((row - col) % 2 == 0, 1.0, -1.0)
        else:
            mirror, sign = np.zeros(0, dtype=np.int64), np.zeros(0)
        levels.append(_Level(ia, ib, coef_a, coef_b, mirror, sign))
    return tuple(levels)


def _unfold(twojmax: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per U entry: its source in the rows mb ≤ j/2 of all levels stacked, and the signs
    of the real and imaginary parts, ``U(ma, mb) = (−1)^(ma−mb) conj U(j−ma, j−mb)``."""
    src, sign_r, sign_i = [], [], []
    half = 0
    for j in range(twojmax + 1):
        for mb in range(j + 1):
            for ma in range(j + 1):
                if 2 * mb <= j:
                    src.append(half + mb * (j + 1) + ma)
                    sign_r.append(1.0)
                    sign_i.append(1.0)
                else:
                    src.append(half + (j - mb) * (j + 1) + (j - ma))
                    sign_r.append(1.0 if (ma - mb) % 2 == 0 else -1.0)
                    sign_i.append(-sign_r[-1])
        half += (j // 2 + 1) * (j + 1)
    return np.array(src), np.array(sign_r), np.array(sign_i)


@dataclass(frozen=True)
class _DeviceTables:
    """The tables as tensors on one device and in one dtype.

    Attributes:
        levels: per level j ≥ 1 of :class:`_Level`: ia, ib, coef_a, coef_b, mirror, sign.
        unfold: :func:`_unfold`'s src, sign_r, sign_i.
        groups: per :class:`_Group`: x, y, c, z, w.
        feature: the feature of every output of the groups, in order.
        n_u: entries of the flat U table.
    """

    levels: tuple[tuple[torch.Tensor, ...], ...]
    unfold: tuple[torch.Tensor, ...]
    groups: tuple[tuple[torch.Tensor, ...], ...]
    feature: torch.Tensor
    n_u: int


@lru_cache(maxsize=16)
def _device_tables(twojmax: int, dtype: torch.dtype, device: str) -> _DeviceTables:
    tables = _tables(twojmax)

    def tensor(a: np.ndarray) -> torch.Tensor:
        kind = torch.int64 if a.dtype.kind == "i" else dtype
        return torch.as_tensor(a, dtype=kind, device=device)

    levels = tuple(
        (
            tensor(lv.ia),
            tensor(lv.ib),
            tensor(lv.coef_a)[:, None],
            tensor(lv.coef_b)[:, None],
            tensor(lv.mirror),
            tensor(lv.sign)[:, None],
        )
        for lv in _levels(twojmax)
    )
    src, sign_r, sign_i = _unfold(twojmax)
    groups = tuple(
        (tensor(g.x), tensor(g.y), tensor(g.c)[..., None], tensor(g.z), tensor(g.w)[:, None])
        for g in tables.groups
    )
    return _DeviceTables(
        levels=levels,
        unfold=(tensor(src), tensor(sign_r)[:, None], tensor(sign_i)[:, None]),
        groups=groups,
        feature=tensor(np.concatenate([g.feature for g in tables.groups])),
        n_u=tables.n_u,
    )


# --------------------------------------------------------------------------- kernels


def _cayley_klein(
    delta: torch.Tensor,
    rcut: torch.Tensor,
    weight: torch.Tensor,
    rfac0: float,
    rmin0: float,
    switch: bool,
) -> torch.Tensor:
    """Per pair: a, b (real and imaginary parts) and ``w f_c(r)``, [5, n].

    Args:
        delta: point minus atom [n, 3], Å.
        rcut: cutoff of each pair [n], Å.
        weight: element weight of each pair [n].
    """
    dx, dy, dz = delta.unbind(1)
    r = torch.sqrt(dx * dx + dy * dy + dz * dz)
    theta0 = (r - rmin0) * rfac0 * math.pi / (rcut - rmin0)
    z0 = r / torch.tan(theta0)
    r0inv = 1.0 / torch.sqrt(r * r + z0 * z0)
    sfac = weight
    if switch:
        cosine = 0.5 * (torch.cos((r - rmin0) * (math.pi / (rcut - rmin0))) + 1.0)
        sfac = torch.where(r <= rmin0, 1.0, torch.where(r > rcut, 0.0, cosine)) * weight
    return torch.stack((r0inv * z0, -r0inv * dz, r0inv * dy, -r0inv * dx, sfac))


def _u_sum(
    pair: torch.Tensor,
    acc_r: torch.Tensor,
    acc_i: torch.Tensor,
    levels: tuple[tuple[torch.Tensor, ...], ...],
    unfold: tuple[torch.Tensor, ...],
) -> tuple[torch.Tensor, torch.Tensor]:
    """``acc`` plus the sum over K neighbours of w f_c U_j.

    Args:
        pair: :func:`_cayley_klein` of K neighbours of each of P points [5, K, P], zero
            for padding.
        acc_r, acc_i: the flat U table so far [n_u, P] (rows mb, columns ma).
        levels, unfold: :attr:`_DeviceTables.levels` and :attr:`_DeviceTables.unfold`.

    Returns:
        Real and imaginary parts of the new flat U table [n_u, P].
    """
    _, k, p = pair.shape
    a_r, a_i, b_r, b_i, sfac = pair.reshape(5, -1).unbind(0)
    # state [entries, K·P]: the kept rows of U_{j−1} and a zero entry
    one = torch.ones_like(sfac)[None]
    zero = torch.zeros_like(one)
    u_r, u_i = torch.cat((one, zero)), torch.cat((zero, zero))
    tot_r = [sfac.reshape(k, p).sum(0)[None]]  # U_0 = 1
    tot_i = [torch.zeros_like(tot_r[0])]
    for ia, ib, coef_a, coef_b, mirror, sign in levels:
        pa_r, pa_i, pb_r, pb_i = u_r[ia], u_i[ia], u_r[ib], u_i[ib]
        new_r = coef_a * (a_r * pa_r + a_i * pa_i) - coef_b * (b_r * pb_r + b_i * pb_i)
        new_i = coef_a * (a_r * pa_i - a_i * pa_r) - coef_b * (b_r * pb_i - b_i * pb_r)
        # summed over the neighbours level by level, so only two levels are ever held
        tot_r.append((new_r * sfac).reshape(-1, k, p).sum(1))
        tot_i.append((new_i * sfac).reshape(-1, k, p).sum(1))
        u_r = torch.cat((new_r, sign * new_r[mirror], zero))
        u_i = torch.cat((new_i, -sign * new_i[mirror], zero))
    src, sign_r, sign_i = unfold
    return acc_r + sign_r * torch.cat(tot_r)[src], acc_i + sign_i * torch.cat(tot_i)[src]


def _z_outputs(
    u_r: torch.Tensor, u_i: torch.Tensor, groups: tuple[tuple[torch.Tensor, ...], ...]
) -> torch.Tensor:
    """Every output of every group (:class:`_Group`), [n_outputs, P], from the flat U table
    [n_u, P] (real and imaginary parts); B is their sum per feature."""
    out = []
    for x, y, c, z, w in groups:
        xr, xi, yr, yi = u_r[x], u_i[x], u_r[y], u_i[y]
        z_r = (c * (xr * yr - xi * yi)).sum(0)
        z_i = (c * (xr * yi + xi * yr)).sum(0)
        out.append(w * (u_r[z] * z_r + u_i[z] * z_i))
    return torch.cat(out)


# --------------------------------------------------------------------------- driver


class _Kernels:
    """The two kernels, compiled with ``torch.compile`` unless that is off or fails."""

    def __init__(self, compile: bool) -> None:
        self._compiled = compile
        self.u_sum = torch.compile(_u_sum, dynamic=False) if compile else _u_sum
        self.z_outputs = torch.compile(_z_outputs, dynamic=False) if compile else _z_outputs

    def __call__(self, name: str, *args):
        try:
            return getattr(self, name)(*args)
        except Exception as err:
            if not self._compiled:
                raise
            # Compilation is only an optimisation: a machine without a C++ compiler (or
            # Triton) gets the same numbers from the eager kernels, slower.
            warnings.warn(
                f"torch.compile failed ({type(err).__name__}: {err}); running eagerly",
                RuntimeWarning,
                stacklevel=3,
            )
            self._compiled = False
            self.u_sum, self.z_outputs = _u_sum, _z_outputs
            return getattr(self, name)(*args)


def _torch_dtype(dtype: torch.dtype | str) -> torch.dtype:
    named = {"float64": torch.float64, "float32": torch.float32}
    resolved = named.get(dtype) if isinstance(dtype, str) else dtype
    if resolved not in (torch.float64, torch.float32):
        raise InputError(
            f"dtype must be float64 or float32, got {dtype!r}",
            field="dtype",
            fix='use dtype = "float64" (LAMMPS parity) or "float32" (faster, ~1e-6 relative)',
        )
    return resolved


def _point_range(points: slice | None, n_points: int) -> range:
    if points is None:
        return range(n_points)
    if points.step not in (None, 1):
        raise InputError(f"points must be a contiguous slice, got {points}", field="points")
    return range(*points.indices(n_points))


def _pack(
    pair: torch.Tensor, point: np.ndarray, n: int, batch: int
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Pairs [5, n_pairs] (sorted by point) padded to [batches, blocks, 5, K, P] with zeros.

    The n points are ordered by their number of neighbours, so that the points of a batch
    need about as many blocks of K = :data:`_PAIR_BLOCK` neighbours each; the point at
    position i of that order is column ``i % batch`` of batch ``i // batch``, and its
    neighbours fill rows ``0, 1, ...`` of the blocks, so each kernel call gets a contiguous
    slab. Also returns the blocks used by each batch and the order of the points.
    """
    n_batches = -(-n // batch)
    counts = np.bincount(point, minlength=n)
    order = np.argsort(counts, kind="stable")
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    slot = np.arange(len(point)) - (np.cumsum(counts) - counts)[point]
    padded = np.zeros(n_batches * batch, dtype=np.int64)
    padded[:n] = counts[order]
    used = -(-padded.reshape(n_batches, batch).max(1) // _PAIR_BLOCK)
    packed = pair.new_zeros((n_batches, max(1, int(used.max())), 5, _PAIR_BLOCK, batch))
    at = position[point]
    index = tuple(
        torch.as_tensor(i, device=pair.device)
        for i in (at // batch, slot // _PAIR_BLOCK, slot % _PAIR_BLOCK, at % batch)
    )
    packed.permute(0, 1, 3, 4, 2)[index] = pair.T
    return packed, used, order


def bispectrum(
    atoms: Atoms,
    shape: tuple[int, int, int],
    params: BispectrumParams,
    *,
    dtype: torch.dtype | str = torch.float64,
    device: str | torch.device = "cpu",
    chunk_points: int | None = None,
    points: slice | None = None,
    progress: Callable[[int, int], None] | None = None,
    compile: bool = True,
) -> np.ndarray:
    """Bispectrum components of ``atoms`` at the points of a periodic grid, as LAMMPS.

    Args:
        atoms: periodic structure (Å); ``atoms.pbc`` is not consulted, atoms may lie
            outside the cell.
        shape: grid points (nx, ny, nz) along the cell vectors; point (i, j, k) sits at
            fractional coordinates (i/nx, j/ny, k/nz), as in :class:`nearsight.grid.Grid`.
        params: SNAP parameters; every element of ``atoms`` must be in ``params.elements``.
        dtype: float64 (matches LAMMPS to ~1e-14 relative) or float32 (~1e-6 relative).
        device: torch device of the computation, e.g. "cpu" or "cuda".
        chunk_points: grid points whose neighbour lists are built at once (memory is
            roughly proportional); default :data:`DEFAULT_CHUNK_POINTS`.
        points: a contiguous range of flat grid indices (C order, x slowest) to compute
            instead of the whole grid, e.g. one MPI rank's share.
        progress: called with (points done, points to do) after each chunk.
        compile: fuse the kernels with ``torch.compile`` (falls back to eager, with a
            warning, where that fails); False runs them eagerly: the same numbers to
            rounding, 7 to 20 times slower, but no compilation (15-30 s when the on-disk
            cache is cold).

    Returns:
        B [nx, ny, nz, F] in LAMMPS's feature order (:meth:`BispectrumParams.triples`), or
        [n, F] for the n points of ``points``; float64, or float32 with float32 ``dtype``.
    """
    torch_dtype = _torch_dtype(dtype)
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(
            "device cuda requested but torch sees no GPU", field="device", fix='use device="cpu"'
        )
    grid = Grid(np.asarray(atoms.cell[:], dtype=float), tuple(shape))
    for element in set(atoms.get_chemical_symbols()):
        params.radius(element)  # InputError for an element without parameters
    species = np.array(
        [params.elements.index(s) for s in atoms.get_chemical_symbols()], dtype=np.int64
    )
    cutoffs = np.array([2.0 * r * params.rcutfac for r in params.radii])
    cells = CellList(grid.cell, atoms.positions, species, cutoffs)
    weights = np.asarray(params.weights, dtype=float)
    todo = _point_range(points, grid.size)
    chunk = DEFAULT_CHUNK_POINTS if chunk_points is None else int(chunk_points)
    if chunk < 1:
        raise InputError(f"chunk_points must be >= 1, got {chunk}", field="chunk_points")

    tables = _tables(params.twojmax)
    dev_tables = _device_tables(params.twojmax, torch_dtype, str(device))
    kernels = _Kernels(compile)
    batch = _BATCH["cuda" if device.type == "cuda" else "cpu"]
    # the centre itself: the identity in every U_j (LAMMPS's wself = 1)
    centre_r = torch.zeros((dev_tables.n_u, batch), dtype=torch_dtype, device=device)
    centre_r[
        [tables.offsets[j] + (j + 2) * m for j in range(params.twojmax + 1) for m in range(j + 1)]
    ] = 1.0
    centre_i = torch.zeros_like(centre_r)
    start = torch.as_tensor(  # B starts at −bzero
        -(tables.feature_j + 1.0) if params.bzeroflag else np.zeros(len(tables.feature_j)),
        dtype=torch_dtype,
        device=device,
    )[:, None].expand(-1, batch)

    out = np.empty(
        (len(todo), params.n_features),
        dtype=np.float32 if torch_dtype == torch.float32 else np.float64,
    )
    # dynamo compiles a kernel once per (twojmax, dtype, device) and by default gives up,
    # quietly, after 8 variants: a scan over parameters must not fall back to eager.
    budget = torch._dynamo.config.patch(recompile_limit=64) if compile else nullcontext()
    with budget:
        for lo in range(todo.start, todo.stop, chunk):
            hi = min(lo + chunk, todo.stop)
            pairs = cells.pairs(grid.points(lo, hi))
            # in float64 whatever the dtype: cheap per pair, and tan(θ0) near π loses digits
            pair = _cayley_klein(
                torch.as_tensor(pairs.delta, device=device),
                torch.as_tensor(cutoffs[pairs.species], device=device),
                torch.as_tensor(weights[pairs.species], device=device),
                params.rfac0,
                params.rmin0,
                params.switchflag,
            ).to(torch_dtype)
            packed, used_blocks, order = _pack(pair, pairs.point, hi - lo, batch)
            result = []
            for ib in range(len(packed)):
                u_r, u_i = centre_r, centre_i
                for kb in range(int(used_blocks[ib])):
                    u_r, u_i = kernels(
                        "u_sum", packed[ib, kb], u_r, u_i, dev_tables.levels, dev_tables.unfold
                    )
                outputs = kernels("z_outputs", u_r, u_i, dev_tables.groups)
                # the sum per feature stays out of the compiled kernel: inductor's index_add
                # with several threads fails to compile (torch 2.13)
                result.append(start.index_add(0, dev_tables.feature, outputs))
            out[lo - todo.start + order] = torch.cat(result, 1).T[: hi - lo].cpu().numpy()
            if progress is not None:
                progress(hi - todo.start, len(todo))
    return out if points is not None else out.reshape(*grid.shape, params.n_features)
