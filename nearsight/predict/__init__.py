"""Prediction with a trained model: energies, densities and DOS of new structures.

- :class:`~nearsight.predict.predictor.Predictor`: streamed prediction over the grid.
- :class:`~nearsight.predict.calculator.Calculator`: the same as an ASE calculator.
"""

from nearsight.predict.calculator import Calculator
from nearsight.predict.predictor import Prediction, Predictor

__all__ = ["Calculator", "Prediction", "Predictor"]
