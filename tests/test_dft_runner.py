"""`nearsight dft`: real pw.x + pp.x runs on a 1-atom Al cell, and every way it can fail."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.io import write
from conftest import PBE_NLCC_UPF, requires_qe

from nearsight.cli import main
from nearsight.config import load_config
from nearsight.dft.runner import run_dft
from nearsight.errors import InputError, MissingToolError, NearsightError
from nearsight.io.cube import read_ldos_cubes
from nearsight.io.dataset import read_snapshot
from nearsight.io.qe_output import read_pw_output
from nearsight.units import BOHR3_ANGSTROM3, RYDBERG_EV

# One primitive fcc Al atom, coarse LDOS grid: the whole run takes about 2 s. The band
# bottom is near -3.2 eV and E_F near 7.5 eV, so [-9, 11.5] eV holds every occupied state
# with 14 Fermi-Dirac widths (0.25 eV) to spare.
TINY = """
seed = 3
output_dir = "out"

[snapshots]
source = "thermal"
debye_temperature_k = 428.0
cubic = false
count = 1
name = "al1"

[dft]
pseudo_dir = "{pseudo_dir}"
pseudopotentials = {{ Al = "{upf}" }}
ecutwfc_ry = 15.0
kpoints = [4, 4, 4]
bands_factor = 6.0
{extra_dft}

[ldos]
emin_ev = {emin}
de_ev = 0.5
count = 42
degauss_ev = 0.25
"""


def tiny_config(tmp_path: Path, *, emin: float = -9.0, extra_dft: str = "", upf=None) -> Path:
    upf = Path(upf or PBE_NLCC_UPF)
    path = tmp_path / "tiny.toml"
    path.write_text(
        TINY.format(pseudo_dir=upf.parent, upf=upf.name, emin=emin, extra_dft=extra_dft)
    )
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`nearsight dft` on the tiny config, keeping QE's work directory."""
    if shutil.which("pw.x") is None:
        pytest.skip("Quantum ESPRESSO (pw.x, pp.x) not on PATH: apt-get install quantum-espresso")
    tmp = tmp_path_factory.mktemp("tiny")
    assert main(["dft", str(tiny_config(tmp)), "--keep-workdir"]) == 0
    return tmp / "out"


@requires_qe
def test_snapshot_holds_what_qe_computed(tiny_run: Path) -> None:
    snap = read_snapshot(tiny_run / "al1_000.h5")
    workdir = tiny_run / "al1_000.qe"
    pw = read_pw_output(workdir / "scf.out")
    assert snap.grid_shape == tuple(pw.fft_grid)
    assert snap.ldos.shape == (*pw.fft_grid, 42) and snap.ldos.dtype == np.float32
    assert snap.energy_grid.e_min == -9.0 and snap.energy_grid.de == 0.5
    assert snap.ldos_kernel == "fermi-dirac" and snap.ldos_broadening_ev == 0.25
    assert snap.qe.energies["total"] == pw.energies.total
    assert snap.qe.fermi_energy == pw.fermi_energy
    np.testing.assert_array_equal(snap.qe.eigenvalues, pw.eigenvalues)
    np.testing.assert_allclose(snap.atoms.positions, pw.atoms.positions)
    assert snap.number_of_electrons == 3.0
    assert snap.temperature_k == 298.0
    # pw.x ran with Fermi-Dirac smearing at the snapshot temperature: k_B T = 0.02568 eV,
    # which QE prints to 1e-4 Ry (1.4 meV).
    assert snap.qe.degauss_ev == pytest.approx(0.02568, abs=1.4e-3)
    record = snap.pseudopotentials["Al"]
    assert record.sha256 == hashlib.sha256(PBE_NLCC_UPF.read_bytes()).hexdigest()
    assert record.text == PBE_NLCC_UPF.read_text()
    assert snap.provenance["qe_version"].startswith("6.")
    assert snap.provenance["pw_seconds"] > 0
    # The valence density integrates to QE's electron count; the cube's 5 printed digits
    # bound the agreement to about 1e-4.
    total = snap.density.sum() * snap.grid.voxel_volume
    assert total == pytest.approx(3.0, rel=2e-4)


