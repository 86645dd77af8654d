"""Scalers: incremental fits equal one-pass statistics; round trips through JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nearsight.data.scaling import Scaler
from nearsight.errors import InputError

RNG = np.random.default_rng(0)
DATA = RNG.normal(3.0, 2.0, size=(1000, 5)) * np.array([1, 10, 0.1, 1e3, 1])
DATA[:, 4] = 7.0  # a constant column


@pytest.mark.parametrize("per_feature", [True, False])
def test_incremental_fit_equals_one_pass(per_feature):
    """Float64 accumulation: the pairwise update agrees with numpy to ~1e-13 relative."""
    one = Scaler("standard", per_feature).partial_fit(DATA)
    parts = Scaler("standard", per_feature)
    for block in np.array_split(DATA, [1, 17, 300, 301, 999]):
        parts.partial_fit(block)
    values = DATA if per_feature else DATA.reshape(-1, 1)
    for scaler in (one, parts):
        offset, scale = scaler.offset_and_scale()
        np.testing.assert_allclose(offset, values.mean(0), rtol=1e-13)
        expected = values.std(0)
        np.testing.assert_allclose(scale, np.where(expected > 0, expected, 1), rtol=1e-11)


def test_standard_and_minmax_scale_as_defined():
    standard = Scaler("standard").partial_fit(DATA).transform(DATA)
    np.testing.assert_allclose(standard[:, :4].mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(standard[:, :4].std(0), 1, rtol=1e-12)
    assert np.all(standard[:, 4] == 0)  # constant column: scale 1, not a division by 0
    minmax = Scaler("minmax").partial_fit(DATA).transform(DATA)
    np.testing.assert_allclose(minmax[:, :4].min(0), 0, atol=1e-15)
    np.testing.assert_allclose(minmax[:, :4].max(0), 1, rtol=1e-15)
    flat = Scaler("minmax", per_feature=False).partial_fit(DATA).transform(DATA)
    assert flat.min() == 0 and flat.max() == pytest.approx(1)
    same = Scaler("none").transform(DATA)
    np.testing.assert_array_equal(same, DATA)


@pytest.mark.parametrize("kind", ["none", "standard", "minmax"])
def test_inverse_and_json_round_trip(kind, tmp_path):
    scaler = Scaler(kind).partial_fit(DATA)
    path = scaler.save(tmp_path / "s.json")
    loaded = Scaler.load(path)
    np.testing.assert_array_equal(loaded.transform(DATA), scaler.transform(DATA))
    np.testing.assert_allclose(loaded.inverse_transform(loaded.transform(DATA)), DATA, rtol=1e-12)
    assert json.loads(path.read_text())["kind"] == kind


def test_torch_tensors_keep_their_kind_and_dtype():
    torch = pytest.importorskip("torch", reason="torch is installed with the [ml] extra")
    scaler = Scaler("standard").partial_fit(torch.tensor(DATA))
    x = torch.tensor(DATA, dtype=torch.float32)
    y = scaler.transform(x)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32
    np.testing.assert_allclose(y.numpy(), scaler.transform(DATA), rtol=1e-5, atol=1e-5)


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(InputError, match="unknown scaler kind 'zscore'"):
        Scaler("zscore")
    with pytest.raises(InputError, match="not fitted"):
        Scaler("standard").transform(DATA)
    with pytest.raises(InputError, match="NaN"):
        Scaler().partial_fit(np.array([[1.0, np.nan]]))
    scaler = Scaler().partial_fit(DATA)
    with pytest.raises(InputError, match="rows have 3 features"):
        scaler.partial_fit(DATA[:, :3])
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not JSON"):
        Scaler.load(bad)
    bad.write_text(json.dumps({"format": "nearsight.scaler", "kind": "standard"}))
    with pytest.raises(InputError, match="damaged scaler"):
        Scaler.load(bad)
    pickle_like = tmp_path / "x.json"
    pickle_like.write_text(json.dumps({"kind": "standard"}))
    with pytest.raises(InputError, match="not a nearsight scaler"):
        Scaler.load(pickle_like)
