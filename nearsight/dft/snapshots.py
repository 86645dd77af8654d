"""Atomic configurations to run DFT on: from files, thermal displacements or EMT MD."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.build import bulk
from ase.data import atomic_masses, atomic_numbers
from ase.io import read

from nearsight.config import SnapshotsConfig
from nearsight.errors import InputError

_HBAR_EV_S = 6.582119569e-16
_AMU_EV_S2_PER_A2 = 1.66053906660e-27 / 1.602176634e-19 * 1e-20  # kg -> eV·s²/Å²


def make_snapshots(cfg: SnapshotsConfig, seed: int, base_dir: Path) -> list[Atoms]:
    """The configurations ``cfg`` asks for, reproducible from ``seed``.

    ``base_dir`` resolves relative file names (the directory of the config file).
    """
    if cfg.source == "files":
        return _from_files(cfg, base_dir)
    crystal = perfect_crystal(cfg)
    rng = np.random.default_rng(seed)
    if cfg.source == "thermal":
        return [thermal_displacements(crystal, cfg, rng) for _ in range(cfg.count)]
    return emt_md_frames(crystal, cfg, rng)


def perfect_crystal(cfg: SnapshotsConfig) -> Atoms:
    """The ideal crystal of ``cfg`` repeated ``cfg.supercell`` times."""
    if cfg.element not in atomic_numbers:
        raise InputError(
            f"unknown element {cfg.element!r}",
            field="snapshots.element",
            fix="give a chemical symbol such as 'Al'",
        )
    try:
        cell = bulk(cfg.element, cfg.lattice, a=cfg.lattice_constant_angstrom, cubic=cfg.cubic)
    except (ValueError, RuntimeError) as err:
        raise InputError(
            f"cannot build {cfg.lattice} {cfg.element}: {err}",
            field="snapshots.lattice",
            fix="check lattice and cubic",
        ) from err
    return cell.repeat(cfg.supercell)


def debye_displacement_std(element: str, temperature_k: float, debye_temperature_k: float) -> float:
    """RMS displacement along one axis (Å) in the high-temperature Debye model.

    <u_x²> = 3 ħ² T / (m k_B Θ_D²); for Al at 298 K (Θ_D = 428 K) this is 0.094 Å.
    """
    mass = atomic_masses[atomic_numbers[element]] * _AMU_EV_S2_PER_A2
    kb = units.kB
    return float(np.sqrt(3 * _HBAR_EV_S**2 * temperature_k / (mass * kb * debye_temperature_k**2)))


def thermal_displacements(crystal: Atoms, cfg: SnapshotsConfig, rng: np.random.Generator) -> Atoms:
    """``crystal`` with independent Gaussian displacements of the Debye model's width."""
    assert cfg.debye_temperature_k is not None  # checked when the config was loaded
    sigma = debye_displacement_std(cfg.element, cfg.temperature_k, cfg.debye_temperature_k)
    atoms = crystal.copy()
    atoms.positions += rng.normal(0.0, sigma, size=atoms.positions.shape)
    return atoms


def emt_md_frames(crystal: Atoms, cfg: SnapshotsConfig, rng: np.random.Generator) -> list[Atoms]:
    """Frames of a Langevin MD run at ``cfg.temperature_k`` with ASE's EMT potential."""
    from ase.calculators.emt import EMT, parameters
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import thermalize_momenta

    if cfg.element not in parameters:
        raise InputError(
            f"EMT has no parameters for {cfg.element}",
            field="snapshots.source",
            fix=f"use source = 'thermal' or 'files' (EMT knows {', '.join(sorted(parameters))})",
        )
    atoms = crystal.copy()
    atoms.calc = EMT()
    # Langevin's own centre-of-mass fix biases small cells; the constraint does not.
    atoms.set_constraint(FixCom())
    thermalize_momenta(atoms, temperature_K=cfg.temperature_k, rng=rng)
    dyn = Langevin(
        atoms,
        timestep=cfg.md_timestep_fs * units.fs,
        temperature_K=cfg.temperature_k,
        friction=cfg.md_friction_per_fs / units.fs,
        fixcm=False,
        rng=rng,
    )
    dyn.run(cfg.md_equilibration)
    frames = []
    for _ in range(cfg.count):
        dyn.run(cfg.md_interval)
        frame = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
        frame.wrap()
        frames.append(frame)
    return frames


def _from_files(cfg: SnapshotsConfig, base_dir: Path) -> list[Atoms]:
    frames: list[Atoms] = []
    for name in cfg.files:
        path = (base_dir / name) if not Path(name).is_absolute() else Path(name)
        if not path.is_file():
            raise InputError(
                "structure file not found",
                path=path,
                field="snapshots.files",
                fix="list existing files, relative to the config file",
            )
        try:
            images = read(path, index=":")
        except Exception as err:  # ASE raises many types for unreadable files
            raise InputError(
                f"ASE cannot read this structure: {err}",
                path=path,
                field="snapshots.files",
                fix="give a format ASE reads (extxyz, cif, POSCAR, pw.x input, ...)",
            ) from err
        for i, atoms in enumerate(images):
            if atoms.cell.rank != 3:
                raise InputError(
                    f"frame {i} has no 3D cell",
                    path=path,
                    field="snapshots.files",
                    fix="DFT needs a periodic cell: add lattice vectors",
                )
            unknown = sorted(set(atoms.get_chemical_symbols()) - set(atomic_numbers))
            if unknown:
                raise InputError(f"unknown elements {unknown}", path=path)
            atoms.pbc = True
            frames.append(atoms)
    return frames
