"""Energy terms against the numbers Quantum ESPRESSO printed for the same run.

Tolerances: the issue asks for 0.1 meV/atom on the density terms and 2 meV/atom on the
total from the LDOS. QE prints each term to 1e-8 Ry and pp.x writes cubes with 5
significant digits, which bounds the density-term agreement at about 1e-5 eV; the LDOS
total is limited by the broadening of the LDOS (benchmarks/ldos_broadening.py).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from ase.build import bulk
from conftest import ENERGY_JSON_KEYS, LDA_UPF, PSEUDO_DIR, QE_MISSING, QERun, _qe_run, _run

from nearsight.cli import main
from nearsight.grid import EnergyGrid
from nearsight.io.cube import read_cube, read_ldos_cubes
from nearsight.io.qe_output import read_pw_output
from nearsight.physics.energy import density_terms, total_energy
from nearsight.physics.reference import band_from_eigenvalues
from nearsight.physics.system import EnergySystem

DENSITY_TOLERANCE_MEV_PER_ATOM = 0.1
LDOS_TOLERANCE_MEV_PER_ATOM = 2.0
FERMI_TOLERANCE_MEV = 10.0


@pytest.fixture(scope="module", params=["PW", "PBESOL"])
def qe_other_functional(request, tmp_path_factory) -> QERun:
    """1-atom fcc Al with a core-corrected pseudopotential made by ld1.x for ``param``."""
    if QE_MISSING or shutil.which("ld1.x") is None:
        pytest.skip(
            "Quantum ESPRESSO (pw.x, pp.x, ld1.x) not on PATH: apt-get install quantum-espresso"
        )
    directory = tmp_path_factory.mktemp(f"qe_{request.param.lower()}")
    recipe = (PSEUDO_DIR / "Al.pbe-nlcc-rrkj.ld1.in").read_text()
    upf = f"Al.{request.param.lower()}.UPF"
    recipe = recipe.replace("dft='PBE'", f"dft='{request.param}'")
    recipe = recipe.replace("Al.pbe-nlcc-rrkj.UPF", upf)
    (directory / "ld1.in").write_text(recipe)
    _run(["ld1.x"], directory / "ld1.in", directory / "ld1.out", directory)
    return _qe_run(
        directory / "run",
        bulk("Al", "fcc", a=4.05),
        directory / upf,
        kpts=(4, 4, 4),
        ecutwfc=20.0,
        ldos_window=(7.0, 7.0, 1.0, 0.3),
    )


def _assert_density_terms_match(run: QERun) -> None:
    output = read_pw_output(run.pw_output)
    system = EnergySystem.from_pw_output(output, run.directory)
    density = read_cube(run.density_cube, "density").data
    terms = density_terms(density, system)
    per_atom = 1e3 / len(run.atoms)
    for name in ("hartree", "xc", "ewald"):
        ours, qe = getattr(terms, name), getattr(output.energies, name)
        assert abs(ours - qe) * per_atom < DENSITY_TOLERANCE_MEV_PER_ATOM, (name, ours, qe)


@pytest.mark.parametrize("fixture", ["qe_al4", "qe_al1"])
def test_density_terms_match_qe(fixture, request):
    """Hartree, xc and Ewald from pp.x's density: PBE with core correction in a cubic cell,
    PZ without one in the primitive (non-orthogonal) fcc cell."""
    _assert_density_terms_match(request.getfixturevalue(fixture))


def test_density_terms_match_qe_for_pw_and_pbesol(qe_other_functional):
    """The other supported functionals, each with a core correction."""
    _assert_density_terms_match(qe_other_functional)


def test_core_correction_matters_in_qe_al4(qe_al4):
    """The PBE pseudopotential has a core charge: dropping it misses QE's xc by far."""
    output = read_pw_output(qe_al4.pw_output)
    system = EnergySystem.from_pw_output(output, qe_al4.directory)
    assert system.functional == "PBE"
    assert system.pseudopotentials["Al"].core_correction
    density = read_cube(qe_al4.density_cube, "density").data
    from nearsight.physics.xc import exchange_correlation

    bare = exchange_correlation(density, system.atoms.cell[:], "PBE").energy
    assert abs(bare - output.energies.xc) > 1.0