@requires_qe
def test_stored_ldos_keeps_every_digit_pp_x_printed(tiny_run: Path) -> None:
    snap = read_snapshot(tiny_run / "al1_000.h5")
    cubes = sorted((tiny_run / "al1_000.qe").glob("ldos[0-9]*.cube"))
    raw, energies, _ = read_ldos_cubes(cubes, dtype=np.float64)
    np.testing.assert_allclose(energies, snap.energy_grid.energies, atol=1e-4)
    rel = np.abs(snap.ldos - raw) / np.maximum(np.abs(raw), 1e-300)
    # float32 (2^-24) plus rounding to 17 mantissa bits (2^-18): below the cubes' 1e-5.
    assert rel.max() < 2**-18 + 2**-24
    # Back in pp.x's units, states/(Ry·Bohr³), the stored values round to the very digits
    # printed in the cubes (5 significant).
    to_qe = RYDBERG_EV * BOHR3_ANGSTROM3
    sample = np.flatnonzero(raw)[:: max(1, np.count_nonzero(raw) // 5000)]
    stored = snap.ldos.ravel()[sample].astype(np.float64) * to_qe
    printed = raw.ravel()[sample] * to_qe
    digits = np.vectorize(lambda v: float(f"{v:.4e}"))
    np.testing.assert_array_equal(digits(stored), digits(printed))


@requires_qe
def test_ldos_matches_qe_eigenvalues_through_the_recorded_kernel(tiny_run: Path) -> None:
    # The snapshot's own record (kernel, width, energy grid) rebuilds the DOS from QE's
    # eigenvalues and k-weights: Σ_k w_k / σ · w((E - e_k) / σ), w(x) = 1 / (2 + e^x + e^-x).
    # The cubes' 5 printed digits bound the agreement (about 3e-5 of the peak here).
    snap = read_snapshot(tiny_run / "al1_000.h5")
    assert snap.ldos_kernel == "fermi-dirac"
    sigma = snap.ldos_broadening_ev
    x = (snap.energy_grid.energies[:, None, None] - snap.qe.eigenvalues[None]) / sigma
    kernel = 1.0 / (2.0 + np.exp(np.clip(x, -700, 700)) + np.exp(np.clip(-x, -700, 700)))
    expected = (snap.qe.k_weights[None, :, None] / sigma * kernel).sum(axis=(1, 2))
    dos = snap.ldos.sum(axis=(0, 1, 2), dtype=np.float64) * snap.grid.voxel_volume
    np.testing.assert_allclose(dos, expected, rtol=0, atol=1e-4 * expected.max())


@requires_qe
def test_dataset_info_cli(tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tiny_run / "al1_000.h5"
    assert main(["dataset", "info", str(path)]) == 0
    text = capsys.readouterr().out
    assert "42 energies" in text and "fermi-dirac" in text and "total" in text
    assert main(["dataset", "info", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["number_of_atoms"] == 1 and summary["energy_grid_ev"]["n"] == 42
    assert summary["qe"]["energies_ev"]["total"] < 0


@requires_qe
def test_structure_files_and_mpi(tmp_path: Path) -> None:
    if shutil.which("mpirun") is None:
        pytest.skip("mpirun not on PATH: apt-get install openmpi-bin")
    atoms = bulk("Al", "fcc", a=4.05)
    write(tmp_path / "al.extxyz", atoms)
    run = ["dft", str(tiny_config(tmp_path)), "--structure", str(tmp_path / "al.extxyz")]
    assert main([*run, "-o", str(tmp_path / "serial")]) == 0
    assert main([*run, "-o", str(tmp_path / "mpi"), "--mpi", "2"]) == 0
    serial = read_snapshot(tmp_path / "serial" / "al1_000.h5", ldos=False)
    parallel = read_snapshot(tmp_path / "mpi" / "al1_000.h5", ldos=False)
    np.testing.assert_allclose(serial.atoms.positions, atoms.positions, atol=1e-9)
    # Same SCF on 1 or 2 ranks: equal to QE's convergence threshold (1e-10 Ry).
    assert parallel.qe.energies["total"] == pytest.approx(serial.qe.energies["total"], abs=1e-7)


@requires_qe
def test_window_too_high_is_refused_before_pp_x(tmp_path: Path) -> None:
    config, base = load_config(tiny_config(tmp_path, emin=-4.0))
    with pytest.raises(InputError) as err:
        run_dft(config, [bulk("Al", "fcc", a=4.05)], base)
    assert err.value.field == "ldos.emin_ev" and "set ldos.emin_ev <=" in str(err.value)
    assert not list((tmp_path / "out").glob("*.h5")), "no snapshot may be written"


def test_missing_pw_x_says_how_to_install(tmp_path: Path, capsys) -> None:
    cfg = tiny_config(tmp_path, extra_dft='pw_command = "no-such-pw.x"')
    config, base = load_config(cfg)
    with pytest.raises(MissingToolError, match="apt-get install quantum-espresso"):
        run_dft(config, [bulk("Al", "fcc", a=4.05)], base)
    assert main(["dft", str(cfg)]) == 1
    assert "apt-get install quantum-espresso" in capsys.readouterr().err


def _fake_qe(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake-pw.x"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_failing_pw_x_is_quoted(tmp_path: Path) -> None:
    fake = _fake_qe(
        tmp_path,
        "echo ' %%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%'\n"
        "echo '     Error in routine readpp (1):'\n"
        "echo '     file ./Al.UPF not found'\n"
        "exit 1\n",
    )
    extra = f'pw_command = "{fake}"\npp_command = "{fake}"'
    config, base = load_config(tiny_config(tmp_path, extra_dft=extra))
    with pytest.raises(NearsightError, match="Error in routine readpp") as err:
        run_dft(config, [bulk("Al", "fcc", a=4.05)], base)
    assert "exit code 1" in str(err.value)
    assert not list((tmp_path / "out").glob("*.h5"))


@requires_qe
def test_missing_and_wrong_pseudopotentials(tmp_path: Path) -> None:
    config, base = load_config(tiny_config(tmp_path, upf=tmp_path / "Al.missing.UPF"))
    shutil.copy(PBE_NLCC_UPF, tmp_path / "Al.pbe.UPF")
    with pytest.raises(InputError, match="pseudopotential file not found") as err:
        run_dft(config, [bulk("Al", "fcc", a=4.05)], base)
    assert "Al.missing.UPF" in str(err.value)
    config, base = load_config(tiny_config(tmp_path, upf=tmp_path / "Al.pbe.UPF"))
    with pytest.raises(InputError, match="no pseudopotential for Cu"):
        run_dft(config, [bulk("Cu", "fcc", a=3.6)], base)
    (tmp_path / "Si.UPF").write_text(
        PBE_NLCC_UPF.read_text().replace('element="Al"', 'element="Si"')
    )
    config, base = load_config(tiny_config(tmp_path, upf=tmp_path / "Si.UPF"))
    with pytest.raises(InputError, match="this UPF is for Si, not Al"):
        run_dft(config, [bulk("Al", "fcc", a=4.05)], base)
