"""Scalers for network inputs (descriptors) and outputs (LDOS), fitted snapshot by snapshot.

``kind`` is ``"none"``, ``"standard"`` ((x − mean)/std) or ``"minmax"`` ((x − min)/(max − min));
``per_feature`` keeps one mean/scale per column, otherwise one for the whole array. Fitting is
incremental: :meth:`Scaler.partial_fit` merges the statistics of a new block of rows with the
ones so far (Chan et al.'s pairwise update of count, mean and sum of squared deviations, in
float64), so data larger than memory is fitted one snapshot or slab at a time and gives the
same result as one pass over everything. A constant column (std or range 0) is scaled by 1,
so it maps to 0 instead of dividing by zero. Scalers save to and load from JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import numpy as np

from nearsight.errors import InputError
from nearsight.io.atomic import atomic_path

KINDS = ("none", "standard", "minmax")
FORMAT = "nearsight.scaler"


@dataclass
class Scaler:
    """A feature scaler; see the module docstring.

    Attributes:
        kind: "none", "standard" or "minmax".
        per_feature: one mean and scale per column (True) or one for all values (False).
    """

    kind: Literal["none", "standard", "minmax"] = "standard"
    per_feature: bool = True
    count: int = 0
    mean: np.ndarray | None = field(default=None, repr=False)
    m2: np.ndarray | None = field(default=None, repr=False)
    minimum: np.ndarray | None = field(default=None, repr=False)
    maximum: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(
                f"unknown scaler kind {self.kind!r}",
                field="kind",
                fix=f"use one of {', '.join(KINDS)}",
            )

    def partial_fit(self, rows: Any) -> Scaler:
        """Add a block of rows [n, F] (numpy or torch; any float type) to the statistics."""
        x = _as_2d(rows)
        if not np.all(np.isfinite(x)):
            raise InputError("data to fit contain NaN or inf", field="rows")
        if self.mean is not None and self.per_feature and x.shape[1] != self.mean.size:
            raise InputError(
                f"rows have {x.shape[1]} features, the scaler was fitted on {self.mean.size}",
                field="rows",
            )
        values = x if self.per_feature else x.reshape(-1, 1)
        n = values.shape[0]
        if n == 0:
            return self
        mean = values.mean(axis=0)
        m2 = ((values - mean) ** 2).sum(axis=0)
        lo, hi = values.min(axis=0), values.max(axis=0)
        if self.count == 0:
            self.count, self.mean, self.m2, self.minimum, self.maximum = n, mean, m2, lo, hi
            return self
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * n / total)
        self.minimum = np.minimum(self.minimum, lo)
        self.maximum = np.maximum(self.maximum, hi)
        self.count = total
        return self

    @property
    def fitted(self) -> bool:
        return self.kind == "none" or self.count > 0

    def offset_and_scale(self) -> tuple[np.ndarray, np.ndarray]:
        """(offset, scale) with ``scaled = (x − offset) / scale``; [F] or [1] float64."""
        if not self.fitted:
            raise InputError(
                "scaler is not fitted", field="scaler", fix="call partial_fit on the training data"
            )
        if self.kind == "none":
            return np.zeros(1), np.ones(1)
        if self.kind == "standard":
            offset, scale = self.mean, np.sqrt(self.m2 / self.count)
        else:
            offset, scale = self.minimum, self.maximum - self.minimum
        return offset, np.where(scale > 0, scale, 1.0)

    def transform(self, x: Any) -> Any:
        """Scaled ``x`` [..., F], the same kind (numpy or torch) and dtype as ``x``."""
        offset, scale = (self._like(v, x) for v in self.offset_and_scale())
        return (x - offset) / scale

    def inverse_transform(self, x: Any) -> Any:
        """Undo :meth:`transform`."""
        offset, scale = (self._like(v, x) for v in self.offset_and_scale())
        return x * scale + offset

    @staticmethod
    def _like(values: np.ndarray, x: Any) -> Any:
        if type(x).__module__.startswith("torch"):
            import torch

            return torch.as_tensor(values, dtype=x.dtype, device=x.device)
        return values.astype(np.asarray(x).dtype, copy=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state."""

        def plain(a: np.ndarray | None) -> list[float] | None:
            return None if a is None else [float(v) for v in a]

        return {
            "format": FORMAT,
            "kind": self.kind,
            "per_feature": self.per_feature,
            "count": self.count,
            "mean": plain(self.mean),
            "m2": plain(self.m2),
            "minimum": plain(self.minimum),
            "maximum": plain(self.maximum),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | PathLike[str] | None = None) -> Scaler:
        """Rebuild a scaler from :meth:`to_dict` output; InputError names what is wrong."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InputError(
                "not a nearsight scaler", path=source, field="format", fix="give a saved scaler"
            )
        try:
            arrays = {
                k: None if data[k] is None else np.asarray(data[k], dtype=np.float64)
                for k in ("mean", "m2", "minimum", "maximum")
            }
            scaler = cls(str(data["kind"]), bool(data["per_feature"]), int(data["count"]), **arrays)
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(
                f"damaged scaler ({err})", path=source, fix="refit and save the scaler"
            ) from None
        sizes = {a.size for a in arrays.values() if a is not None}
        if len(sizes) > 1 or (scaler.count > 0 and not sizes):
            raise InputError("scaler statistics have inconsistent sizes", path=source)
        return scaler

    def save(self, path: str | PathLike[str]) -> Path:
        """Write the scaler as JSON, atomically."""
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps(self.to_dict(), indent=1))
        return Path(path)

    @classmethod
    def load(cls, path: str | PathLike[str]) -> Scaler:
        """Read a scaler written by :meth:`save`."""
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise InputError("scaler file not found", path=path) from None
        except json.JSONDecodeError as err:
            raise InputError(f"not JSON ({err})", path=path, fix="give a saved scaler") from None
        return cls.from_dict(data, source=path)


def _as_2d(rows: Any) -> np.ndarray:
    if type(rows).__module__.startswith("torch"):
        rows = rows.detach().cpu().numpy()
    x = np.asarray(rows, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        x = x.reshape(-1, x.shape[-1])
    return x
