"""The feed-forward network: layout, per-layer activations, seeded initialisation."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="torch is installed with the [ml] extra")

from nearsight.errors import InputError  # noqa: E402
from nearsight.model.network import FeedForward  # noqa: E402


def test_layout_and_activations_per_layer():
    net = FeedForward([91, 64, 32, 176], ["relu", "tanh", "none"])
    kinds = [type(m).__name__ for m in net.layers]
    assert kinds == ["Linear", "ReLU", "Linear", "Tanh", "Linear"]
    assert net(torch.zeros(5, 91)).shape == (5, 176)
    assert net.layout() == {"widths": [91, 64, 32, 176], "activations": ["relu", "tanh", "none"]}
    one_name = FeedForward([4, 8, 8, 2], "sigmoid")
    assert one_name.activations == ("sigmoid", "sigmoid", "none")


def test_same_seed_same_network_and_global_rng_untouched():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = FeedForward([10, 20, 3], seed=7)
    after = torch.rand(1)
    assert torch.equal(before, after)  # building the net did not consume the global stream
    b = FeedForward([10, 20, 3], seed=7)
    c = FeedForward([10, 20, 3], seed=8)
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters(), strict=True):
        assert torch.equal(pa, pb)
        assert not torch.equal(pa, pc)


def test_bad_layouts_are_refused():
    with pytest.raises(InputError, match="at least two positive"):
        FeedForward([10])
    with pytest.raises(InputError, match="2 layers need 2 activations"):
        FeedForward([10, 5, 3], ["relu"])
    with pytest.raises(InputError, match="unknown activation 'swish'"):
        FeedForward([10, 5, 3], ["swish", "none"])
