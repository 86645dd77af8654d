"""nearsight: machine-learning surrogates for density functional theory.

The electronic structure at a point depends only on atoms nearby (Kohn's nearsightedness),
so a model that is local in space, trained on small Quantum ESPRESSO cells, predicts the
local density of states of cells far larger than DFT can reach.
"""

__version__ = "0.1.0"
