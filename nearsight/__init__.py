"""nearsight: machine-learning surrogates for density functional theory.

The electronic structure at a point depends only on atoms nearby (Kohn's nearsightedness),
so a model that is local in space, trained on small Quantum ESPRESSO cells, predicts the
local density of states of cells far larger than DFT can reach.
"""

__version__ = "0.1.0"

_LAZY = {
    "Calculator": "nearsight.predict.calculator",
    "Predictor": "nearsight.predict.predictor",
}
"""Public names imported on first use: they pull in torch, which ``import nearsight`` and
the command line's start-up should not pay for."""


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nearsight' has no attribute {name!r}")
