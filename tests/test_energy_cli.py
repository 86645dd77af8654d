"""``nearsight energy`` and ``nearsight demo`` on the bundled snapshots (no QE needed)."""

from __future__ import annotations

import json

import pytest
from conftest import ENERGY_JSON_KEYS, REPO

from nearsight.cli import main

DATA = REPO / "examples" / "al" / "data"


def test_energy_of_a_snapshot_with_ldos_prints_every_term(capsys):
    assert main(["energy", str(DATA / "al4_000.h5")]) == 0
    out = capsys.readouterr().out
    for label in ("Fermi energy", "band energy", "entropy (-TS)", "Hartree", "Ewald", "total"):
        assert label in out
    assert "meV/atom" in out and "integration analytic" in out


def test_energy_json_has_the_documented_keys(capsys):
    assert main(["energy", str(DATA / "al4_000.h5"), "--json", "--method", "simpson"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ENERGY_JSON_KEYS:
        assert isinstance(result[key], float), key
    assert result["method"] == "simpson"
    assert result["number_of_electrons"] == pytest.approx(12.0, abs=1e-9)
    # The density terms of the LDOS density stay close to QE's (the broadening moves the
    # density by ~0.5%); the Ewald term does not depend on the density at all.
    assert abs(result["ewald"] - result["qe"]["ewald"]) < 1e-4
    assert abs(result["total_energy"] - result["qe"]["total_energy"]) / 4 < 0.02


def test_energy_of_a_density_only_snapshot_prints_the_density_terms(capsys):
    assert main(["energy", str(DATA / "al8_000.h5"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["qe"]) == {"hartree", "xc", "ewald"}
    assert "total_energy" not in result
    for key in ("hartree", "xc", "ewald"):
        assert abs(result[key] - result["qe"][key]) / 8 < 1e-4  # 0.1 meV/atom


def test_energy_needs_exactly_one_source(capsys):
    assert main(["energy"]) == 1
    assert "give either a snapshot file or --qe-output" in capsys.readouterr().err
    assert main(["energy", str(DATA / "al4_000.h5"), "--qe-output", "x.out"]) == 1


def test_energy_rejects_a_bad_temperature(capsys):
    assert main(["energy", str(DATA / "al4_000.h5"), "--temperature", "-5"]) == 1
    assert "temperature must be positive" in capsys.readouterr().err
