"""Model bundles: one safetensors file, checked on load, never unpickled."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import bulk

from nearsight.config import DescriptorsConfig
from nearsight.data.scaling import Scaler
from nearsight.errors import InputError
from nearsight.grid import EnergyGrid
from nearsight.io.dataset import PseudoRecord
from nearsight.model import bundle as bundle_module
from nearsight.model.bundle import Bundle
from nearsight.model.inference import predict_ldos
from nearsight.model.network import FeedForward

UPF = '<UPF version="2.0.1">\n  <PP_HEADER element="Al" z_valence="3.0"/>\n</UPF>\n'


def make_bundle(**changes) -> Bundle:
    descriptors = DescriptorsConfig(twojmax=2)  # 5 features
    rng = np.random.default_rng(0)
    inputs = Scaler("standard").partial_fit(rng.normal(size=(50, 5)))
    outputs = Scaler("minmax", per_feature=False).partial_fit(rng.random((50, 7)))
    fields = dict(
        network=FeedForward([5, 8, 7], "leakyrelu", seed=3),
        input_scaler=inputs,
        output_scaler=outputs,
        descriptors=descriptors,
        energy_grid=EnergyGrid(-4.1, 0.05, 7),
        temperature_k=298.0,
        electrons_per_atom={"Al": 3.0},
        pseudopotentials={
            "Al": PseudoRecord("Al", "Al.UPF", hashlib.sha256(UPF.encode()).hexdigest(), UPF)
        },
        grid_spacing=(0.16875, 0.16875, 0.16875),
        ecutrho_ry=80.0,
        provenance={"seed": 3},
    )
    fields.update(changes)
    return Bundle(**fields)


def test_round_trip_predicts_the_same(tmp_path: Path) -> None:
    original = make_bundle()
    path = original.save(tmp_path / "m.safetensors")
    loaded = Bundle.load(path)
    x = np.random.default_rng(1).normal(size=(20, 5))
    a = predict_ldos(original.network, original.input_scaler, original.output_scaler, x)
    b = predict_ldos(loaded.network, loaded.input_scaler, loaded.output_scaler, x)
    np.testing.assert_array_equal(a, b)
    assert loaded.energy_grid == original.energy_grid
    assert loaded.descriptors == original.descriptors
    assert loaded.pseudopotentials["Al"].text == UPF
    assert loaded.provenance == {"seed": 3}
    assert loaded.grid_shape(bulk("Al", "fcc", a=4.05, cubic=True) * (2, 1, 3)) == (48, 24, 72)
    assert loaded.number_of_electrons(bulk("Al", "fcc", a=4.05, cubic=True)) == 12.0


def test_the_file_is_plain_safetensors(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    path = make_bundle().save(tmp_path / "m.safetensors")
    tensors = load_file(str(path))
    assert "network.layers.0.weight" in tensors and "pseudo.Al" in tensors
    assert b"pickle" not in path.read_bytes()[:200]


def rewrite(path: Path, meta_change=None, tensor_change=None, rehash=True) -> None:
    """Edit a bundle as an attacker or a bit flip would, optionally with a valid hash."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    with safe_open(str(path), framework="np") as fh:
        header = fh.metadata()
    tensors = load_file(str(path))
    meta = json.loads(header["nearsight"])
    if meta_change:
        meta_change(meta)
    if tensor_change:
        tensor_change(tensors)
    text = json.dumps(meta, sort_keys=True)
    digest = bundle_module._content_hash(tensors, text) if rehash else header["content_sha256"]
    save_file(tensors, str(path), metadata={"nearsight": text, "content_sha256": digest})


def test_edited_file_is_refused(tmp_path: Path) -> None:
    path = make_bundle().save(tmp_path / "m.safetensors")

    def flip(t):
        t["network.layers.0.weight"][0, 0] += 1.0

    rewrite(path, tensor_change=flip, rehash=False)
    with pytest.raises(InputError, match="content hash does not match"):
        Bundle.load(path)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda m: m.update(format_version=99), "format version 99"),
        (lambda m: m.update(nearsight_version="0.9.0"), "newer than this nearsight"),
        (lambda m: m.update(nearsight_version="0.0.1"), "no longer reads"),
        (lambda m: m.update(format="something.else"), "metadata format"),
        (lambda m: m["energy_grid"].update(n=9), "9 LDOS energies, but the network has 7"),
        (lambda m: m["descriptors"].update(twojmax=4), "descriptor features"),
        (lambda m: m["pseudopotentials"]["Al"].update(sha256="0" * 64), "SHA-256"),
        (lambda m: m["network"].update(widths=[5, 9, 7]), "do not fit the layout"),
        (lambda m: m.pop("temperature_k"), "incomplete"),
    ],
)
def test_inconsistent_or_foreign_bundles_are_refused(tmp_path: Path, change, match) -> None:
    path = make_bundle().save(tmp_path / "m.safetensors")
    rewrite(path, meta_change=change)
    with pytest.raises(InputError, match=match) as err:
        Bundle.load(path)
    assert str(path) in str(err.value)


def test_not_a_bundle(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x80\x04not a safetensors file")
    with pytest.raises(InputError, match="not a safetensors model bundle"):
        Bundle.load(junk)
    bare = tmp_path / "bare.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(bare))
    with pytest.raises(InputError, match="without nearsight metadata"):
        Bundle.load(bare)
    with pytest.raises(InputError, match="not found"):
        Bundle.load(tmp_path / "missing.safetensors")


def test_a_failed_save_keeps_the_old_file(tmp_path: Path, monkeypatch) -> None:
    path = make_bundle().save(tmp_path / "m.safetensors")
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.numpy.save_file", boom)
    with pytest.raises(OSError):
        make_bundle(provenance={"seed": 4}).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_inconsistent_bundle_cannot_be_made() -> None:
    with pytest.raises(InputError, match="LDOS energies"):
        make_bundle(energy_grid=EnergyGrid(0.0, 0.1, 8))
    with pytest.raises(InputError, match="no pseudopotential for Cu"):
        make_bundle(electrons_per_atom={"Al": 3.0, "Cu": 11.0})


def test_float64_network_round_trips(tmp_path: Path) -> None:
    b = make_bundle(network=FeedForward([5, 4, 7], "tanh", dtype=torch.float64))
    loaded = Bundle.load(b.save(tmp_path / "m.safetensors"))
    assert next(loaded.network.parameters()).dtype == torch.float64
    assert dataclasses.asdict(loaded.descriptors) == dataclasses.asdict(b.descriptors)
