"""The feed-forward network of paper 002 Eq. 18: x_{l+1} = φ_l(W_l x_l + b_l).

Layer widths run from the descriptor count to the number of LDOS energies; each layer has
its own activation (the last one usually none). Weights are initialised from an explicit
seed, so the same layout and seed give the same network.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nearsight.errors import InputError

ACTIVATIONS: dict[str, type[nn.Module] | None] = {
    "none": None,
    "relu": nn.ReLU,
    "leakyrelu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "softplus": nn.Softplus,
}
"""Activation names accepted in a layout (case-insensitive)."""


class FeedForward(nn.Module):
    """Fully connected layers with one activation per layer.

    Args:
        widths: [n_in, hidden..., n_out], at least two entries, all positive.
        activations: one name per layer (``len(widths) - 1``), or one name for every hidden
            layer with no activation on the output layer.
        seed: seeds the weight initialisation (PyTorch's default for ``nn.Linear``) without
            touching the global random state.
        dtype: parameter dtype.
    """

    def __init__(
        self,
        widths: Sequence[int],
        activations: str | Sequence[str] = "relu",
        *,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if len(widths) < 2 or min(widths) < 1:
            raise InputError(
                f"layer widths must be at least two positive numbers, got {widths}",
                field="widths",
                fix="give [descriptor features, hidden widths..., LDOS energies]",
            )
        n_layers = len(widths) - 1
        if isinstance(activations, str):
            activations = [activations] * (n_layers - 1) + ["none"]
        activations = [a.lower() for a in activations]
        if len(activations) != n_layers:
            raise InputError(
                f"{n_layers} layers need {n_layers} activations, got {len(activations)}",
                field="activations",
            )
        unknown = [a for a in activations if a not in ACTIVATIONS]
        if unknown:
            raise InputError(
                f"unknown activation {unknown[0]!r}",
                field="activations",
                fix=f"use one of {', '.join(ACTIVATIONS)}",
            )
        self.widths = tuple(widths)
        self.activations = tuple(activations)
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            layers: list[nn.Module] = []
            for n_in, n_out, name in zip(widths[:-1], widths[1:], activations, strict=True):
                layers.append(nn.Linear(n_in, n_out, dtype=dtype))
                activation = ACTIVATIONS[name]
                if activation is not None:
                    layers.append(activation())
            self.layers = nn.Sequential(*layers)
        finally:
            torch.random.set_rng_state(generator_state)

    def forward(self, descriptors: torch.Tensor) -> torch.Tensor:
        """LDOS [n, n_out] (scaled units) of descriptors [n, n_in] (scaled units)."""
        return self.layers(descriptors)

    def layout(self) -> dict[str, list]:
        """Widths and activations, JSON-ready (what a model bundle stores)."""
        return {"widths": list(self.widths), "activations": list(self.activations)}
