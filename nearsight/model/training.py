"""Fitting the network to snapshots: mean squared error on the scaled LDOS, checkpointed.

:func:`train` reads ``[data]``, ``[network]`` and ``[training]`` of a config and writes to
``{output_dir}``:

- ``checkpoint.pt`` after every epoch (atomically; tensors and plain containers only, so it
  loads with ``torch.load(..., weights_only=True)``): weights, optimizer, scheduler and
  early-stopping state (with the best weights so far), history, scalers and a fingerprint of
  everything that changes the result;
- ``history.json`` after every epoch: one record per epoch (see :class:`TrainResult`);
- the model bundle ``{training.model_file}`` at the end, from the best epoch's weights.

Running the same config again resumes from the checkpoint and gives bit for bit the weights
of an uninterrupted run: the batch order depends only on (seed, epoch) and every other piece
of state is in the checkpoint. A checkpoint of a different config (other data, network or
hyper-parameters) is refused unless ``restart=True``, which discards it. Settings that do not
change the numbers of an epoch (``max_epochs``, ``metrics_every``, ``threads``, ``device``,
``model_file``, ``output_dir``, ``data.test``, how descriptors are computed and the DFT
sections) are left out of the fingerprint, so a finished run can be extended with more
epochs (a larger ``max_epochs``) or moved to a GPU. A rerun of
a finished run trains nothing: it reports the run complete and writes the bundle again from
the checkpoint's best weights; the checkpoint is kept for that reason.

Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank takes its slice of each global batch and
``DistributedDataParallel`` averages the gradients; the loss of a rank is normalised by the
global batch size times the world size, so the average is exactly the gradient of the
global-batch mean. Only rank 0 writes files and logs.

One log line per epoch: losses (mean squared error of the scaled LDOS), the learning rate
of the epoch, its wall time, ``best`` on a new best validation loss and, on epochs where
they are computed, the validation snapshots' physical errors (mean absolute errors against
QE; one line, wrapped here)::

    epoch  12  train 3.112e-04  val 3.301e-04  lr 1.0e-03  0.84 s  best  | band 4.21 meV/atom
    total 5.13 meV/atom  E_F 12.00 meV  density 0.612%
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nearsight import __version__
from nearsight.config import Config, config_to_dict
from nearsight.data.loader import PointLoader, check_compatible, fit_scalers, scaled_rows
from nearsight.data.scaling import Scaler
from nearsight.data.sources import PointSource, expand_paths, open_source
from nearsight.errors import InputError
from nearsight.grid import EnergyGrid
from nearsight.io.atomic import atomic_path
from nearsight.io.dataset import PseudoRecord
from nearsight.model.bundle import Bundle
from nearsight.model.network import FeedForward

EpochProgress = Callable[[int, int, int, float], None]
"""Called after every batch with (epoch, batches done, batches per epoch, batch loss)."""

Log = Callable[[str], None]

CHECKPOINT_NAME = "checkpoint.pt"
HISTORY_NAME = "history.json"
CHECKPOINT_FORMAT = "nearsight.checkpoint"
CHECKPOINT_VERSION = 1

_NOT_FINGERPRINTED: dict[str, tuple[str, ...]] = {
    "": ("output_dir", "snapshots", "dft", "ldos"),
    "data": ("test",),
    "descriptors": ("backend", "dtype", "device", "chunk_points"),
    "training": ("max_epochs", "metrics_every", "threads", "device", "model_file"),
}
"""Config entries that do not change the numbers of an epoch (see the module docstring)."""

_METRIC_FORMATS = (
    ("band_energy_mae_mev_per_atom", "band {:.2f} meV/atom"),
    ("total_energy_mae_mev_per_atom", "total {:.2f} meV/atom"),
    ("fermi_energy_mae_mev", "E_F {:.2f} meV"),
    ("density_mape_percent", "density {:.3f}%"),
)


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced.

    Attributes:
        bundle_path: the model bundle written from the best epoch's weights.
        history: one dict per epoch, in order: ``epoch`` (1-based), ``train_loss`` (mean
            squared error of the scaled LDOS over the epoch's batches, with the weights
            as they were during each batch), ``validation_loss`` (mean squared error of
            the scaled LDOS of all validation points after the epoch), ``learning_rate``
            (used in the epoch), ``seconds`` (wall time of training and validation) and,
            on epochs where they were computed, the physical metrics of the validation
            snapshots (the keys of ``nearsight.analysis.metrics.summarize``).
        best_epoch: the epoch with the lowest validation loss (its weights are the model).
        best_validation_loss: that loss (scaled LDOS, dimensionless).
        stopped_early: training stopped because the validation loss stopped improving.
        resumed_from_epoch: the last epoch of the checkpoint this run resumed from, or None.
        metrics: physical metrics of the validation snapshots with the best weights (empty
            if they could not be computed; the log says why).
        seconds: wall time of this call.
    """

    bundle_path: Path
    history: list[dict[str, float]]
    best_epoch: int
    best_validation_loss: float
    stopped_early: bool
    resumed_from_epoch: int | None
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def output_directory(config: Config, base_dir: str | os.PathLike[str]) -> Path:
    """``output_dir`` of the config, relative to the config file's directory."""
    return Path(base_dir) / config.output_dir


