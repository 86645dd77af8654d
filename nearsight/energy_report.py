"""``nearsight energy``: every energy term from a snapshot or from raw QE files, beside QE's.

Loads the inputs (a snapshot file, or a pw.x output with pp.x cubes and the UPF files),
checks that they belong together, runs :mod:`nearsight.physics.energy`, and returns a
:class:`EnergyReport` that the CLI prints as a table or as JSON.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nearsight.errors import InputError
from nearsight.grid import EnergyGrid
from nearsight.io.cube import read_cube, read_ldos_cubes
from nearsight.io.dataset import read_snapshot
from nearsight.io.qe_output import read_pw_output
from nearsight.physics.energy import density_terms, total_energy
from nearsight.physics.reference import ENERGY_KEYS, band_from_eigenvalues, qe_values
from nearsight.physics.system import EnergySystem

_LABELS = {
    "fermi_energy": "Fermi energy",
    "number_of_electrons": "electrons",
    "band_energy": "band energy",
    "entropy_contribution": "entropy (-TS)",
    "one_electron": "one-electron",
    "hartree": "Hartree",
    "xc": "exchange-correlation",
    "ewald": "Ewald",
    "total_energy": "total free energy",
}
DENSITY_KEYS = ("hartree", "xc", "ewald")
"""The keys reported when only a density is given."""


@dataclass(frozen=True)
class Row:
    """One line of the table: ours, QE's, and the difference in ``unit``."""

    key: str
    label: str
    ours: float
    qe: float | None
    difference: float | None
    unit: str


@dataclass(frozen=True)
class EnergyReport:
    """Our energy terms and QE's for one structure (eV)."""

    source: str
    number_of_atoms: int
    grid_shape: tuple[int, int, int]
    temperature_k: float
    functional: str
    method: str
    from_ldos: bool
    ours: dict[str, float]
    qe: dict[str, float]
    density_mape_percent: float | None = None

    def rows(self) -> list[Row]:
        """Table rows in report order; differences per atom except E_F (meV) and N_e."""
        out = []
        for key in ENERGY_KEYS:
            if key not in self.ours:
                continue
            ours, theirs = self.ours[key], self.qe.get(key)
            if key == "number_of_electrons":
                diff, unit = (None if theirs is None else ours - theirs), "e"
            elif key == "fermi_energy":
                diff, unit = (None if theirs is None else 1e3 * (ours - theirs)), "meV"
            else:
                per_atom = 1e3 / self.number_of_atoms
                diff = None if theirs is None else per_atom * (ours - theirs)
                unit = "meV/atom"
            out.append(Row(key, _LABELS[key], ours, theirs, diff, unit))
        return out

    def as_json(self) -> dict:
        """Our values under :data:`ENERGY_KEYS`, QE's under ``qe``, and the context.

        ``density_mape_percent`` compares the LDOS density with pp.x's, when both exist.
        """
        return self.ours | {
            "qe": self.qe,
            "number_of_atoms": self.number_of_atoms,
            "grid_shape": list(self.grid_shape),
            "temperature_k": self.temperature_k,
            "functional": self.functional,
            "method": self.method if self.from_ldos else None,
            "density_mape_percent": self.density_mape_percent,
            "source": self.source,
        }


def energy_report(
    *,
    dataset: Path | None = None,
    qe_output: Path | None = None,
    ldos_glob: str | None = None,
    density_cube: Path | None = None,
    energy_grid: tuple[float, float, float] | None = None,
    pseudo_dir: Path | None = None,
    temperature_k: float | None = None,
    method: str = "analytic",
) -> EnergyReport:
    """Compute the report from a snapshot file or from raw QE files (see the CLI help)."""
    if (dataset is None) == (qe_output is None):
        raise InputError(
            "give either a snapshot file or --qe-output (with --ldos or --density)",
            fix="nearsight energy SNAPSHOT.h5, or nearsight energy --qe-output pw.out "
            "--ldos 'ldos*.cube' --pseudo-dir DIR",
        )
    if dataset is not None:
        return _from_dataset(Path(dataset), temperature_k, method)
    return _from_qe_files(
        Path(qe_output), ldos_glob, density_cube, energy_grid, pseudo_dir, temperature_k, method
    )


def _from_dataset(path: Path, temperature_k: float | None, method: str) -> EnergyReport:
    snapshot = read_snapshot(path, ldos=True)
    system = EnergySystem.from_snapshot(snapshot, path)
    if temperature_k is not None:
        system = EnergySystem.create(
            system.atoms,
            system.pseudopotentials,
            temperature_k,
            number_of_electrons=system.number_of_electrons,
            ecutrho_ry=system.ecutrho_ry,
        )
    qe = {}
    if snapshot.qe is not None:
        band = None
        if snapshot.ldos is not None and snapshot.qe.eigenvalues.size:
            band = band_from_eigenvalues(
                snapshot.qe.eigenvalues,
                snapshot.qe.k_weights,
                snapshot.qe.number_of_electrons,
                system.kt_ev,
            )
        qe = qe_values(
            snapshot.qe.energies, snapshot.qe.fermi_energy, snapshot.qe.number_of_electrons, band
        )
    mape = None
    if snapshot.ldos is not None:
        ours, density = _ldos_terms(snapshot.ldos, snapshot.energy_grid, system, method)
        if snapshot.density is not None:
            mape = density_mape_percent(density, snapshot.density)
    elif snapshot.density is not None:
        ours = _density_only(snapshot.density, system)
        qe = {k: v for k, v in qe.items() if k in DENSITY_KEYS}
    else:
        raise InputError(
            "snapshot holds neither an LDOS nor a density",
            path=path,
            fix="rerun `nearsight dft` for it",
        )
    return _report(
        str(path), system, snapshot.grid_shape, method, snapshot.ldos is not None, ours, qe, mape
    )


