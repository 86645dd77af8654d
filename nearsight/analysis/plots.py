"""PNG plots of a model against DFT: LDOS parity and DOS comparison (matplotlib, no screen)."""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import numpy as np

from nearsight.analysis.metrics import SnapshotErrors
from nearsight.io.atomic import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on compute nodes; never open a window
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | PathLike[str]) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=130, bbox_inches="tight")
    return Path(path)


def parity_plot(errors: Sequence[SnapshotErrors], path: str | PathLike[str]) -> Path:
    """Predicted against DFT LDOS values (a sample of each snapshot's grid and energies)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    lo, hi = np.inf, -np.inf
    for e in errors:
        ref, pred = e.parity["reference"], e.parity["predicted"]
        ax.scatter(ref, pred, s=2, alpha=0.3, label=e.name, rasterized=True)
        lo, hi = min(lo, ref.min(), pred.min()), max(hi, ref.max(), pred.max())
    ax.plot([lo, hi], [lo, hi], color="black", lw=0.8)
    ax.set_xlabel("DFT LDOS (1/(eV·Å³))")
    ax.set_ylabel("predicted LDOS (1/(eV·Å³))")
    ax.set_title("LDOS parity")
    if len(errors) <= 8:
        ax.legend(markerscale=4, fontsize="small")
    out = _save(fig, path)
    plt.close(fig)
    return out


def dos_plot(errors: Sequence[SnapshotErrors], path: str | PathLike[str]) -> Path:
    """Predicted and DFT DOS per snapshot, one panel each, with both Fermi levels."""
    plt = _pyplot()
    n = len(errors)
    fig, axes = plt.subplots(n, 1, figsize=(6, 2.2 * n), sharex=True, squeeze=False)
    for ax, e in zip(axes[:, 0], errors, strict=True):
        ax.plot(e.energies, e.dos["reference"], color="black", lw=1.2, label="DFT LDOS")
        ax.plot(e.energies, e.dos["predicted"], color="tab:red", lw=1.0, ls="--", label="model")
        ax.axvline(e.ldos_reference["fermi_energy"], color="black", lw=0.6, ls=":")
        ax.axvline(e.predicted["fermi_energy"], color="tab:red", lw=0.6, ls=":")
        ax.set_ylabel("DOS (1/eV)")
        ax.set_title(e.name, fontsize="small")
    axes[0, 0].legend(fontsize="small")
    axes[-1, 0].set_xlabel("energy (eV); dotted: Fermi levels")
    out = _save(fig, path)
    plt.close(fig)
    return out


def training_plot(history: Sequence[dict], path: str | PathLike[str]) -> Path:
    """Training and validation loss (scaled MSE) per epoch, log scale, best epoch marked."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.semilogy(epochs, [h["train_loss"] for h in history], label="training")
    ax.semilogy(epochs, [h["validation_loss"] for h in history], label="validation")
    best = min(history, key=lambda h: h["validation_loss"])
    ax.axvline(best["epoch"], color="grey", lw=0.6, ls=":", label=f"best (epoch {best['epoch']})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (MSE of the scaled LDOS)")
    ax.legend(fontsize="small")
    out = _save(fig, path)
    plt.close(fig)
    return out
