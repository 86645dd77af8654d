"""Mini-batches of scaled (descriptor, LDOS) rows, shuffled across snapshots.

Two ways to hold the data, one order of visits:

- in memory: every training row is read and scaled once; an epoch is a permutation of all
  rows of all snapshots;
- lazy: rows stay on disk; an epoch permutes blocks of whole x-planes (the HDF5 chunk) of
  all snapshots, reads ``buffer_blocks`` of them at a time (so a buffer mixes snapshots),
  permutes the rows of the buffer and carries the rows that do not fill a batch over to the
  next buffer. Memory is bounded by the buffer, not the dataset.

Either way an epoch visits every row exactly once (no padding, no zero or repeated rows),
and the order depends only on ``(seed, epoch)``, so a resumed run replays the same batches.

Under data-parallel training every rank walks the same global batches and takes its own
contiguous slice of each; with the loss normalised by the global batch size, the averaged
gradient equals the single-process gradient of the same batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from nearsight.data.scaling import Scaler
from nearsight.data.sources import PointSource
from nearsight.errors import InputError

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Batch:
    """This rank's rows of one global batch.

    Attributes:
        inputs: scaled descriptors [n, F].
        targets: scaled LDOS [n, E].
        global_size: rows of the global batch over all ranks (normalises the loss).
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    global_size: int


def check_compatible(sources: Sequence[PointSource]) -> None:
    """All sources must share the descriptor count and the energy grid.

    Raises:
        InputError: naming the first file that differs.
    """
    first = sources[0]
    for src in sources[1:]:
        if src.n_features != first.n_features:
            raise InputError(
                f"{src.n_features} descriptor features, but {first.path.name} has "
                f"{first.n_features}",
                path=src.path,
                field="descriptors",
                fix="compute every snapshot's descriptors with the same parameters",
            )
        if src.energy_grid != first.energy_grid:
            raise InputError(
                f"LDOS energy grid {src.energy_grid} differs from {first.path.name}'s "
                f"{first.energy_grid}",
                path=src.path,
                field="ldos",
                fix="use snapshots computed with the same [ldos] settings",
            )


def fit_scalers(
    sources: Sequence[PointSource],
    inputs: Scaler,
    outputs: Scaler,
    *,
    block_points: int = 65536,
    progress: Progress | None = None,
) -> tuple[Scaler, Scaler]:
    """Fit both scalers on all rows of ``sources``, block by block (float64 statistics)."""
    total = sum(src.n_points for src in sources)
    done = 0
    for src in sources:
        for start in range(0, src.n_points, block_points):
            stop = min(start + block_points, src.n_points)
            inputs.partial_fit(src.features(start, stop))
            outputs.partial_fit(src.targets(start, stop))
            done += stop - start
            if progress is not None:
                progress(done, total)
    return inputs, outputs


