"""What the energy terms need besides grid data: atoms, pseudopotentials, cutoffs.

:class:`EnergySystem` gathers and checks it once, from a snapshot file or from a pw.x output
and its pseudopotential directory, so that every term is computed for the same physics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from nearsight.errors import InputError
from nearsight.io.dataset import Snapshot
from nearsight.io.qe_output import PWOutput
from nearsight.io.upf import Pseudopotential, canonical_xc, parse_upf, read_upf
from nearsight.physics.xc import FUNCTIONALS
from nearsight.units import BOLTZMANN_EV_PER_K


@dataclass(frozen=True, eq=False)
class EnergySystem:
    """The structure and physics settings the total energy is computed for.

    Attributes:
        atoms: positions and cell, Å.
        pseudopotentials: element -> norm-conserving pseudopotential.
        temperature_k: electronic temperature (Fermi-Dirac), K.
        number_of_electrons: valence electrons in the cell.
        ecutrho_ry: QE's density cutoff (Ry), which bounds the G vectors of the core
            density and of gradients; None keeps the whole FFT grid.
        functional: canonical exchange-correlation name, from the pseudopotentials.
    """

    atoms: Atoms
    pseudopotentials: dict[str, Pseudopotential]
    temperature_k: float
    number_of_electrons: float
    ecutrho_ry: float | None
    functional: str

    @property
    def kt_ev(self) -> float:
        """k_B T in eV."""
        return self.temperature_k * BOLTZMANN_EV_PER_K

    @property
    def charges(self) -> np.ndarray:
        """Valence charge Z of each atom, [N]."""
        return np.array(
            [self.pseudopotentials[s].z_valence for s in self.atoms.get_chemical_symbols()]
        )

    @classmethod
    def create(
        cls,
        atoms: Atoms,
        pseudopotentials: Mapping[str, Pseudopotential],
        temperature_k: float,
        *,
        number_of_electrons: float | None = None,
        ecutrho_ry: float | None = None,
    ) -> EnergySystem:
        """Check the inputs and build the system.

        Raises:
            InputError: an element without a pseudopotential; an ultrasoft or PAW
                pseudopotential (its augmentation charges are not in an LDOS or a pp.x
                density, so the terms would be silently wrong); pseudopotentials of
                different or unsupported functionals; a non-positive temperature, cell
                volume or electron count.
        """
        pseudos = dict(pseudopotentials)
        missing = sorted(set(atoms.get_chemical_symbols()) - set(pseudos))
        if missing:
            raise InputError(
                f"no pseudopotential for {', '.join(missing)}",
                field="pseudopotentials",
                fix="give a UPF file for every element of the structure",
            )
        used = {el: pp for el, pp in pseudos.items() if el in set(atoms.get_chemical_symbols())}
        names = set()
        for pp in used.values():
            if pp.pseudo_type != "NC":
                raise InputError(
                    f"{pp.element} pseudopotential is {pp.pseudo_type}: the energy terms need "
                    "norm-conserving pseudopotentials (ultrasoft and PAW augmentation "
                    "charges are not part of the LDOS)",
                    path=pp.path,
                    field="pseudo_type",
                    fix="run the DFT with a norm-conserving pseudopotential",
                )
            name = canonical_xc(pp.functional)
            if name not in FUNCTIONALS:
                raise InputError(
                    f"{pp.element} pseudopotential uses the functional {pp.functional!r}, "
                    "which is not supported",
                    path=pp.path,
                    field="functional",
                    fix=f"use a pseudopotential made with one of {', '.join(FUNCTIONALS)}",
                )
            names.add(name)
        if len(names) > 1:
            raise InputError(
                f"pseudopotentials use different functionals: {', '.join(sorted(names))}",
                field="functional",
                fix="use pseudopotentials generated with one functional",
            )
        if not (np.isfinite(temperature_k) and temperature_k > 0):
            raise InputError(
                f"temperature must be positive, got {temperature_k} K",
                field="temperature",
                fix="give the electronic temperature of the DFT run in K",
            )
        volume = float(np.linalg.det(np.asarray(atoms.cell[:])))
        if not volume > 0:
            raise InputError(
                f"cell volume must be positive, got {volume:.6g} Å³",
                field="cell",
                fix="give a right-handed cell with three non-zero lattice vectors",
            )
        charge = float(sum(used[s].z_valence for s in atoms.get_chemical_symbols()))
        electrons = charge if number_of_electrons is None else float(number_of_electrons)
        if not (np.isfinite(electrons) and electrons > 0):
            raise InputError(
                f"number of electrons must be positive, got {electrons}",
                field="number_of_electrons",
            )
        return cls(atoms.copy(), used, float(temperature_k), electrons, ecutrho_ry, names.pop())

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot, path: str | Path = "snapshot") -> EnergySystem:
        """The system of a snapshot file, with the pseudopotentials stored inside it."""
        pseudos = {
            el: parse_upf(rec.text.encode(), Path(path) / rec.filename)
            for el, rec in snapshot.pseudopotentials.items()
        }
        return cls.create(
            snapshot.atoms,
            pseudos,
            snapshot.temperature_k,
            number_of_electrons=snapshot.number_of_electrons,
            ecutrho_ry=None if snapshot.qe is None else snapshot.qe.ecutrho_ry,
        )

    @classmethod
    def from_pw_output(
        cls, output: PWOutput, pseudo_dir: str | Path, *, temperature_k: float | None = None
    ) -> EnergySystem:
        """The system of a pw.x run, reading its pseudopotentials from ``pseudo_dir``.

        The temperature is QE's Fermi-Dirac ``degauss`` unless given.
        """
        pseudo_dir = Path(pseudo_dir)
        pseudos: dict[str, Pseudopotential] = {}
        for species, (filename, md5) in output.pseudopotentials.items():
            pseudo = read_upf(pseudo_dir / Path(filename).name)
            if md5 and pseudo.md5 != md5:
                raise InputError(
                    f"is not the file pw.x used for species {species} (MD5 {pseudo.md5}, "
                    f"pw.x printed {md5})",
                    path=pseudo.path,
                    fix="point --pseudo-dir at the pseudopotentials of this pw.x run",
                )
            known = pseudos.get(pseudo.element)
            if known is not None and known.sha256 != pseudo.sha256:
                raise InputError(
                    f"two pseudopotentials for {pseudo.element} ({known.path.name}, "
                    f"{pseudo.path.name}): one per element is supported",
                    path=output.path,
                    field="ATOMIC_SPECIES",
                )
            pseudos[pseudo.element] = pseudo
        if temperature_k is None:
            if output.smearing != "fermi-dirac" or output.degauss is None:
                raise InputError(
                    f"pw.x run used smearing {output.smearing!r}, not Fermi-Dirac, so it "
                    "names no electronic temperature",
                    path=output.path,
                    field="smearing",
                    fix="pass --temperature K",
                )
            temperature_k = output.degauss / BOLTZMANN_EV_PER_K
        return cls.create(
            output.atoms,
            pseudos,
            temperature_k,
            number_of_electrons=output.number_of_electrons,
            ecutrho_ry=output.ecutrho_ry,
        )