def test_total_energy_from_ldos_matches_qe(qe_al1_fine_ldos):
    """E_F, band energy and total free energy from pp.x's LDOS of a fresh pw.x run."""
    run = qe_al1_fine_ldos.run
    output = read_pw_output(run.pw_output)
    system = EnergySystem.from_pw_output(output, run.directory)
    ldos, energies, _ = read_ldos_cubes(qe_al1_fine_ldos.cubes)
    terms, density = total_energy(ldos, EnergyGrid.from_energies(energies), system)
    reference = band_from_eigenvalues(
        output.eigenvalues, output.k_weights, output.number_of_electrons, system.kt_ev
    )
    per_atom = 1e3 / len(run.atoms)
    assert abs(terms.fermi_energy - output.fermi_energy) * 1e3 < FERMI_TOLERANCE_MEV
    assert abs(terms.band_energy - reference.band_energy) * per_atom < LDOS_TOLERANCE_MEV_PER_ATOM
    assert abs(terms.total_energy - output.energies.total) * per_atom < (
        LDOS_TOLERANCE_MEV_PER_ATOM
    )
    assert terms.number_of_electrons == pytest.approx(3.0, abs=1e-9)
    # The LDOS density reproduces pp.x's density to the broadening error (0.1% here).
    dft_density = read_cube(run.density_cube, "density").data
    assert np.mean(np.abs(density - dft_density) / dft_density) < 5e-3
    # QE's sum of printed terms and ours use the same decomposition.
    assert terms.one_electron == pytest.approx(output.energies.one_electron, abs=5e-3)


def test_energy_cli_json_from_qe_files(qe_al1_fine_ldos, capsys):
    run = qe_al1_fine_ldos.run
    code = main(
        [
            "energy",
            "--qe-output",
            str(run.pw_output),
            "--ldos",
            str(run.directory / "fine*.cube"),
            "--density",
            str(run.density_cube),
            "--pseudo-dir",
            str(run.directory),
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert all(isinstance(result[k], float) for k in ENERGY_JSON_KEYS)
    for key in ("fermi_energy", "hartree", "xc", "ewald", "total_energy", "band_energy"):
        assert key in result["qe"]
    assert abs(result["total_energy"] - result["qe"]["total_energy"]) * 1e3 < 2.0
    assert 0 < result["density_mape_percent"] < 0.5


def test_energy_cli_table_density_only(qe_al4, capsys):
    code = main(
        [
            "energy",
            "--qe-output",
            str(qe_al4.pw_output),
            "--density",
            str(qe_al4.density_cube),
            "--pseudo-dir",
            str(qe_al4.directory),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "Hartree" in out and "Ewald" in out and "exchange-correlation" in out
    assert "band energy" not in out and "meV/atom" in out


def test_energy_cli_rejects_cubes_of_another_run(qe_al1, qe_al4, capsys):
    code = main(
        [
            "energy",
            "--qe-output",
            str(qe_al1.pw_output),
            "--density",
            str(qe_al4.density_cube),
            "--pseudo-dir",
            str(qe_al1.directory),
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "does not match the FFT grid" in err and "fix:" in err


def test_a_pseudopotential_other_than_pw_x_used_is_refused(qe_al4, tmp_path, capsys):
    """Same file name, other content: caught by the MD5 sum pw.x printed."""
    (tmp_path / qe_al4.pseudo.name).write_bytes(LDA_UPF.read_bytes())
    args = ["energy", "--qe-output", str(qe_al4.pw_output), "--density"]
    code = main([*args, str(qe_al4.density_cube), "--pseudo-dir", str(tmp_path)])
    assert code == 1
    assert "is not the file pw.x used" in capsys.readouterr().err