def train(
    config: Config,
    base_dir: str | os.PathLike[str],
    *,
    progress: EpochProgress | None = None,
    log: Log | None = None,
    restart: bool = False,
) -> TrainResult:
    """Train a network on ``[data] train``, validate on ``[data] validation``, save a bundle.

    Args:
        config: the whole configuration (``data``, ``network``, ``training``,
            ``descriptors``, ``seed``, ``output_dir`` are used).
        base_dir: directory that relative paths of the config are resolved against.
        progress: per-batch report (rank 0 only), see :data:`EpochProgress`.
        log: receives one line per event and per epoch (rank 0 only).
        restart: discard an existing checkpoint instead of resuming from it.

    Returns:
        The bundle path, history and best epoch; see :class:`TrainResult`.

    Raises:
        InputError: no training or validation files, incompatible snapshots, or a
            checkpoint of a different configuration.
    """
    started = time.perf_counter()
    base_dir = Path(base_dir)
    train_files = _snapshot_files(config.data.train, base_dir, "data.train")
    validation_files = _snapshot_files(config.data.validation, base_dir, "data.validation")
    if config.training.threads > 0:
        torch.set_num_threads(config.training.threads)
    world = _World.start(config.training.device)
    try:
        with ExitStack() as stack:
            run = _Run(config, base_dir, world, stack, log if world.rank == 0 else None)
            run.open_data(train_files, validation_files)
            return run.fit(progress if world.rank == 0 else None, restart=restart, started=started)
    finally:
        world.stop()


def _snapshot_files(patterns: Sequence[str], base_dir: Path, key: str) -> list[Path]:
    if not patterns:
        raise InputError(
            "no snapshot files given",
            field=key,
            fix=f'list snapshot files or globs, e.g. {key.split(".")[-1]} = ["data/al_00*.h5"]',
        )
    return expand_paths(patterns, base_dir, field=key, source=None)


