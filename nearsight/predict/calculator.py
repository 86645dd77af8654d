"""The model as an ASE calculator: ``atoms.calc = Calculator("model.safetensors")``.

The energy is the predicted total free energy (eV). Forces and stress are not implemented
yet; asking for them raises ASE's ``PropertyNotImplementedError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator as AseCalculator
from ase.calculators.calculator import all_changes

from nearsight.model.bundle import Bundle
from nearsight.predict.predictor import Prediction, Predictor


class Calculator(AseCalculator):
    """ASE calculator of the total free energy predicted by a nearsight model.

    The descriptors of the last structure are kept (8 × F bytes a grid point) and reused
    while positions, cell, atomic numbers and periodicity stay the same, e.g. when results
    are re-requested after :meth:`reset`; any change to those recomputes them.

    Args:
        bundle: a :class:`Bundle` or the path of a bundle file.
        **predictor_kwargs: passed to :class:`Predictor` (device, chunk_points, method,
            progress, scratch_dir).

    Attributes:
        predictor: the :class:`Predictor` doing the work.
        last_prediction: the full :class:`Prediction` of the last calculation (terms,
            density, DOS, timings), or None before the first.
    """

    implemented_properties = ["energy", "free_energy"]

    def __init__(self, bundle: Bundle | str | PathLike[str], **predictor_kwargs: Any) -> None:
        super().__init__()
        self.predictor = Predictor(bundle, **predictor_kwargs)
        self.last_prediction: Prediction | None = None
        self._key: tuple[np.ndarray, ...] | None = None
        self._descriptors: np.ndarray | None = None

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = tuple(all_changes),
    ) -> None:
        """Predict the energy of ``atoms`` (or of the calculator's atoms) into ``results``."""
        super().calculate(atoms, list(properties), list(system_changes))
        key = _structure_key(self.atoms)
        if self._key is None or not all(
            np.array_equal(a, b) for a, b in zip(key, self._key, strict=True)
        ):
            self._descriptors = self.predictor.descriptors(self.atoms)
            self._key = key
        prediction = self.predictor.predict(self.atoms, descriptors=self._descriptors)
        self.last_prediction = prediction
        energy = float(prediction.terms.total_energy)
        # The predicted total is the Mermin free energy (with -TS); ASE's "energy" is the
        # same number here: there is no zero-smearing extrapolation to report.
        self.results = {"energy": energy, "free_energy": energy}


def _structure_key(atoms: Atoms) -> tuple[np.ndarray, ...]:
    """What the descriptors depend on: positions, cell, atomic numbers and periodicity."""
    return (
        atoms.positions.copy(),
        np.asarray(atoms.cell[:]).copy(),
        atoms.numbers.copy(),
        atoms.pbc.copy(),
    )
