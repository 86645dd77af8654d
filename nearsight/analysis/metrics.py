"""Physical errors of a model on held-out snapshots (paper 002's figures of merit).

For every snapshot the network's LDOS goes through the same physics as a DFT LDOS, and the
results are compared with two references:

- QE: its printed total free energy and Fermi level, its band energy from its eigenvalues,
  and pp.x's density. This is what a user cares about.
- the DFT LDOS of the snapshot through our physics ("vs LDOS"): the network's own target.
  The difference between the two references is the broadening of the stored LDOS
  (docs/physics.md), which no model can remove.

Energies are in meV/atom, the Fermi level in meV, the density error is a mean absolute
percentage error (MAPE) over grid points. Snapshots without pseudopotentials (e.g. MALA
files) get only the band terms, against their LDOS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nearsight.data.scaling import Scaler
from nearsight.data.sources import PointSource
from nearsight.energy_report import density_mape_percent
from nearsight.grid import EnergyGrid
from nearsight.io.dataset import Snapshot
from nearsight.model.inference import predict_ldos
from nearsight.model.network import FeedForward
from nearsight.physics.energy import ldos_to_dos, total_energy
from nearsight.physics.fermi import band_observables
from nearsight.physics.reference import band_from_eigenvalues, qe_values
from nearsight.physics.system import EnergySystem
from nearsight.units import BOLTZMANN_EV_PER_K

PARITY_SAMPLES = 20000
"""LDOS values per snapshot kept for a parity plot (a seeded subsample of the grid)."""


@dataclass(frozen=True)
class SnapshotErrors:
    """A model's observables on one snapshot beside the references.

    Attributes:
        name: the snapshot file's name.
        number_of_atoms: atoms in the cell.
        predicted: observables of the predicted LDOS (eV; ``fermi_energy`` in eV).
        ldos_reference: the same from the snapshot's DFT LDOS.
        qe_reference: QE's values under the same keys (empty without QE data).
        errors: predicted − QE (``*_mev_per_atom``, ``fermi_energy_mev``) and density
            MAPE against pp.x, plus the same against the DFT LDOS under ``*_vs_ldos``.
        energies: the energy grid (eV) of ``dos``.
        dos: {"predicted", "reference"} DOS [E] in states/eV.
        parity: {"predicted", "reference"} LDOS samples [PARITY_SAMPLES], 1/(eV·Å³).
    """

    name: str
    number_of_atoms: int
    predicted: dict[str, float]
    ldos_reference: dict[str, float]
    qe_reference: dict[str, float]
    errors: dict[str, float]
    energies: np.ndarray = field(repr=False)
    dos: dict[str, np.ndarray] = field(repr=False)
    parity: dict[str, np.ndarray] = field(repr=False)

    def as_json(self) -> dict[str, Any]:
        return {
            "snapshot": self.name,
            "number_of_atoms": self.number_of_atoms,
            "errors": self.errors,
            "predicted": self.predicted,
            "ldos_reference": self.ldos_reference,
            "qe_reference": self.qe_reference,
        }


def evaluate(
    network: FeedForward,
    input_scaler: Scaler,
    output_scaler: Scaler,
    sources: Sequence[PointSource],
    *,
    device: str = "cpu",
    cache: dict[str, Any] | None = None,
) -> list[SnapshotErrors]:
    """Physical errors of the network on each source.

    Args:
        network, input_scaler, output_scaler: the model.
        sources: snapshots with descriptors and an LDOS.
        device: where the network runs.
        cache: a dict kept between calls (e.g. over epochs) to hold the reference values,
            which do not change; None recomputes them.
    """
    out = []
    for source in sources:
        features = source.features(0, source.n_points)
        shape = (*source.grid_shape, source.energy_grid.n)
        ldos = predict_ldos(network, input_scaler, output_scaler, features, device=device)
        key = str(source.path)
        if cache is not None and key in cache:
            reference = cache[key]
        else:
            reference = _references(source)
            if cache is not None:
                cache[key] = reference
        out.append(_errors(source, ldos.reshape(shape), reference))
    return out


@dataclass(frozen=True)
class _Reference:
    snapshot: Snapshot
    system: EnergySystem | None
    ldos_values: dict[str, float]
    qe_values: dict[str, float]
    ldos_density: np.ndarray | None
    dos: np.ndarray
    parity_index: np.ndarray
    parity_values: np.ndarray


def _references(source: PointSource) -> _Reference:
    snapshot = source.snapshot()
    ldos = source.targets(0, source.n_points).reshape(*source.grid_shape, -1)
    system = None
    if snapshot.pseudopotentials:
        system = EnergySystem.from_snapshot(snapshot, Path(source.path).parent)
    values, density = _observables(ldos, source.energy_grid, snapshot, system)
    qe: dict[str, float] = {}
    if snapshot.qe is not None and system is not None:
        band = None
        if snapshot.qe.eigenvalues.size:
            band = band_from_eigenvalues(
                snapshot.qe.eigenvalues,
                snapshot.qe.k_weights,
                snapshot.qe.number_of_electrons,
                system.kt_ev,
            )
        qe = qe_values(
            snapshot.qe.energies, snapshot.qe.fermi_energy, snapshot.qe.number_of_electrons, band
        )
    rng = np.random.default_rng(0)
    n_values = ldos.size
    index = rng.choice(n_values, size=min(PARITY_SAMPLES, n_values), replace=False)
    return _Reference(
        snapshot=snapshot,
        system=system,
        ldos_values=values,
        qe_values=qe,
        ldos_density=density,
        dos=np.asarray(ldos_to_dos(ldos, snapshot.grid.voxel_volume)),
        parity_index=index,
        parity_values=ldos.reshape(-1)[index].astype(np.float64),
    )


def _observables(
    ldos: np.ndarray, energy_grid: EnergyGrid, snapshot: Snapshot, system: EnergySystem | None
) -> tuple[dict[str, float], np.ndarray | None]:
    """Every term (with pseudopotentials) or the band terms (without)."""
    if system is not None:
        terms, density = total_energy(ldos, energy_grid, system)
        return terms.as_dict(), density
    kt = snapshot.temperature_k * BOLTZMANN_EV_PER_K
    dos = np.asarray(ldos_to_dos(ldos, snapshot.grid.voxel_volume))
    band = band_observables(dos, energy_grid, snapshot.number_of_electrons, kt)
    return {
        "fermi_energy": band.fermi_energy,
        "number_of_electrons": band.number_of_electrons,
        "band_energy": band.band_energy,
        "entropy_contribution": band.entropy_contribution,
    }, None


def _errors(source: PointSource, ldos: np.ndarray, ref: _Reference) -> SnapshotErrors:
    snapshot = ref.snapshot
    predicted, density = _observables(ldos, source.energy_grid, snapshot, ref.system)
    n_atoms = len(snapshot.atoms)
    errors: dict[str, float] = {}
    for suffix, reference in (("", ref.qe_values), ("_vs_ldos", ref.ldos_values)):
        for key in ("band_energy", "total_energy"):
            if key in reference and key in predicted:
                diff = 1e3 * (predicted[key] - reference[key]) / n_atoms
                errors[f"{key}_mev_per_atom{suffix}"] = diff
        if "fermi_energy" in reference:
            errors[f"fermi_energy_mev{suffix}"] = 1e3 * (
                predicted["fermi_energy"] - reference["fermi_energy"]
            )
    if density is not None:
        if snapshot.density is not None:
            errors["density_mape_percent"] = density_mape_percent(density, snapshot.density)
        if ref.ldos_density is not None:
            errors["density_mape_percent_vs_ldos"] = density_mape_percent(density, ref.ldos_density)
    return SnapshotErrors(
        name=Path(source.path).name,
        number_of_atoms=n_atoms,
        predicted=predicted,
        ldos_reference=ref.ldos_values,
        qe_reference=ref.qe_values,
        errors=errors,
        energies=source.energy_grid.energies,
        dos={
            "predicted": np.asarray(ldos_to_dos(ldos, snapshot.grid.voxel_volume)),
            "reference": ref.dos,
        },
        parity={
            "predicted": ldos.reshape(-1)[ref.parity_index].astype(np.float64),
            "reference": ref.parity_values,
        },
    )


def summarize(errors: Sequence[SnapshotErrors]) -> dict[str, float]:
    """Mean absolute errors over snapshots (MAE; the MAPE is averaged as it is).

    Keys: ``band_energy_mae_mev_per_atom``, ``total_energy_mae_mev_per_atom``,
    ``fermi_energy_mae_mev``, ``density_mape_percent``, the same with ``_vs_ldos``, and
    ``total_energy_max_mev_per_atom`` (the largest absolute error); keys whose errors no
    snapshot has are left out.
    """
    names = {
        "band_energy_mev_per_atom": "band_energy_mae_mev_per_atom",
        "total_energy_mev_per_atom": "total_energy_mae_mev_per_atom",
        "fermi_energy_mev": "fermi_energy_mae_mev",
        "density_mape_percent": "density_mape_percent",
    }
    out: dict[str, float] = {}
    for suffix in ("", "_vs_ldos"):
        for key, name in names.items():
            values = [e.errors[key + suffix] for e in errors if key + suffix in e.errors]
            if values:
                out[name + suffix] = float(np.mean(np.abs(values)))
    totals = [
        abs(e.errors["total_energy_mev_per_atom"])
        for e in errors
        if "total_energy_mev_per_atom" in e.errors
    ]
    if totals:
        out["total_energy_max_mev_per_atom"] = float(max(totals))
    return out
