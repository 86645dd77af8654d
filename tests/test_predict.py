"""Prediction of new structures: streamed passes, size transfer, ASE calculator, CLI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError
from conftest import ENERGY_JSON_KEYS, PBE_NLCC_UPF, REPO

from nearsight.cli import main
from nearsight.config import DescriptorsConfig
from nearsight.data.scaling import Scaler
from nearsight.descriptors import bispectrum as bispectrum_module
from nearsight.descriptors.compute import compute_descriptors
from nearsight.errors import InputError
from nearsight.grid import EnergyGrid
from nearsight.io.cube import read_cube, read_ldos_cubes
from nearsight.io.dataset import PseudoRecord
from nearsight.model.bundle import Bundle
from nearsight.model.inference import predict_ldos
from nearsight.model.network import FeedForward
from nearsight.physics.energy import EnergyTerms, total_energy
from nearsight.predict import Calculator, Predictor

SHAPE = (24, 24, 24)
"""pw.x's FFT grid of the 4.05 Å cubic Al cell at ecutrho = 80 Ry."""
N_ENERGIES = 21
MPIRUN = Path(sys.prefix) / "bin" / "mpirun"


@pytest.fixture(scope="module", autouse=True)
def eager_descriptors():
    """The descriptor kernels run eagerly, on one thread.

    On 24³ points compiling the kernels costs more than it saves (the compiled kernels are
    tested in test_bispectrum.py), and on a busy machine a second torch thread waiting for
    a core makes them up to 20 times slower.
    """
    eager = bispectrum_module.bispectrum
    threads = torch.get_num_threads()

    def run(*args, compile=True, **kwargs):
        return eager(*args, compile=False, **kwargs)

    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bispectrum_module, "bispectrum", run)
        yield
    torch.set_num_threads(threads)


@dataclass(frozen=True)
class Model:
    bundle: Bundle
    path: Path
    atoms: Atoms
    descriptors: np.ndarray


def al4() -> Atoms:
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    atoms.rattle(0.05, seed=1)
    return atoms


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Model:
    """A small untrained model with the physics of a real one.

    The sigmoid output layer keeps the LDOS positive and the output scaler sets its size, so
    that the 12 valence electrons fill the window to about its middle; the real PBE
    pseudopotential gives true Hartree, xc (with core correction) and Ewald terms.
    """
    atoms = al4()
    config = DescriptorsConfig(twojmax=2)  # 5 features
    descriptors = compute_descriptors(atoms, SHAPE, config)
    text = PBE_NLCC_UPF.read_text()
    bundle = Bundle(
        # float64 weights: float32 GEMMs round differently for different batch sizes and
        # thread counts (~1e-7), which would hide the 1e-10 agreement checked here.
        network=FeedForward([5, 8, N_ENERGIES], ["tanh", "sigmoid"], seed=3, dtype=torch.float64),
        input_scaler=Scaler("standard").partial_fit(descriptors.reshape(-1, 5)),
        output_scaler=Scaler("minmax", per_feature=False).partial_fit(np.array([[0.0], [0.1]])),
        descriptors=config,
        energy_grid=EnergyGrid(-4.0, 0.7, N_ENERGIES),
        temperature_k=298.0,
        electrons_per_atom={"Al": 3.0},
        pseudopotentials={
            "Al": PseudoRecord(
                "Al", PBE_NLCC_UPF.name, hashlib.sha256(text.encode()).hexdigest(), text
            )
        },
        grid_spacing=(4.05 / 24,) * 3,
        ecutrho_ry=80.0,
    )
    path = bundle.save(tmp_path_factory.mktemp("model") / "al.safetensors")
    return Model(bundle, path, atoms, descriptors)


@pytest.fixture(scope="module")
def reference(model):
    """The unstreamed route: whole-grid descriptors, LDOS and physics in memory."""
    b = model.bundle
    rows = model.descriptors.reshape(-1, 5)
    ldos = predict_ldos(b.network, b.input_scaler, b.output_scaler, rows)
    ldos = ldos.reshape(*SHAPE, N_ENERGIES)
    system = Predictor(b).system(model.atoms)
    terms, density = total_energy(ldos, b.energy_grid, system)
    return terms, density, ldos


@pytest.fixture(scope="module")
def streamed(model, tmp_path_factory):
    """A streamed prediction in chunks of 1000 points, watching the scratch directory."""
    scratch = tmp_path_factory.mktemp("scratch")
    seen = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total, sorted(p.name[:15] for p in scratch.iterdir())))

    predictor = Predictor(model.path, chunk_points=1000, progress=progress, scratch_dir=scratch)
    return predictor.predict(model.atoms), seen, scratch


