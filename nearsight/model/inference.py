"""The network applied to descriptor rows: scaled in, LDOS out, in bounded batches."""

from __future__ import annotations

import numpy as np
import torch

from nearsight.data.scaling import Scaler
from nearsight.model.network import FeedForward


def predict_ldos(
    network: FeedForward,
    input_scaler: Scaler,
    output_scaler: Scaler,
    descriptors: np.ndarray,
    *,
    batch_points: int = 65536,
    device: str | torch.device = "cpu",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """LDOS rows of descriptor rows.

    Args:
        network: the trained network (left in eval mode).
        input_scaler, output_scaler: the scalers it was trained with.
        descriptors: [N, F] unscaled descriptors, any float dtype.
        batch_points: rows per forward pass (bounds the memory of the activations).
        device: where the network runs; it is moved there.
        out: optional [N, E] float32 array to fill (e.g. a memory map).

    Returns:
        [N, E] float32 LDOS, 1/(eV·Å³).
    """
    network.eval()
    network.to(device)
    dtype = next(network.parameters()).dtype
    n = descriptors.shape[0]
    if out is None:
        out = np.empty((n, network.widths[-1]), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, n, batch_points):
            rows = np.asarray(descriptors[start : start + batch_points])
            x = torch.as_tensor(np.asarray(input_scaler.transform(rows)), dtype=dtype)
            y = network(x.to(device)).to("cpu", torch.float64).numpy()
            out[start : start + rows.shape[0]] = output_scaler.inverse_transform(y)
    return out