def scaled_rows(
    source: PointSource,
    start: int,
    stop: int,
    input_scaler: Scaler,
    output_scaler: Scaler,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled descriptors [n, F] and LDOS [n, E] of flat points ``start:stop`` as tensors."""
    x = input_scaler.transform(source.features(start, stop))
    y = output_scaler.transform(source.targets(start, stop))
    return torch.as_tensor(np.asarray(x), dtype=dtype), torch.as_tensor(np.asarray(y), dtype=dtype)


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The random stream of one epoch: a function of the seed and the epoch only."""
    return np.random.default_rng([int(seed), int(epoch)])


class PointLoader:
    """Mini-batches over the rows of ``sources``; see the module docstring.

    Args:
        sources: training snapshots (compatible: same features and energy grid).
        input_scaler, output_scaler: fitted scalers.
        batch_size: rows per global batch.
        shuffle: permute rows across snapshots each epoch (else file order).
        lazy: read blocks from disk each epoch instead of holding all rows.
        seed: with the epoch number, fixes the order.
        block_points: rows per lazily read block (rounded up to whole x-planes).
        buffer_blocks: blocks mixed in one shuffle buffer.
        rank, world_size: this process's slice of each global batch.
        dtype: tensor dtype of the batches.
    """

    def __init__(
        self,
        sources: Sequence[PointSource],
        input_scaler: Scaler,
        output_scaler: Scaler,
        *,
        batch_size: int,
        shuffle: bool = True,
        lazy: bool = False,
        seed: int = 0,
        block_points: int = 4096,
        buffer_blocks: int = 16,
        rank: int = 0,
        world_size: int = 1,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if not sources:
            raise InputError("no training snapshots", field="data.train", fix="list some")
        check_compatible(sources)
        self.sources = list(sources)
        self.input_scaler, self.output_scaler = input_scaler, output_scaler
        self.batch_size = int(batch_size)
        self.shuffle, self.lazy, self.seed = shuffle, lazy, int(seed)
        self.buffer_blocks = max(1, int(buffer_blocks))
        self.rank, self.world_size = int(rank), int(world_size)
        self.dtype = dtype
        self.blocks = _blocks(self.sources, int(block_points))
        self._inputs: torch.Tensor | None = None
        self._targets: torch.Tensor | None = None
        if not lazy:
            x, y = zip(*(self._read(b) for b in self.blocks), strict=True)
            self._inputs, self._targets = torch.cat(x), torch.cat(y)

    @property
    def n_points(self) -> int:
        """Training rows per epoch (all ranks together)."""
        return sum(src.n_points for src in self.sources)

    def __len__(self) -> int:
        """Global batches per epoch."""
        return -(-self.n_points // self.batch_size)

    def _read(self, block: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        i, start, stop = block
        return scaled_rows(
            self.sources[i], start, stop, self.input_scaler, self.output_scaler, self.dtype
        )

    def epoch(self, epoch: int) -> Iterator[Batch]:
        """The batches of epoch ``epoch`` (0-based), this rank's slice of each."""
        rng = epoch_rng(self.seed, epoch)
        if self._inputs is not None:
            order = rng.permutation(self.n_points) if self.shuffle else np.arange(self.n_points)
            for start in range(0, self.n_points, self.batch_size):
                rows = torch.from_numpy(order[start : start + self.batch_size])
                yield self._slice(self._inputs[rows], self._targets[rows])
            return
        yield from self._lazy_epoch(rng)

    def _lazy_epoch(self, rng: np.random.Generator) -> Iterator[Batch]:
        order = rng.permutation(len(self.blocks)) if self.shuffle else range(len(self.blocks))
        order = list(order)
        carry_x: torch.Tensor | None = None
        carry_y: torch.Tensor | None = None
        for g in range(0, len(order), self.buffer_blocks):
            parts = [self._read(self.blocks[b]) for b in order[g : g + self.buffer_blocks]]
            xs = [p[0] for p in parts]
            ys = [p[1] for p in parts]
            if carry_x is not None:
                xs.insert(0, carry_x)
                ys.insert(0, carry_y)
            x, y = torch.cat(xs), torch.cat(ys)
            if self.shuffle:
                perm = torch.from_numpy(rng.permutation(x.shape[0]))
                x, y = x[perm], y[perm]
            full = (x.shape[0] // self.batch_size) * self.batch_size
            for start in range(0, full, self.batch_size):
                stop = start + self.batch_size
                yield self._slice(x[start:stop], y[start:stop])
            carry_x, carry_y = x[full:], y[full:]
        if carry_x is not None and carry_x.shape[0]:
            yield self._slice(carry_x, carry_y)

    def _slice(self, x: torch.Tensor, y: torch.Tensor) -> Batch:
        n = x.shape[0]
        lo = self.rank * n // self.world_size
        hi = (self.rank + 1) * n // self.world_size
        return Batch(x[lo:hi], y[lo:hi], n)


def _blocks(sources: Sequence[PointSource], block_points: int) -> list[tuple[int, int, int]]:
    """(source, start, stop) blocks of whole x-planes covering every source."""
    out = []
    for i, src in enumerate(sources):
        plane = src.grid_shape[1] * src.grid_shape[2]
        size = max(1, -(-block_points // plane)) * plane
        out.extend((i, s, min(s + size, src.n_points)) for s in range(0, src.n_points, size))
    return out
