"""Sources and loaders: every training row exactly once per epoch, shuffled across snapshots."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from test_dataset import make_snapshot

from nearsight.config import DescriptorsConfig
from nearsight.data.loader import PointLoader, fit_scalers
from nearsight.data.scaling import Scaler
from nearsight.data.sources import SnapshotSource, descriptor_parameters, expand_paths
from nearsight.descriptors.compute import metadata
from nearsight.errors import InputError
from nearsight.io.dataset import store_descriptors, write_snapshot

CONFIG = DescriptorsConfig(twojmax=2)


def labelled_snapshot(path: Path, index: int, shape=(5, 4, 3)) -> Path:
    """A snapshot whose descriptor row k of file i is (i, k, 1): rows are identifiable."""
    snap = make_snapshot(shape=shape, ne=7, seed=index)
    n = int(np.prod(shape))
    ldos = np.stack([np.full(n, index), np.arange(n)] + [np.ones(n)] * 5, axis=1)
    snap = dataclasses.replace(snap, ldos=ldos.reshape(*shape, 7).astype(np.float32))
    write_snapshot(path, snap)
    features = int(metadata(CONFIG)["features"])  # 5 at twojmax 2
    desc = np.zeros((n, features), dtype=np.float32)
    desc[:, 0], desc[:, 1], desc[:, 2] = index, np.arange(n), 1.0
    store_descriptors(path, desc.reshape(*shape, features), metadata(CONFIG))
    return path


@pytest.fixture
def sources(tmp_path: Path):
    shapes = [(5, 4, 3), (3, 4, 3), (6, 4, 3)]
    srcs = [
        SnapshotSource(labelled_snapshot(tmp_path / f"s{i}.h5", i, s), CONFIG)
        for i, s in enumerate(shapes)
    ]
    yield srcs
    for s in srcs:
        s.close()


def identity() -> Scaler:
    inputs = Scaler("none")
    return inputs.partial_fit(np.zeros((1, 1)))


def visits(loader: PointLoader, epoch: int) -> list[tuple[int, int]]:
    rows = []
    for batch in loader.epoch(epoch):
        assert batch.inputs.shape[0] == batch.global_size
        for x, y in zip(batch.inputs.tolist(), batch.targets.tolist(), strict=True):
            assert x[0] == y[0] and x[1] == y[1], "inputs and targets of a row must stay paired"
            assert x[2] == 1.0, "a zero or padded row"
            rows.append((int(x[0]), int(x[1])))
    return rows


@pytest.mark.parametrize("lazy", [True, False])
def test_a_shuffled_epoch_visits_every_row_once(sources, lazy: bool) -> None:
    loader = PointLoader(
        sources, identity(), identity(), batch_size=7, lazy=lazy, seed=3,
        block_points=12, buffer_blocks=2,
    )  # fmt: skip
    expected = sorted((i, k) for i, s in enumerate(sources) for k in range(s.n_points))
    first = visits(loader, 0)
    assert sorted(first) == expected
    assert len(first) == len(set(first)) == loader.n_points == 60 + 36 + 72
    # Shuffled across snapshots: file order would switch snapshot only twice.
    switches = sum(a[0] != b[0] for a, b in zip(first, first[1:], strict=False))
    assert switches > 20
    assert first != sorted(first)
    second = visits(loader, 1)
    assert sorted(second) == expected and second != first
    assert visits(loader, 0) == first, "the order depends only on (seed, epoch)"


def test_unshuffled_epoch_is_file_order(sources) -> None:
    loader = PointLoader(sources, identity(), identity(), batch_size=10, shuffle=False)
    rows = visits(loader, 0)
    assert rows == [(i, k) for i, s in enumerate(sources) for k in range(s.n_points)]


@pytest.mark.parametrize("lazy", [True, False])
def test_ranks_split_each_global_batch(sources, lazy: bool) -> None:
    kwargs = dict(batch_size=9, lazy=lazy, seed=1, block_points=12, buffer_blocks=3)
    whole = list(PointLoader(sources, identity(), identity(), **kwargs).epoch(2))
    parts = [
        list(PointLoader(sources, identity(), identity(), rank=r, world_size=2, **kwargs).epoch(2))
        for r in range(2)
    ]
    assert len(parts[0]) == len(parts[1]) == len(whole)
    for w, a, b in zip(whole, parts[0], parts[1], strict=True):
        assert torch.equal(torch.cat([a.inputs, b.inputs]), w.inputs)
        assert a.global_size == b.global_size == w.inputs.shape[0]


def test_scalers_fit_over_all_snapshots(sources) -> None:
    inputs, outputs = fit_scalers(sources, Scaler("standard"), Scaler("minmax", False))
    rows = np.concatenate([s.features(0, s.n_points) for s in sources]).astype(np.float64)
    np.testing.assert_allclose(inputs.mean, rows.mean(0), rtol=1e-12, atol=1e-12)
    targets = np.concatenate([s.targets(0, s.n_points) for s in sources])
    assert outputs.maximum.item() == targets.max() and outputs.minimum.item() == targets.min()


def test_rows_across_plane_boundaries(sources) -> None:
    src = sources[0]
    np.testing.assert_array_equal(src.features(5, 29)[:, 1], np.arange(5, 29))
    np.testing.assert_array_equal(src.targets(11, 13)[:, 1], [11, 12])


def test_missing_descriptors_are_computed_and_cached(tmp_path: Path) -> None:
    path = tmp_path / "plain.h5"
    write_snapshot(path, make_snapshot(shape=(4, 4, 4)))
    calls = []
    src = SnapshotSource(
        path, CONFIG, cache_dir=tmp_path / "cache", progress=lambda *a: calls.append(a)
    )
    first = src.features(0, 64)
    src.close()
    assert calls and first.shape == (64, 5)
    [cached] = (tmp_path / "cache").glob("plain-*.npy")
    again = SnapshotSource(
        path, CONFIG, cache_dir=tmp_path / "cache", progress=lambda *a: calls.append(("again",))
    )
    np.testing.assert_array_equal(again.features(0, 64), first)
    assert ("again",) not in calls, "the cache was not used"
    again.close()
    # Different parameters never reuse the cache.
    other = dataclasses.replace(CONFIG, rcutfac=3.0)
    src = SnapshotSource(path, other, cache_dir=tmp_path / "cache")
    assert not np.array_equal(src.features(0, 64), first)
    src.close()
    assert descriptor_parameters(metadata(other)) != descriptor_parameters(metadata(CONFIG))


def test_incompatible_sources_and_missing_files(tmp_path: Path, sources) -> None:
    odd = tmp_path / "odd.h5"
    write_snapshot(odd, make_snapshot(shape=(4, 4, 4), ne=5))
    store_descriptors(odd, np.ones((4, 4, 4, 5), np.float32), metadata(CONFIG))
    with SnapshotSource(odd, CONFIG) as src, pytest.raises(InputError, match="energy grid"):
        PointLoader([sources[0], src], identity(), identity(), batch_size=4)
    with pytest.raises(InputError, match="no file matches"):
        expand_paths(["nothing*.h5"], tmp_path, field="data.train", source="c.toml")