@dataclass
class _World:
    """This process's place among the data-parallel ranks (one rank without torchrun)."""

    rank: int
    size: int
    device: torch.device

    @classmethod
    def start(cls, device: str) -> _World:
        """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1)."""
        size = int(os.environ.get("WORLD_SIZE", "1"))
        try:
            target = torch.device(device)
        except RuntimeError as err:
            raise InputError(
                f"not a torch device: {err}", field="training.device", fix='e.g. "cpu" or "cuda"'
            ) from None
        if target.type == "cuda" and not torch.cuda.is_available():
            raise InputError(
                "CUDA is not available to this PyTorch",
                field="training.device",
                fix='set training.device = "cpu", or install a CUDA build of PyTorch',
            )
        if size <= 1:
            return cls(0, 1, target)
        import torch.distributed as dist

        if not dist.is_available():
            raise InputError(
                "this PyTorch build has no torch.distributed",
                field="WORLD_SIZE",
                fix="run without torchrun, or install a PyTorch build with distributed support",
            )
        if target.type == "cuda":
            # One GPU per rank: torchrun numbers the ranks of a node by LOCAL_RANK.
            target = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(target)
        dist.init_process_group("nccl" if target.type == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), target)

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def sum(self, value: torch.Tensor) -> float:
        """Sum of a scalar tensor over the ranks."""
        if self.distributed:
            value = value.to(self.device)
            torch.distributed.all_reduce(value)
        return float(value)

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's value of a JSON-ready object, on every rank."""
        if not self.distributed:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def stop(self) -> None:
        if self.distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


@dataclass
class _EarlyStopping:
    """The best validation loss so far and how long it has stood."""

    patience: int
    min_delta: float
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    best_weights: dict[str, torch.Tensor] = field(default_factory=dict)

    def update(self, loss: float, epoch: int, network: torch.nn.Module) -> bool:
        """Record an epoch's loss; True (and a copy of the weights) if it is a new best."""
        # Relative threshold: an improvement must beat the best by min_delta of its value.
        if loss < self.best_loss * (1.0 - self.min_delta):
            self.best_loss, self.best_epoch, self.bad_epochs = loss, epoch, 0
            self.best_weights = {
                k: v.detach().to("cpu", copy=True) for k, v in network.state_dict().items()
            }
            return True
        self.bad_epochs += 1
        return False

    @property
    def exhausted(self) -> bool:
        return self.bad_epochs >= self.patience

    def state(self) -> dict[str, Any]:
        return {
            "best_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "best_weights": self.best_weights,
        }

    def load(self, state: dict[str, Any]) -> None:
        self.best_loss = float(state["best_loss"])
        self.best_epoch = int(state["best_epoch"])
        self.bad_epochs = int(state["bad_epochs"])
        self.best_weights = dict(state["best_weights"])