def _from_qe_files(
    qe_output: Path,
    ldos_glob: str | None,
    density_cube: Path | None,
    energy_grid: tuple[float, float, float] | None,
    pseudo_dir: Path | None,
    temperature_k: float | None,
    method: str,
) -> EnergyReport:
    if ldos_glob is None and density_cube is None:
        raise InputError(
            "--qe-output needs --ldos or --density",
            fix="pass the pp.x LDOS cubes (--ldos 'ldos*.cube') or density cube (--density)",
        )
    output = read_pw_output(qe_output)
    system = EnergySystem.from_pw_output(
        output,
        pseudo_dir if pseudo_dir is not None else qe_output.parent,
        temperature_k=temperature_k,
    )
    if ldos_glob is not None:
        paths = sorted(glob.glob(ldos_glob))
        if not paths:
            raise InputError(
                f"no files match {ldos_glob!r}",
                field="--ldos",
                fix="quote the glob and check the directory, e.g. --ldos 'run/ldos*.cube'",
            )
        ldos, energies, header = read_ldos_cubes(paths, dtype=np.float32)
        _check_shape(header.shape, output.fft_grid, paths[0], qe_output)
        grid = EnergyGrid.from_energies(energies)
        if energy_grid is not None:
            grid = _checked_energy_grid(energy_grid, grid)
        band = None
        if output.eigenvalues.size:
            band = band_from_eigenvalues(
                output.eigenvalues, output.k_weights, output.number_of_electrons, system.kt_ev
            )
        qe = qe_values(_energies(output), output.fermi_energy, output.number_of_electrons, band)
        ours, density = _ldos_terms(ldos, grid, system, method)
        mape = None
        if density_cube is not None:
            cube = read_cube(density_cube, "density")
            _check_shape(cube.shape, output.fft_grid, density_cube, qe_output)
            mape = density_mape_percent(density, cube.data)
        return _report(ldos_glob, system, header.shape, method, True, ours, qe, mape)
    cube = read_cube(density_cube, "density")
    _check_shape(cube.shape, output.fft_grid, density_cube, qe_output)
    qe = qe_values(_energies(output), None, output.number_of_electrons, None)
    qe = {k: v for k, v in qe.items() if k in DENSITY_KEYS}
    ours = _density_only(cube.data, system)
    return _report(str(density_cube), system, cube.shape, method, False, ours, qe)


def _energies(output) -> dict[str, float]:
    e = output.energies
    names = ("total", "one_electron", "hartree", "xc", "ewald", "smearing")
    return {n: getattr(e, n) for n in names if getattr(e, n) is not None}


def _check_shape(shape, fft_grid, path, qe_output) -> None:
    if tuple(shape) != tuple(fft_grid):
        raise InputError(
            f"grid {tuple(shape)} does not match the FFT grid {tuple(fft_grid)} of {qe_output}",
            path=path,
            fix="pass the cubes pp.x wrote for this pw.x run",
        )


def _checked_energy_grid(given: tuple[float, float, float], found: EnergyGrid) -> EnergyGrid:
    emin, de, n = given
    if int(n) != n:
        raise InputError(f"energy count must be an integer, got {n}", field="--energy-grid")
    grid = EnergyGrid(float(emin), float(de), int(n))
    if grid.n != found.n or np.max(np.abs(grid.energies - found.energies)) > 1e-3:
        raise InputError(
            f"--energy-grid {emin} {de} {int(n)} does not match the cubes' energies "
            f"({found.e_min:.4f} to {found.e_max:.4f} eV in {found.n} steps)",
            field="--energy-grid",
            fix="drop --energy-grid (the cubes carry their energies) or correct it",
        )
    return grid


def _ldos_terms(
    ldos, grid, system: EnergySystem, method: str
) -> tuple[dict[str, float], np.ndarray]:
    terms, density = total_energy(ldos, grid, system, method=method)
    values = terms.as_dict()
    return {k: values[k] for k in ENERGY_KEYS}, density


def density_mape_percent(density: np.ndarray, reference: np.ndarray) -> float:
    """Mean absolute percentage error of ``density`` against ``reference`` [nx, ny, nz]."""
    return float(100.0 * np.mean(np.abs(density - reference) / np.abs(reference)))


def _density_only(density, system: EnergySystem) -> dict[str, float]:
    terms = density_terms(density, system)
    return {"hartree": terms.hartree, "xc": terms.xc, "ewald": terms.ewald}


def _report(source, system, shape, method, from_ldos, ours, qe, mape=None) -> EnergyReport:
    return EnergyReport(
        source=source,
        number_of_atoms=len(system.atoms),
        grid_shape=tuple(int(n) for n in shape),
        temperature_k=system.temperature_k,
        functional=system.functional,
        method=method,
        from_ldos=from_ldos,
        ours=ours,
        qe=qe,
        density_mape_percent=mape,
    )