def assert_terms_close(a: EnergyTerms, b: EnergyTerms, rtol: float) -> None:
    for key, value in a.as_dict().items():
        assert float(value) == pytest.approx(float(b.as_dict()[key]), rel=rtol, abs=1e-12), key


def test_streamed_prediction_equals_the_whole_grid_route(model, reference, streamed):
    prediction, seen, scratch = streamed
    terms, density, ldos = reference
    assert_terms_close(prediction.terms, terms, 1e-10)
    assert abs(prediction.terms.number_of_electrons - 12.0) < 1e-8
    np.testing.assert_allclose(prediction.density, density, rtol=1e-10)
    voxel = model.atoms.get_volume() / np.prod(SHAPE)
    np.testing.assert_allclose(prediction.dos, ldos.sum((0, 1, 2), dtype=float) * voxel)
    assert prediction.grid_shape == SHAPE and prediction.ldos is None
    # 14 chunks, each reported, while the LDOS memory map existed; it is gone afterwards.
    assert [s[:2] for s in seen] == [(min(n, 13824), 13824) for n in range(0, 15000, 1000)]
    assert all(s[2] == ["nearsight-ldos-"] for s in seen)
    assert list(scratch.iterdir()) == []
    assert set(prediction.timings) == {"descriptors", "network", "physics", "total"}


def test_one_chunk_kept_ldos_and_given_descriptors_agree(model, reference, streamed):
    terms, density, ldos = reference
    predictor = Predictor(model.bundle, chunk_points=100_000)
    whole = predictor.predict(model.atoms, keep_ldos=True, descriptors=model.descriptors)
    np.testing.assert_array_equal(whole.ldos, ldos)
    assert_terms_close(whole.terms, streamed[0].terms, 1e-10)
    np.testing.assert_allclose(whole.density, streamed[0].density, rtol=1e-10)
    assert whole.timings["descriptors"] < 0.01  # slicing the given rows only
    with pytest.raises(InputError, match="descriptors have shape"):
        predictor.predict(model.atoms, descriptors=model.descriptors[:12])


def test_a_supercell_keeps_the_spacing_and_the_energy_per_atom(model, streamed):
    """Descriptors are periodic, so a 2x1x1 cell repeats the small one exactly."""
    small = streamed[0]
    big = Predictor(model.bundle).predict(model.atoms.repeat((2, 1, 1)))
    assert big.grid_shape == (48, 24, 24)
    assert big.energy_per_atom == pytest.approx(small.energy_per_atom, rel=1e-6)
    assert big.terms.fermi_energy == pytest.approx(small.terms.fermi_energy, abs=1e-8)
    np.testing.assert_allclose(big.density, np.concatenate([small.density] * 2), rtol=1e-6)
    np.testing.assert_allclose(big.dos, 2 * small.dos, rtol=1e-6)


def test_inputs_the_model_cannot_handle_are_refused(model):
    predictor = Predictor(model.bundle)
    copper = model.atoms.copy()
    copper.symbols[0] = "Cu"
    with pytest.raises(InputError, match="the model knows Al, not Cu"):
        predictor.predict(copper)
    open_box = model.atoms.copy()
    open_box.pbc = [True, True, False]
    with pytest.raises(InputError, match="not periodic"):
        predictor.predict(open_box)
    with pytest.raises(InputError, match="too coarse for ecutrho"):
        predictor.predict(model.atoms, grid_shape=(12, 12, 12))
    with pytest.raises(InputError, match="chunk_points"):
        Predictor(model.bundle, chunk_points=0)


def test_calculator_energy_and_descriptor_cache(model, streamed, monkeypatch):
    from nearsight import Calculator as TopLevel

    assert TopLevel is Calculator
    calls = []
    eager = bispectrum_module.bispectrum

    def counted(*args, **kwargs):
        calls.append(1)
        return eager(*args, **kwargs)

    monkeypatch.setattr(bispectrum_module, "bispectrum", counted)
    atoms = model.atoms.copy()
    calc = Calculator(model.path)
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    assert energy == pytest.approx(float(streamed[0].terms.total_energy), rel=1e-10)
    assert calc.results["free_energy"] == energy
    assert calc.last_prediction.grid_shape == SHAPE
    assert len(calls) == 1
    calc.reset()  # results gone, structure unchanged: the descriptors are reused
    assert atoms.get_potential_energy(force_consistent=True) == energy
    assert len(calls) == 1
    atoms.positions[1, 0] += 0.1
    assert atoms.get_potential_energy() != energy
    assert len(calls) == 2
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_forces()