class _ValidationSet:
    """Scaled validation rows in blocks; held in memory unless ``lazy``.

    Args:
        sources: validation snapshots.
        input_scaler, output_scaler: the training scalers.
        dtype: the network's dtype.
        lazy: read blocks from disk at every evaluation instead of keeping them.
        block_points: rows per block (bounds the memory of one forward pass).
    """

    def __init__(
        self,
        sources: Sequence[PointSource],
        input_scaler: Scaler,
        output_scaler: Scaler,
        *,
        dtype: torch.dtype,
        lazy: bool,
        block_points: int,
    ) -> None:
        self.sources, self.dtype = list(sources), dtype
        self.input_scaler, self.output_scaler = input_scaler, output_scaler
        self.spans = [
            (src, start, min(start + block_points, src.n_points))
            for src in self.sources
            for start in range(0, src.n_points, block_points)
        ]
        self.n_values = sum(src.n_points for src in self.sources) * self.sources[0].energy_grid.n
        self._kept = None if lazy else [self._read(span) for span in self.spans]

    def _read(self, span: tuple[PointSource, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        src, start, stop = span
        return scaled_rows(src, start, stop, self.input_scaler, self.output_scaler, self.dtype)

    def blocks(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self._kept is not None:
            yield from self._kept
        else:
            yield from (self._read(span) for span in self.spans)

    def loss(self, network: torch.nn.Module, device: torch.device) -> float:
        """Mean squared error of the scaled LDOS over all validation points."""
        network.eval()
        sse = torch.zeros((), dtype=torch.float64)
        with torch.inference_mode():
            for x, y in self.blocks():
                diff = network(x.to(device)) - y.to(device)
                sse += (diff.to(torch.float64) ** 2).sum().cpu()
        return float(sse) / self.n_values


@dataclass
class _State:
    """What an epoch changes; with the scalers and a fingerprint, the checkpoint."""

    network: FeedForward
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau
    stopper: _EarlyStopping
    history: list[dict[str, float]] = field(default_factory=list)
    epoch: int = 0

    def checkpoint(self, fingerprint: str, scalers: tuple[Scaler, Scaler]) -> dict[str, Any]:
        """Tensors and plain containers only (loads with ``weights_only=True``)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "fingerprint": fingerprint,
            "epoch": self.epoch,
            "model": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "early_stopping": self.stopper.state(),
            "history": self.history,
            "torch_rng": torch.get_rng_state(),
            "input_scaler": json.dumps(scalers[0].to_dict()),
            "output_scaler": json.dumps(scalers[1].to_dict()),
        }

    def restore(self, checkpoint: dict[str, Any]) -> None:
        self.network.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.stopper.load(checkpoint["early_stopping"])
        self.history = [dict(h) for h in checkpoint["history"]]
        self.epoch = int(checkpoint["epoch"])
        # Nothing draws from torch's generator today; restored so that anything that does
        # (dropout, noise) would continue the stream of the uninterrupted run.
        torch.set_rng_state(checkpoint["torch_rng"])


@dataclass(frozen=True)
class _DataMetadata:
    """What the bundle records about the training data (from the snapshot files)."""

    temperature_k: float
    pseudopotentials: dict[str, PseudoRecord]
    electrons_per_atom: dict[str, float]
    grid_spacing: tuple[float, float, float]
    ecutrho_ry: float | None


class _Run:
    """One call of :func:`train`: the data, the model and the loop over epochs."""

    def __init__(
        self, config: Config, base_dir: Path, world: _World, stack: ExitStack, log: Log | None
    ) -> None:
        self.config, self.base_dir, self.world, self.stack = config, base_dir, world, stack
        self.out_dir = output_directory(config, base_dir)
        self.checkpoint_path = self.out_dir / CHECKPOINT_NAME
        self.history_path = self.out_dir / HISTORY_NAME
        self._log = log
        # Reference values of the validation snapshots, computed once for all epochs.
        self._metrics_cache: dict[str, Any] = {}
        self._metrics_failures: set[str] = set()
        self.dtype: torch.dtype = getattr(torch, config.network.dtype)

    def log(self, line: str) -> None:
        if self._log is not None:
            self._log(line)

    def open_data(self, train_files: list[Path], validation_files: list[Path]) -> None:
        """Open all snapshots; rank 0 first so that only it computes missing descriptors."""
        self.train_files, self.validation_files = train_files, validation_files
        cache = self.out_dir / "descriptors"
        if self.world.rank == 0:
            self._open(cache)
        self.world.barrier()
        if self.world.rank != 0:
            self._open(cache)
        check_compatible(self.train_sources + self.validation_sources)
        self.metadata = _data_metadata(self.train_sources)

    def _open(self, cache: Path) -> None:
        def opened(path: Path) -> PointSource:
            # MALA files do not record their energy grid; [ldos] of the config gives it.
            grid = EnergyGrid(
                self.config.ldos.emin_ev, self.config.ldos.de_ev, self.config.ldos.count
            )
            src = open_source(path, self.config.descriptors, energy_grid=grid, cache_dir=cache)
            self.stack.callback(src.close)
            return src

        self.train_sources = [opened(p) for p in self.train_files]
        self.validation_sources = [opened(p) for p in self.validation_files]

    def fingerprint(self) -> str:
        """SHA-256 of the config entries that change the numbers, and of the data files."""
        settings = config_to_dict(self.config)
        for section, keys in _NOT_FINGERPRINTED.items():
            table = settings[section] if section else settings
            for key in keys:
                table.pop(key, None)

        def files(paths: list[Path]) -> list[tuple[str, int]]:
            # Relative names, so that a moved project directory still resumes.
            return [(os.path.relpath(p, self.base_dir), p.stat().st_size) for p in paths]

        settings["files"] = {
            "train": files(self.train_files),
            "validation": files(self.validation_files),
        }
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()

    def _load_checkpoint(self, fingerprint: str) -> dict[str, Any] | None:
        path = self.checkpoint_path
        if not path.is_file():
            return None
        fix = "delete it to start afresh, or pass --restart (train(..., restart=True))"
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch.load raises many kinds for a file that is no checkpoint
            raise InputError(
                f"cannot read the checkpoint ({type(err).__name__}: {err})", path=path, fix=fix
            ) from None
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise InputError("not a nearsight training checkpoint", path=path, fix=fix)
        if state.get("fingerprint") != fingerprint:
            raise InputError(
                "the checkpoint was written for a different configuration or different "
                "training data",
                path=path,
                fix=fix,
            )
        return state

    def fit(self, progress: EpochProgress | None, *, restart: bool, started: float) -> TrainResult:
        """Train from scratch or from the checkpoint, then write the bundle (rank 0)."""
        fingerprint = self.fingerprint()
        if restart and self.world.rank == 0:
            self.checkpoint_path.unlink(missing_ok=True)
        checkpoint = None if restart else self._load_checkpoint(fingerprint)
        scalers = self._scalers(checkpoint)
        state = self._new_state()
        if checkpoint is not None:
            state.restore(checkpoint)
        model: torch.nn.Module = state.network
        if self.world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.world.device] if self.world.device.type == "cuda" else None
            model = DistributedDataParallel(state.network, device_ids=ids)
        data = self.config.data
        loader = PointLoader(
            self.train_sources, *scalers,
            batch_size=self.config.training.batch_size, shuffle=data.shuffle, lazy=data.lazy,
            seed=self.config.seed, block_points=data.block_points,
            buffer_blocks=data.buffer_blocks, rank=self.world.rank,
            world_size=self.world.size, dtype=self.dtype,
        )  # fmt: skip
        validation = _ValidationSet(
            self.validation_sources, *scalers,
            dtype=self.dtype, lazy=data.lazy, block_points=data.block_points,
        )  # fmt: skip
        n_params = sum(p.numel() for p in state.network.parameters())
        self.log(
            f"network {list(state.network.widths)} ({n_params} parameters); training on "
            f"{len(self.train_sources)} snapshots ({loader.n_points} points, {len(loader)} "
            f"batches of {loader.batch_size}), validating on {len(self.validation_sources)} "
            f"({sum(s.n_points for s in self.validation_sources)} points)"
            + (f"; {self.world.size} ranks" if self.world.distributed else "")
        )
        max_epochs = self.config.training.max_epochs
        if checkpoint is not None:
            self.log(f"resuming from epoch {state.epoch} ({self.checkpoint_path})")
            if state.stopper.exhausted or state.epoch >= max_epochs:
                self.log(
                    f"training is already complete after {state.epoch} epochs; writing the "
                    "model again from the checkpoint's best weights"
                )
        while state.epoch < max_epochs and not state.stopper.exhausted:
            self._epoch(state, model, loader, validation, scalers, progress)
            if self.world.rank == 0:
                with atomic_path(self.checkpoint_path) as tmp:
                    torch.save(state.checkpoint(fingerprint, scalers), tmp)
                with atomic_path(self.history_path) as tmp:
                    Path(tmp).write_text(json.dumps(state.history, indent=1))
        if state.stopper.exhausted:
            self.log(
                "stopped early: the validation loss did not improve for "
                f"{state.stopper.patience} epochs"
            )
        return self._finish(
            state, scalers, None if checkpoint is None else int(checkpoint["epoch"]), started
        )

    def _new_state(self) -> _State:
        """A freshly initialised network (seeded) with its optimizer and schedules."""
        cfg = self.config.training
        sources = self.train_sources
        activations = self.config.network.activations
        network = FeedForward(
            [sources[0].n_features, *self.config.network.hidden, sources[0].energy_grid.n],
            activations[0] if len(activations) == 1 else activations,
            seed=self.config.seed,
            dtype=self.dtype,
        ).to(self.world.device)
        if cfg.optimizer == "adam":
            optimizer: torch.optim.Optimizer = torch.optim.Adam(
                network.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
            )
        else:
            optimizer = torch.optim.SGD(
                network.parameters(),
                lr=cfg.learning_rate,
                momentum=cfg.momentum,
                weight_decay=cfg.weight_decay,
            )
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="min",
            factor=cfg.lr_factor,
            patience=cfg.lr_patience,
            min_lr=cfg.min_learning_rate,
        )
        stopper = _EarlyStopping(cfg.early_stopping_patience, cfg.early_stopping_min_delta)
        return _State(network, optimizer, scheduler, stopper)

    def _epoch(
        self,
        state: _State,
        model: torch.nn.Module,
        loader: PointLoader,
        validation: _ValidationSet,
        scalers: tuple[Scaler, Scaler],
        progress: EpochProgress | None,
    ) -> None:
        """Train one epoch, validate, step the schedules, record and log it."""
        state.epoch += 1
        epoch = state.epoch
        t0 = time.perf_counter()
        learning_rate = float(state.optimizer.param_groups[0]["lr"])
        train_loss = self._train_epoch(model, loader, state.optimizer, epoch, progress)
        validation_loss = validation.loss(state.network, self.world.device)
        seconds = time.perf_counter() - t0
        if not (math.isfinite(train_loss) and math.isfinite(validation_loss)):
            raise InputError(
                f"the loss is not finite at epoch {epoch} (train {train_loss}, validation "
                f"{validation_loss}): training diverged",
                field="training.learning_rate",
                fix="lower training.learning_rate, and check the data for extreme values",
            )
        improved = state.stopper.update(validation_loss, epoch, state.network)
        state.scheduler.step(validation_loss)
        entry: dict[str, float] = {
            "epoch": epoch,
            "train_loss": train_loss,
            "validation_loss": validation_loss,
            "learning_rate": learning_rate,
            "seconds": seconds,
        }
        every = self.config.training.metrics_every
        if every > 0 and epoch % every == 0:
            entry.update(self._metrics(state.network, scalers))
        state.history.append(entry)
        width = len(str(self.config.training.max_epochs))
        self.log(
            f"epoch {epoch:>{width}d}  train {train_loss:.3e}  val {validation_loss:.3e}  "
            f"lr {learning_rate:.1e}  {seconds:.2f} s{'  best' if improved else ''}"
            + _format_metrics(entry)
        )

    def _finish(
        self,
        state: _State,
        scalers: tuple[Scaler, Scaler],
        resumed_from: int | None,
        started: float,
    ) -> TrainResult:
        """Put the best weights back, measure them and write the bundle (rank 0)."""
        stopper = state.stopper
        state.network.load_state_dict(stopper.best_weights)
        metrics = self._metrics(state.network, scalers)
        bundle_path = self.out_dir / self.config.training.model_file
        if self.world.rank == 0:
            self._bundle(state, scalers, metrics).save(bundle_path)
        self.log(
            f"best epoch {stopper.best_epoch} of {state.epoch}: val {stopper.best_loss:.3e}"
            + _format_metrics(metrics)
        )
        self.log(f"wrote {bundle_path}")
        # The other ranks wait for the bundle, so that a finished torchrun has written it.
        self.world.barrier()
        return TrainResult(
            bundle_path=bundle_path,
            history=state.history,
            best_epoch=stopper.best_epoch,
            best_validation_loss=stopper.best_loss,
            stopped_early=stopper.exhausted,
            resumed_from_epoch=resumed_from,
            metrics=metrics,
            seconds=time.perf_counter() - started,
        )

    def _scalers(self, state: dict[str, Any] | None) -> tuple[Scaler, Scaler]:
        """The checkpoint's scalers, or ones fitted on the training snapshots (by rank 0)."""
        if state is not None:
            return (
                Scaler.from_dict(json.loads(state["input_scaler"]), self.checkpoint_path),
                Scaler.from_dict(json.loads(state["output_scaler"]), self.checkpoint_path),
            )
        data = self.config.data
        fitted = None
        if self.world.rank == 0:
            t0 = time.perf_counter()
            inputs, outputs = fit_scalers(
                self.train_sources,
                Scaler(data.input_scaler, data.input_per_feature),
                Scaler(data.output_scaler, data.output_per_feature),
                block_points=max(data.block_points, 65536),
            )
            fitted = [inputs.to_dict(), outputs.to_dict()]
            seconds = time.perf_counter() - t0
            self.log(f"fitted the scalers on the training snapshots ({seconds:.1f} s)")
        # One pass over the training data is enough; the other ranks get rank 0's result.
        fitted = self.world.broadcast(fitted)
        return Scaler.from_dict(fitted[0]), Scaler.from_dict(fitted[1])

    def _train_epoch(
        self,
        model: torch.nn.Module,
        loader: PointLoader,
        optimizer: torch.optim.Optimizer,
        epoch: int,
        progress: EpochProgress | None,
    ) -> float:
        """One pass over the training rows; returns the mean squared error of the epoch."""
        model.train()
        n_energies = self.train_sources[0].energy_grid.n
        device = self.world.device
        sse = torch.zeros((), dtype=torch.float64, device=device)
        n_batches = len(loader)
        for index, batch in enumerate(loader.epoch(epoch), start=1):
            x, y = batch.inputs.to(device), batch.targets.to(device)
            batch_sse = ((model(x) - y) ** 2).sum()
            # DDP averages the ranks' gradients; scaling by the world size makes that
            # average the gradient of the mean over the whole global batch.
            loss = batch_sse * (self.world.size / (batch.global_size * n_energies))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            batch_sse = batch_sse.detach()
            sse += batch_sse.to(torch.float64)
            if progress is not None:
                progress(epoch, index, n_batches, float(batch_sse) / max(1, y.numel()))
        return self.world.sum(sse) / (loader.n_points * n_energies)

    def _metrics(self, network: FeedForward, scalers: tuple[Scaler, Scaler]) -> dict[str, float]:
        """Physical errors of the validation snapshots (rank 0; empty elsewhere)."""
        if self.world.rank != 0:
            return {}
        from nearsight.analysis.metrics import evaluate, summarize

        try:
            errors = evaluate(
                network,
                *scalers,
                self.validation_sources,
                device=str(self.world.device),
                cache=self._metrics_cache,
            )
        except InputError as err:
            # Data the physics cannot handle (an energy window without the Fermi level,
            # a grid too coarse for the cutoff) still trains; it just has no metrics.
            if str(err) not in self._metrics_failures:
                self._metrics_failures.add(str(err))
                self.log(f"no physical metrics: {err}")
            return {}
        return {k: float(v) for k, v in summarize(errors).items()}

    def _bundle(
        self, state: _State, scalers: tuple[Scaler, Scaler], metrics: dict[str, float]
    ) -> Bundle:
        """The model of the current weights with the data's metadata and provenance."""
        meta, history, stopper = self.metadata, state.history, state.stopper
        provenance = {
            "config": config_to_dict(self.config),
            "seed": self.config.seed,
            "training_files": [_file_record(p) for p in self.train_files],
            "validation_files": [_file_record(p) for p in self.validation_files],
            "history": {
                "epochs": len(history),
                "best_epoch": stopper.best_epoch,
                "best_validation_loss": stopper.best_loss,
                "stopped_early": stopper.exhausted,
                # The sum of the epochs' times, so that it survives interruptions.
                "train_seconds": sum(h["seconds"] for h in history),
            },
            "validation_metrics": metrics,
            "ranks": self.world.size,
            "torch_version": torch.__version__,
            "python_version": platform.python_version(),
            "nearsight_version": __version__,
        }
        return Bundle(
            network=state.network.to("cpu"),
            input_scaler=scalers[0],
            output_scaler=scalers[1],
            descriptors=self.config.descriptors,
            energy_grid=self.train_sources[0].energy_grid,
            temperature_k=meta.temperature_k,
            electrons_per_atom=meta.electrons_per_atom,
            pseudopotentials=meta.pseudopotentials,
            grid_spacing=meta.grid_spacing,
            ecutrho_ry=meta.ecutrho_ry,
            provenance=provenance,
        )


def _data_metadata(sources: Sequence[PointSource]) -> _DataMetadata:
    """Temperature, pseudopotentials and grid spacing shared by the training snapshots.

    Snapshots may hold different elements, but one element must have one pseudopotential.

    Raises:
        InputError: snapshots at different temperatures, with different pseudopotentials
            of an element, or an element without a pseudopotential.
    """
    from nearsight.io.upf import parse_upf

    first = sources[0].snapshot()
    pseudos: dict[str, PseudoRecord] = {}
    owner: dict[str, Path] = {}
    for src in sources:
        snap = first if src is sources[0] else src.snapshot()
        if not math.isclose(snap.temperature_k, first.temperature_k, rel_tol=1e-9, abs_tol=1e-9):
            raise InputError(
                f"electronic temperature {snap.temperature_k} K differs from "
                f"{sources[0].path.name}'s {first.temperature_k} K",
                path=src.path,
                field="temperature_k",
                fix="train one model per electronic temperature",
            )
        for el, rec in snap.pseudopotentials.items():
            known = pseudos.setdefault(el, rec)
            owner.setdefault(el, src.path)
            if known.sha256 != rec.sha256:
                raise InputError(
                    f"the {el} pseudopotential {rec.filename} (SHA-256 {rec.sha256[:12]}...) "
                    f"differs from {known.filename} ({known.sha256[:12]}...) of "
                    f"{owner[el].name}",
                    path=src.path,
                    field=f"pseudopotentials.{el}",
                    fix="train on snapshots computed with the same pseudopotentials",
                )
        missing = sorted(set(snap.atoms.get_chemical_symbols()) - set(snap.pseudopotentials))
        if missing:
            raise InputError(
                f"no pseudopotential stored for {', '.join(missing)}",
                path=src.path,
                field="pseudopotentials",
                fix="use snapshots written by `nearsight dft`, which store the UPF files",
            )
    electrons = {
        el: float(parse_upf(rec.text.encode(), Path(rec.filename)).z_valence)
        for el, rec in pseudos.items()
    }
    lengths = np.linalg.norm(np.asarray(first.atoms.cell[:]), axis=1)
    spacing = tuple(float(h) for h in lengths / np.asarray(first.grid_shape))
    return _DataMetadata(
        temperature_k=float(first.temperature_k),
        pseudopotentials=pseudos,
        electrons_per_atom=electrons,
        grid_spacing=spacing,
        ecutrho_ry=None if first.qe is None else float(first.qe.ecutrho_ry),
    )


def _file_record(path: Path) -> dict[str, str]:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return {"file": path.name, "sha256": h.hexdigest()}


def _format_metrics(values: dict[str, float]) -> str:
    """`` | band 4.21 meV/atom  total ...`` for the metrics present, or an empty string."""
    parts = [fmt.format(values[key]) for key, fmt in _METRIC_FORMATS if key in values]
    return ("  | " + "  ".join(parts)) if parts else ""
