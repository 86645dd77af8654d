"""numpy or torch, chosen by the input array.

Physics kernels take numpy arrays or torch tensors and return the same kind, so one code
path serves the CPU, CUDA and autograd. Quantities that depend only on geometry (G vectors,
integration weights) are built in numpy float64 and moved next to the data with
:func:`like`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Array = Any
"""A numpy array or a torch tensor."""


def is_tensor(x: object) -> bool:
    """True for a torch tensor (without importing torch when it is not loaded)."""
    return type(x).__module__.startswith("torch")


def like(values: np.ndarray, reference: Array) -> Array:
    """``values`` as the kind of ``reference``: a tensor on its device, else a numpy array."""
    if is_tensor(reference):
        import torch

        dtype = torch.complex128 if np.iscomplexobj(values) else torch.float64
        return torch.as_tensor(values, dtype=dtype, device=reference.device)
    return values


def to_numpy(x: Array) -> np.ndarray:
    """A numpy copy-free view where possible (detached for tensors)."""
    if is_tensor(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def float64(x: Array) -> Array:
    """``x`` in float64, same kind and device."""
    if is_tensor(x):
        import torch

        return x.to(torch.float64)
    return np.asarray(x, dtype=np.float64)


def rfftn(x: Array) -> Array:
    """Real-to-complex FFT over the first three axes."""
    if is_tensor(x):
        import torch

        return torch.fft.rfftn(x, dim=(0, 1, 2))
    return np.fft.rfftn(x, axes=(0, 1, 2))


def irfftn(x: Array, shape: tuple[int, int, int]) -> Array:
    """Inverse of :func:`rfftn` for a real grid of ``shape``."""
    if is_tensor(x):
        import torch

        return torch.fft.irfftn(x, s=shape, dim=(0, 1, 2))
    return np.fft.irfftn(x, s=shape, axes=(0, 1, 2))


def abs2(x: Array) -> Array:
    """|x|² of a complex array."""
    return x.real**2 + x.imag**2


def total(x: Array) -> Array:
    """The sum of all elements (a 0-d tensor for tensors, a float for numpy)."""
    if is_tensor(x):
        return x.sum()
    return float(np.sum(x))