def test_cli_json_density_and_ldos_cubes(model, streamed, tmp_path, capsys):
    structure = tmp_path / "al4.xyz"
    model.atoms.write(structure)
    density_cube, ldos_dir = tmp_path / "n.cube", tmp_path / "ldos"
    args = ["predict", str(model.path), str(structure), "--json", "--chunk-points", "5000"]
    assert main([*args, "--density-cube", str(density_cube), "--ldos-cubes", str(ldos_dir)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(ENERGY_JSON_KEYS) <= set(result)
    assert "qe" not in result and result["grid_shape"] == list(SHAPE)
    # extxyz keeps positions to 1e-8 Å, which moves the energy by about as much
    assert result["total_energy"] == pytest.approx(float(streamed[0].terms.total_energy), 1e-7)
    assert result["energy_per_atom"] == pytest.approx(result["total_energy"] / 4)
    cube = read_cube(density_cube, quantity="density")
    np.testing.assert_allclose(cube.data, streamed[0].density, rtol=1e-7)
    ldos, energies, _ = read_ldos_cubes(sorted(ldos_dir.glob("*.cube")))
    np.testing.assert_allclose(energies, model.bundle.energy_grid.energies, atol=1e-4)
    assert ldos.shape == (*SHAPE, N_ENERGIES)


def test_cli_table_and_errors(model, tmp_path, capsys):
    poscar = tmp_path / "POSCAR"
    model.atoms.write(poscar, format="vasp")
    assert main(["predict", str(model.path), str(poscar), "--format", "vasp"]) == 0
    out = capsys.readouterr().out
    assert "Al4, 4 atoms, grid 24x24x24" in out and "total free energy" in out
    snapshot = REPO / "examples" / "al" / "data" / "al4_000.h5"
    assert main(["predict", str(model.path), str(snapshot), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["number_of_atoms"] == 4 and result["grid_shape"] == list(SHAPE)
    copper = tmp_path / "cu.cif"
    bulk("Cu", "fcc", a=3.6, cubic=True).write(copper)
    assert main(["predict", str(model.path), str(copper)]) == 1
    assert "the model knows Al, not Cu" in capsys.readouterr().err
    assert main(["predict", str(model.path), str(tmp_path / "missing.xyz")]) == 1
    assert "cannot read the structure" in capsys.readouterr().err


@pytest.mark.skipif(not MPIRUN.exists(), reason="mpirun from the mpich wheel is missing")
def test_two_mpi_ranks_give_the_serial_result(model, streamed, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(
        "import json, sys\n"
        "from mpi4py import MPI\n"
        "from ase.io import read\n"
        "from nearsight.descriptors import bispectrum as b\n"
        "eager = b.bispectrum\n"
        "b.bispectrum = lambda *a, compile=True, **k: eager(*a, compile=False, **k)\n"
        "from nearsight.predict import Predictor\n"
        "p = Predictor(sys.argv[1], comm=MPI.COMM_WORLD, chunk_points=3000)\n"
        "r = p.predict(read(sys.argv[2]), keep_ldos=True)\n"
        "rank = MPI.COMM_WORLD.Get_rank()\n"
        "json.dump({'terms': r.as_json(), 'has_density': r.density is not None,\n"
        "           'has_ldos': r.ldos is not None}, open(f'{sys.argv[3]}{rank}.json', 'w'))\n"
        "if rank == 0:\n"
        "    import numpy as np; np.save(sys.argv[3] + 'density.npy', r.density)\n"
    )
    structure = tmp_path / "al4.traj"  # lossless, unlike text formats
    model.atoms.write(structure)
    prefix = str(tmp_path / "out")
    command = [str(MPIRUN), "-n", "2", sys.executable, str(script), str(model.path)]
    env = dict(os.environ, OMP_NUM_THREADS="1")  # one core per rank
    subprocess.run([*command, str(structure), prefix], check=True, timeout=120, env=env)
    serial = streamed[0]
    for rank in (0, 1):
        out = json.loads(Path(f"{prefix}{rank}.json").read_text())
        for key, value in serial.terms.as_dict().items():
            assert out["terms"][key] == pytest.approx(float(value), rel=1e-10), key
        assert out["has_density"] == out["has_ldos"] == (rank == 0)
    np.testing.assert_allclose(np.load(prefix + "density.npy"), serial.density, rtol=1e-10)
