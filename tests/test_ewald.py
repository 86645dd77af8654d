"""Tests of ``nearsight.physics.ewald``.

The energy is checked against the Madelung constants of rock salt and caesium chloride,
against an O(N²) reference written here (explicit plane waves, explicit lattice images),
against the "ewald contribution" pw.x printed (live runs of the session fixtures and the
stored outputs of ``tests/data/pwout``), and for independence of α, translation invariance
and extensivity.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from conftest import QERun
from scipy.special import erfc

from nearsight.errors import InputError
from nearsight.io.qe_output import read_pw_output
from nearsight.io.upf import read_upf
from nearsight.physics.ewald import ewald_energy, qe_ewald_alpha
from nearsight.physics.reciprocal import ReciprocalGrid
from nearsight.physics.structure_factor import structure_factor_direct
from nearsight.units import BOHR_ANGSTROM, HARTREE_EV

DATA = Path(__file__).parent / "data" / "pwout"

# 0.1 meV per atom: QE truncates its two sums (a few µeV here) and prints 1e-8 Ry.
QE_TOL_EV_PER_ATOM = 1e-4

TRICLINIC = np.array([[4.0, 0.0, 0.0], [3.5, 2.0, 0.0], [-1.8, 1.7, 3.0]])


def _ewald_reference(
    positions: np.ndarray,
    cell: np.ndarray,
    charges: np.ndarray,
    alpha: float,
    *,
    ecutrho_ry: float | None = None,
    grid: tuple[int, int, int] | None = None,
    r_max: float | None = None,
) -> float:
    """QE's Ewald energy (eV) by brute force: every G of a grid, every image in a box.

    Converged by default (α in Bohr⁻²); ``ecutrho_ry``, ``grid`` and ``r_max`` (Bohr) impose
    QE's own truncations instead.
    """
    volume = np.linalg.det(cell) / BOHR_ANGSTROM**3
    if grid is None:
        g_max = 2.0 * math.sqrt(alpha) * 6.1 / BOHR_ANGSTROM
        grid = tuple(
            2 * math.ceil(g_max * a / (2 * math.pi)) + 1 for a in np.linalg.norm(cell, axis=1)
        )
    rgrid = ReciprocalGrid.of(cell, grid)
    s2 = np.abs(structure_factor_direct(positions, rgrid, charges)) ** 2
    g2 = rgrid.g2 * BOHR_ANGSTROM**2
    keep = rgrid.within(ecutrho_ry) & (g2 > 0)
    terms = rgrid.multiplicity * s2 * np.exp(-g2 / (4 * alpha)) / np.where(g2 > 0, g2, 1.0)
    e_g = 2 * math.pi / volume * np.sum(terms[keep])

    r_max = 6.1 / math.sqrt(alpha) if r_max is None else r_max
    cell_bohr = cell / BOHR_ANGSTROM
    plane_distance = volume / np.linalg.norm(
        np.cross(cell_bohr[[1, 2, 0]], cell_bohr[[2, 0, 1]]), axis=1
    )
    n_max = np.ceil(r_max / plane_distance).astype(int) + 1
    pos = positions / BOHR_ANGSTROM
    diff = pos[:, None, :] - pos[None, :, :]
    qq = charges[:, None] * charges[None, :]
    e_r = 0.0
    for n in np.ndindex(*(2 * n_max + 1)):
        shift = (np.asarray(n) - n_max) @ cell_bohr
        d = np.linalg.norm(diff + shift, axis=2)
        pair = (d > 1e-8) & (d <= r_max)
        e_r += 0.5 * np.sum(qq[pair] * erfc(math.sqrt(alpha) * d[pair]) / d[pair])

    q = np.sum(charges)
    e = (
        e_g
        + e_r
        - math.pi * q**2 / (2 * volume * alpha)
        - math.sqrt(alpha / math.pi) * np.sum(charges**2)
    )
    return float(e * HARTREE_EV)


def _random_cell() -> tuple[np.ndarray, np.ndarray]:
    """Five atoms of charges 1..3 (charged cell) in the triclinic cell, some outside it."""
    rng = np.random.default_rng(11)
    positions = rng.uniform(-0.5, 1.5, size=(5, 3)) @ TRICLINIC
    return positions, np.array([1.0, 3.0, 2.0, 3.0, 1.0])


# --- exact values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("structure", "a", "madelung", "nn_over_a"),
    [
        ("rocksalt", 5.64, 1.747564594633, 0.5),
        ("cesiumchloride", 4.12, 1.762674773070, math.sqrt(3) / 2),
    ],
)
def test_madelung_constants(structure: str, a: float, madelung: float, nn_over_a: float) -> None:
    formula = "NaCl" if structure == "rocksalt" else "CsCl"
    atoms = bulk(formula, structure, a=a, cubic=True)
    charges = np.where(atoms.numbers == atoms.numbers[0], 1.0, -1.0)
    energy_ha = ewald_energy(atoms.positions, atoms.cell[:], charges) / HARTREE_EV
    pairs = len(atoms) // 2
    got = -energy_ha / pairs * (nn_over_a * a / BOHR_ANGSTROM)
    assert got == pytest.approx(madelung, rel=1e-9)


def test_matches_brute_force_reference() -> None:
    positions, charges = _random_cell()
    for alpha in (0.4, 1.5):
        expected = _ewald_reference(positions, TRICLINIC, charges, alpha)
        got = ewald_energy(positions, TRICLINIC, charges, alpha=alpha)
        assert got == pytest.approx(expected, abs=1e-9)


# --- invariances ------------------------------------------------------------------------


def test_independent_of_alpha() -> None:
    positions, charges = _random_cell()
    energies = [
        ewald_energy(positions, TRICLINIC, charges, alpha=alpha) for alpha in (0.25, 0.8, 2.5)
    ]
    energies.append(ewald_energy(positions, TRICLINIC, charges))
    energies.append(ewald_energy(positions, TRICLINIC, charges, ecutrho_ry=120.0))
    assert np.ptp(energies) <= 1e-9


def test_explicit_alpha_wins_over_ecutrho() -> None:
    positions, charges = _random_cell()
    # With ecutrho = 1 Ry QE's rule finds no α; an explicit α must not even ask.
    a = ewald_energy(positions, TRICLINIC, charges, alpha=0.5, ecutrho_ry=1.0)
    assert a == pytest.approx(ewald_energy(positions, TRICLINIC, charges), abs=1e-9)


def test_translation_invariance() -> None:
    positions, charges = _random_cell()
    e = ewald_energy(positions, TRICLINIC, charges)
    shifted = positions + np.array([0.37, -1.21, 2.9]) + 3 * TRICLINIC[1]
    assert ewald_energy(shifted, TRICLINIC, charges) == pytest.approx(e, abs=1e-9)


def test_supercell_is_extensive() -> None:
    positions, charges = _random_cell()
    atoms = Atoms(positions=positions, cell=TRICLINIC, charges=charges, pbc=True)
    big = atoms.repeat(2)
    e = ewald_energy(positions, TRICLINIC, charges)
    e8 = ewald_energy(big.positions, big.cell[:], big.get_initial_charges())
    assert e8 == pytest.approx(8 * e, rel=1e-9)


# --- Quantum ESPRESSO -------------------------------------------------------------------


def test_qe_alpha_rule() -> None:
    assert qe_ewald_alpha(0.0, 48.0) == pytest.approx(2.8)
    alpha = qe_ewald_alpha(6.0, 48.0)

    def bound(a: float) -> float:
        return 2 * 36 * math.sqrt(2 * a / (2 * math.pi)) * math.erfc(math.sqrt(48 / 4 / a))

    assert bound(alpha) <= 1e-7 < bound(alpha + 0.1)
    assert alpha == pytest.approx(0.6)


@pytest.mark.parametrize("fixture", ["qe_al4", "qe_al1"])
def test_matches_live_pw_x(fixture: str, request: pytest.FixtureRequest) -> None:
    run: QERun = request.getfixturevalue(fixture)
    pw = read_pw_output(run.pw_output)
    atoms = run.atoms  # the geometry as given to pw.x, not its rounded printout
    charges = np.full(len(atoms), read_upf(run.pseudo).z_valence)
    e = ewald_energy(atoms.positions, atoms.cell[:], charges, ecutrho_ry=pw.ecutrho_ry)
    assert abs(e - pw.energies.ewald) <= QE_TOL_EV_PER_ATOM * len(atoms)
    # With QE's truncations (ecutrho sphere, pairs within 4/√α) the reference gives what
    # pw.x printed to its 1e-8 Ry: the formula and α are QE's, the rest is convergence.
    alpha = qe_ewald_alpha(float(np.sum(charges)), pw.ecutrho_ry)
    truncated = _ewald_reference(
        atoms.positions,
        atoms.cell[:],
        charges,
        alpha,
        ecutrho_ry=pw.ecutrho_ry,
        grid=pw.fft_grid,
        r_max=4.0 / math.sqrt(alpha),
    )
    assert truncated == pytest.approx(pw.energies.ewald, abs=2e-7)
    assert e == pytest.approx(truncated, abs=1e-5)


@pytest.mark.parametrize("name", ["al2_scf", "al2_vcrelax", "si2_fixed", "c2_paw"])
def test_matches_stored_pw_x_outputs(name: str) -> None:
    pw = read_pw_output(DATA / f"{name}.out")
    # Neutral one-element runs: each atom carries the valence charge of the electrons.
    charges = np.full(len(pw.atoms), pw.number_of_electrons / len(pw.atoms))
    e = ewald_energy(pw.atoms.positions, pw.atoms.cell[:], charges, ecutrho_ry=pw.ecutrho_ry)
    assert abs(e - pw.energies.ewald) <= QE_TOL_EV_PER_ATOM * len(pw.atoms)


# --- bad input --------------------------------------------------------------------------


def test_bad_input() -> None:
    positions, charges = _random_cell()
    with pytest.raises(InputError, match="NaN"):
        ewald_energy(np.where(positions > 2, np.nan, positions), TRICLINIC, charges)
    with pytest.raises(InputError, match="charges"):
        ewald_energy(positions, TRICLINIC, charges[:-1])
    with pytest.raises(InputError, match="shape"):
        ewald_energy(positions[:, :2], TRICLINIC, charges)
    with pytest.raises(InputError, match="volume"):
        ewald_energy(positions, TRICLINIC[[1, 0, 2]], charges)
    with pytest.raises(InputError, match="volume"):
        ewald_energy(positions, np.diag([4.0, 4.0, 0.0]), charges)
    with pytest.raises(InputError, match="alpha"):
        ewald_energy(positions, TRICLINIC, charges, alpha=-1.0)
    with pytest.raises(InputError, match="alpha"):
        ewald_energy(positions, TRICLINIC, charges, ecutrho_ry=1.0)
    with pytest.raises(InputError, match="ecutrho"):
        qe_ewald_alpha(3.0, -5.0)
