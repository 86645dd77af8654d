"""Run one MALA 1.4.0 job (train, infer or band_energy) for the nearsight-vs-MALA benchmark.

    .bench/mala-venv/bin/python benchmarks/mala_runner.py JOB.json [--result RESULT.json]

Runs with the python of the MALA venv (``benchmarks/mala_env.py`` makes it); it never imports
nearsight. JOB.json says which job to run and with what; the result JSON goes to
``--result`` or else to the job's ``"result"`` path. Progress (and everything MALA prints)
goes to stderr; stdout stays empty. On failure the result has ``"ok": false`` and the
traceback, and the exit code is 1.

Common job keys: ``job`` ("train" | "infer" | "band_energy"), ``threads`` (torch intra-op
threads and OMP/MKL threads, default 1), ``seed`` (MALA's manual_seed, default 0),
``verbosity`` (MALA's, default 1), ``result``.

train
    ``train`` / ``validation``: lists of ``{"input": "X.in.npy", "output": "X.out.npy"}``
    (MALA's numpy layout: in [nx,ny,nz,3+F] float32 whose 3 leading coordinate columns MALA
    drops (``descriptors_contain_xyz``, default true), out [nx,ny,nz,E]);
    ``layer_sizes`` [F, hidden..., E]; ``activations``: one name (every hidden layer, none
    on the output layer, as nearsight does) or one name per layer ("none" for no activation);
    names are case-insensitive torch.nn names (LeakyReLU, ReLU, Tanh, Sigmoid, GELU, SiLU);
    ``batch_size``; ``learning_rate``; ``optimizer`` ("Adam"); ``epochs``;
    ``input_scaler`` / ``output_scaler``: a MALA name ("feature-wise-standard", "minmax",
    "standard", "feature-wise-minmax", "None") or ``{"kind": "standard"|"minmax"|"none",
    "per_feature": bool}`` (defaults: feature-wise-standard and minmax); ``shuffle``
    (default true); ``fast_tensor_dataset`` (MALA's FastTensorDataset, default false as in
    MALA); ``input_units`` (default "None"), ``output_units`` (default "1/(eV*A^3)");
    optional ``energy_grid`` {offset_ev, spacing_ev, count} and ``descriptors``
    {twojmax, rcutfac} (only stored in the model's parameters, for later inference);
    ``model``: the ``.zip`` path MALA's ``Trainer.save_run`` writes.
    Result: point counts, ``timings`` (import_s, data_setup_s = DataHandler + add_snapshot
    + prepare_data (load, fit scalers, scale, build data sets), trainer_setup_s = Network +
    Trainer (optimizer, data loaders), train_loop_s = ``train_network()``, validation_s =
    MALA's per-epoch validation inside it, train_only_s = the difference, per-epoch lists,
    save_s), ``train_points_per_s`` = epochs x points per epoch / train_loop_s,
    ``train_points_per_s_excl_validation``, ``validation_losses`` per epoch,
    ``final_validation_loss`` (MALA's: mean over validation batches of the MSE of the
    scaled LDOS), ``model``.

infer
    ``model`` (a MALA ``.zip``); optional ``batch_size`` (default: the model's training
    mini_batch_size; MALA raises it to the next divisor of the point count); ``warmup`` (1)
    and ``repeats`` (3).
    With ``input`` (X.in.npy): the Predictor's network path on precomputed descriptors,
    i.e. what ``Predictor.predict_for_atoms`` does after its descriptor step (drop the
    coordinate columns, reshape to [points, F], to a float tensor, input scaler, then
    ``Predictor._forward_snap_descriptors``: batches through the network, inverse output
    scaling, negative LDOS set to 0). Optional ``reference_output`` (X.out.npy, for the
    error) and ``prediction_out`` (.npy path, the prediction as [nx,ny,nz,E] float32).
    With ``atoms`` (an ASE-readable structure file) and ``grid`` [nx,ny,nz]: the full
    ``Predictor.predict_for_atoms(atoms)`` with bispectrum descriptors from LAMMPS through
    our own input script (``LAMMPS_BGRID_SCRIPT``); optional ``descriptors`` {twojmax,
    rcutfac, switchflag} overriding the model's; descriptor and network time measured
    apart by wrapping MALA's own calls; optional ``descriptors_out`` (.npy: MALA's
    descriptors [nx,ny,nz,3+F] float32) and ``atoms_prediction_out`` (.npy: the LDOS
    [nx,ny,nz,E] float32). The LAMMPS temporary files go to a fresh temporary folder.
    Result: ``descriptors_given`` {points, batch_size, prepare_s, network_s (lists),
    s_per_point (median network_s / points), s_per_point_incl_prepare, errors} and/or
    ``full_path`` {total_s, descriptors_s, network_s, other_s lists, s_per_point}.

band_energy
    ``energy_grid`` {offset_ev, spacing_ev, count} (MALA's grid: offset + i x spacing,
    i < count); ``temperature_K``; ``ldos_units`` (default "1/(eV*A^3)");
    ``snapshots``: list of {``ldos``: [nx,ny,nz,E] .npy, ``atoms``: ASE-readable structure
    file (gives the voxel = cell / grid), or ``cell`` 3x3 Å instead; ``number_of_electrons``
    or ``electrons_per_atom``; optional ``fermi_energy_ev`` (a band energy at this E_F too)}.
    Result per snapshot: ``fermi_energy_ev`` (MALA's self-consistent E_F: the number of
    electrons from the DOS equals the exact one), ``band_energy_ev``,
    ``number_of_electrons_at_fermi``, ``dos_integral`` (states on the energy grid),
    optionally ``band_energy_at_given_fermi_ev``, and the seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

# LAMMPS input script for MALA's bispectrum calculation (serial, one element), given to
# MALA as parameters.descriptors.custom_lammps_compute_file (the 1.4.0 wheel lacks its own
# inputfiles/ folder). MALA (descriptors/bispectrum.py, descriptor.py) starts LAMMPS with
# "-screen none -log <tmp>" and these -var variables:
#   atom_config_fname  the structure, written by ase.io.write(format="lammps-data")
#   twojmax, rcutfac   parameters.descriptors.bispectrum_twojmax / bispectrum_cutoff
#   ngridx, ngridy, ngridz  the grid; switch  bispectrum_switchflag
# (with MPI also lammps_procs and zbal, and wj1.. for several elements: not used here).
# After running the script, MALA reads the GLOBAL array of the compute named "bgrid"
# (extract_compute("bgrid", 0, 2)) as [nz, ny, nx, 3 + ncoeff] (grid points x fastest,
# three coordinate columns first) and transposes it to [nx, ny, nz, 3 + ncoeff]; with MPI
# it would read the LOCAL array of a compute "bgridlocal" (sna/grid/local) instead.
# The settings are those of MALA's own scripts and of nearsight's defaults: radius 0.5
# (so the cutoff radius is rcutfac Å), rfac0 0.99363, rmin0 0, weight 1, no bzero, no
# quadratic terms; the zero pair style only gives the neighbour list its cutoff.
LAMMPS_BGRID_SCRIPT = """\
# bispectrum descriptors on a grid for MALA (serial, one element)
units           metal
atom_style      atomic
boundary        p p p
read_data       ${atom_config_fname}
mass            * 1.0

variable        radelem equal 0.5
variable        rfac0 equal 0.99363
variable        rmin0 equal 0.0
variable        wj equal 1.0
variable        rcutneigh equal 2.0*${rcutfac}*${radelem}

pair_style      zero ${rcutneigh}
pair_coeff      * *

compute         bgrid all sna/grid grid ${ngridx} ${ngridy} ${ngridz} &
                ${rcutfac} ${rfac0} ${twojmax} ${radelem} ${wj} &
                rmin0 ${rmin0} bzeroflag 0 quadraticflag 0 switchflag ${switch}

thermo_style    custom step pe c_bgrid[1][1]
run             0
"""

ACTIVATION_NAMES = {
    "leakyrelu": "LeakyReLU",
    "relu": "ReLU",
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
    "gelu": "GELU",
    "silu": "SiLU",
    "elu": "ELU",
}

T_START = time.perf_counter()


def log(msg: str) -> None:
    print(f"[mala_runner {time.perf_counter() - T_START:8.2f}s] {msg}", file=sys.stderr, flush=True)


def median(values):
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


# ----------------------------------------------------------------------------------------
# set-up shared by the jobs
# ----------------------------------------------------------------------------------------


def set_threads(threads: int) -> None:
    """Thread counts for OpenMP/MKL; must run before torch is imported."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)


def preload_mpi() -> None:
    """The lammps wheel links libmpi.so.12 of the mpich wheel, which is not on the loader's
    path: load it globally before MALA imports lammps."""
    lib = Path(sys.prefix) / "lib" / "libmpi.so.12"
    if lib.exists():
        ctypes.CDLL(str(lib), mode=os.RTLD_NOW | os.RTLD_GLOBAL)


def import_mala(threads: int):
    t0 = time.perf_counter()
    preload_mpi()
    import torch

    torch.set_num_threads(threads)
    import mala

    return mala, torch, time.perf_counter() - t0


def versions(mala, torch) -> dict:
    out = {
        "mala": mala.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    try:
        import lammps

        out["lammps"] = str(lammps.__version__)
    except Exception as err:  # LAMMPS is optional for train/band_energy
        out["lammps"] = f"unavailable ({err})"
    import numpy

    out["numpy"] = numpy.__version__
    return out


def scaler_name(spec, default: str) -> str:
    """nearsight-style {"kind", "per_feature"} (or a MALA name) -> MALA 1.4.0 typestring."""
    if spec is None:
        return default
    if isinstance(spec, str):
        return spec
    kind = str(spec.get("kind", "none")).lower()
    if kind == "none":
        return "None"
    if kind not in ("standard", "minmax"):
        raise ValueError(f"unknown scaler kind {kind!r}")
    return ("feature-wise-" if spec.get("per_feature", False) else "") + kind


def mala_activations(spec, n_layers: int) -> list:
    """One name (hidden layers only) or one per layer -> MALA's per-layer list (None = no
    activation), used with layer_activations_include_output_layer = True."""
    names = [spec] * (n_layers - 1) + ["none"] if isinstance(spec, str) else list(spec)
    if len(names) != n_layers:
        raise ValueError(f"{n_layers} layers need {n_layers} activations, got {names}")
    out = []
    for name in names:
        if name is None or str(name).lower() == "none":
            out.append(None)
        else:
            out.append(ACTIVATION_NAMES.get(str(name).lower(), str(name)))
    return out


def base_parameters(mala, job: dict):
    params = mala.Parameters()
    params.use_gpu = False
    params.use_mpi = False
    params.use_ddp = False
    params.verbosity = int(job.get("verbosity", 1))
    params.manual_seed = int(job.get("seed", 0))
    grid = job.get("energy_grid")
    if grid:
        set_energy_grid(params, grid)
    return params


def set_energy_grid(params, grid: dict) -> None:
    # MALA insists on int count, float spacing, int-or-float offset
    params.targets.ldos_gridsize = int(grid["count"])
    params.targets.ldos_gridspacing_ev = float(grid["spacing_ev"])
    params.targets.ldos_gridoffset_ev = float(grid["offset_ev"])


def set_descriptor_parameters(params, spec: dict | None, script: str | None) -> None:
    params.descriptors.descriptor_type = "Bispectrum"
    if spec:
        if "twojmax" in spec:
            params.descriptors.bispectrum_twojmax = int(spec["twojmax"])
        if "rcutfac" in spec:
            params.descriptors.bispectrum_cutoff = float(spec["rcutfac"])
        if "switchflag" in spec:
            params.descriptors.bispectrum_switchflag = int(spec["switchflag"])
    if script is not None:
        params.descriptors.custom_lammps_compute_file = script


def split_model_path(path: str) -> tuple[str, str]:
    p = Path(path)
    if p.suffix != ".zip":
        raise ValueError(f"model path must end in .zip (MALA's save_run archive), got {path}")
    return p.stem, str(p.parent)


# ----------------------------------------------------------------------------------------
# train
# ----------------------------------------------------------------------------------------


def job_train(job: dict, mala, torch) -> dict:
    import numpy as np

    params = base_parameters(mala, job)
    n_layers = len(job["layer_sizes"]) - 1

    # network
    params.network.nn_type = "feed-forward"
    params.network.layer_sizes = [int(n) for n in job["layer_sizes"]]
    params.network.layer_activations = mala_activations(
        job.get("activations", "LeakyReLU"), n_layers
    )
    params.network.layer_activations_include_output_layer = True
    params.network.loss_function_type = "mse"

    # data
    params.data.data_splitting_type = "by_snapshot"
    params.data.input_rescaling_type = scaler_name(job.get("input_scaler"), "feature-wise-standard")
    params.data.output_rescaling_type = scaler_name(job.get("output_scaler"), "minmax")
    params.data.use_lazy_loading = False
    params.data.use_lazy_loading_prefetch = False
    params.data.use_fast_tensor_data_set = bool(job.get("fast_tensor_dataset", False))
    params.descriptors.descriptors_contain_xyz = bool(job.get("descriptors_contain_xyz", True))
    set_descriptor_parameters(params, job.get("descriptors"), None)

    # training: plain Adam, no scheduler, no early stopping, no checkpoints, no logger,
    # only MALA's LDOS validation loss each epoch (which cannot be switched off)
    run = params.running
    run.optimizer = job.get("optimizer", "Adam")
    run.learning_rate = float(job["learning_rate"])
    run.max_number_epochs = int(job["epochs"])
    run.mini_batch_size = int(job["batch_size"])
    run.l2_regularization = 0.0
    run.early_stopping_epochs = 0
    run.learning_rate_scheduler = None
    run.checkpoints_each_epoch = 0
    run.logger = None
    run.logging_metrics = ["ldos"]
    run.log_metrics_on_train_set = False
    run.validation_metric = "ldos"
    run.final_validation_metric = "ldos"
    run.num_workers = 0
    run.use_shuffling_for_samplers = bool(job.get("shuffle", True))
    run.use_mixed_precision = False
    run.use_graphs = False

    in_units = job.get("input_units", "None")
    out_units = job.get("output_units", "1/(eV*A^3)")

    log("data: DataHandler, add_snapshot, prepare_data")
    t0 = time.perf_counter()
    data = mala.DataHandler(params)
    for role, key in (("tr", "train"), ("va", "validation")):
        for snap in job[key]:
            inp, out = Path(snap["input"]), Path(snap["output"])
            data.add_snapshot(
                inp.name,
                str(inp.parent),
                out.name,
                str(out.parent),
                role,
                input_units=in_units,
                output_units=out_units,
            )
    data.prepare_data()
    data_setup_s = time.perf_counter() - t0
    log(
        f"data ready: {data.nr_training_data} training and {data.nr_validation_data} "
        f"validation points in {data_setup_s:.2f} s"
    )

    t0 = time.perf_counter()
    network = mala.Network(params)
    trainer = mala.Trainer(params, network, data)
    trainer_setup_s = time.perf_counter() - t0

    # Time MALA's per-epoch validation by wrapping its own method; the gaps between the
    # validation calls are the epochs' training passes.
    marks = []  # (start, end, errors) per call
    inner = trainer._evaluate_metrics

    def timed_evaluate(fractions, metrics):
        t_a = time.perf_counter()
        errors = inner(fractions, metrics)
        marks.append((t_a, time.perf_counter(), errors))
        return errors

    trainer._evaluate_metrics = timed_evaluate

    n_train = int(data.nr_training_data)
    if params.data.use_fast_tensor_data_set:  # whole batches only; the rest is dropped
        points_per_epoch = (n_train // run.mini_batch_size) * run.mini_batch_size
    else:
        points_per_epoch = n_train
    log(
        f"train_network: {run.max_number_epochs} epochs, batch {run.mini_batch_size}, "
        f"{torch.get_num_threads()} thread(s)"
    )
    t_loop = time.perf_counter()
    trainer.train_network()
    train_loop_s = time.perf_counter() - t_loop
    epochs_run = len(marks)

    epoch_train, epoch_val, losses = [], [], []
    prev = t_loop
    for t_a, t_b, errors in marks:
        epoch_train.append(t_a - prev)
        epoch_val.append(t_b - t_a)
        losses.append(float(np.mean(np.abs(errors["validation"]["ldos"]))))
        prev = t_b
    validation_s = sum(epoch_val)
    train_only_s = train_loop_s - validation_s
    log(
        f"trained in {train_loop_s:.2f} s (validation {validation_s:.2f} s), "
        f"final validation loss {trainer.final_validation_loss:.4e}"
    )

    model = job.get("model")
    save_s = None
    if model:
        run_name, path = split_model_path(model)
        t0 = time.perf_counter()
        trainer.save_run(run_name, path=path, zip_run=True)
        save_s = time.perf_counter() - t0
        log(f"saved {model}")

    return {
        "n_train_points": n_train,
        "n_validation_points": int(data.nr_validation_data),
        "points_per_epoch": points_per_epoch,
        "epochs": epochs_run,
        "batch_size": run.mini_batch_size,
        "timings": {
            "data_setup_s": data_setup_s,
            "trainer_setup_s": trainer_setup_s,
            "train_loop_s": train_loop_s,
            "validation_s": validation_s,
            "train_only_s": train_only_s,
            "epoch_train_s": epoch_train,
            "epoch_validation_s": epoch_val,
            "save_s": save_s,
        },
        "train_points_per_s": epochs_run * points_per_epoch / train_loop_s,
        "train_points_per_s_excl_validation": epochs_run * points_per_epoch / train_only_s,
        "validation_losses": losses,
        "final_validation_loss": float(trainer.final_validation_loss),
        "model": model,
        "mala_settings": {
            "network.layer_sizes": params.network.layer_sizes,
            "network.layer_activations": params.network.layer_activations,
            "network.layer_activations_include_output_layer": True,
            "data.input_rescaling_type": params.data.input_rescaling_type,
            "data.output_rescaling_type": params.data.output_rescaling_type,
            "data.use_fast_tensor_data_set": params.data.use_fast_tensor_data_set,
            "running.optimizer": run.optimizer,
            "running.learning_rate": run.learning_rate,
            "running.mini_batch_size": run.mini_batch_size,
            "running.max_number_epochs": run.max_number_epochs,
            "running.use_shuffling_for_samplers": run.use_shuffling_for_samplers,
            "manual_seed": params.manual_seed,
        },
    }


# ----------------------------------------------------------------------------------------
# infer
# ----------------------------------------------------------------------------------------


def load_predictor(mala, model: str):
    run_name, path = split_model_path(model)
    params, network, data, predictor = mala.Predictor.load_run(
        run_name, path=path, load_with_gpu=False, load_with_mpi=False
    )
    params.use_ddp = False
    return params, network, data, predictor


def infer_from_descriptors(job, mala, torch, model: str) -> dict:
    import numpy as np

    params, network, data, predictor = load_predictor(mala, model)
    if job.get("batch_size"):
        params.running.mini_batch_size = int(job["batch_size"])
    raw = np.load(job["input"])
    grid = [int(n) for n in raw.shape[:3]]
    n_points = int(np.prod(grid))
    contains_xyz = data.descriptor_calculator.descriptors_contain_xyz
    feature_length = raw.shape[3] - (3 if contains_xyz else 0)
    # what predict_for_atoms sets up before its forward pass
    data.grid_dimension = grid
    data.grid_size = n_points
    log(f"descriptors {raw.shape} from {job['input']}: {n_points} points, {feature_length} feat.")

    def prepare(array):
        # Predictor.predict_for_atoms, serial branch, after the descriptor calculation
        if contains_xyz:
            array = array[:, :, :, 3:]
        array = array.reshape([n_points, feature_length])
        tensor = torch.from_numpy(array).float()
        data.input_data_scaler.transform(tensor)
        return tensor

    prepare_s, network_s, prediction = [], [], None
    warmup, repeats = int(job.get("warmup", 1)), int(job.get("repeats", 3))
    for i in range(warmup + repeats):
        fresh = raw.copy()  # the scaler works in place
        t0 = time.perf_counter()
        tensor = prepare(fresh)
        t1 = time.perf_counter()
        prediction = predictor._forward_snap_descriptors(tensor)
        t2 = time.perf_counter()
        if i >= warmup:
            prepare_s.append(t1 - t0)
            network_s.append(t2 - t1)
        log(
            f"{'warm-up' if i < warmup else 'repeat'} {i}: prepare {t1 - t0:.4f} s, "
            f"network {t2 - t1:.4f} s"
        )
    batch = int(params.running.mini_batch_size)
    result = {
        "points": n_points,
        "grid": grid,
        "features": feature_length,
        "outputs": int(prediction.shape[1]),
        "batch_size": batch,
        "prepare_s": prepare_s,
        "network_s": network_s,
        "s_per_point": median(network_s) / n_points,
        "s_per_point_incl_prepare": median(
            [a + b for a, b in zip(prepare_s, network_s, strict=True)]
        )
        / n_points,
    }
    prediction = prediction.reshape(grid + [prediction.shape[1]])
    if job.get("reference_output"):
        ref = np.load(job["reference_output"]).astype(np.float64)
        diff = prediction - ref
        result["errors"] = {
            "mse": float(np.mean(diff**2)),
            "max_abs": float(np.max(np.abs(diff))),
            "reference_rms": float(np.sqrt(np.mean(ref**2))),
        }
    if job.get("prediction_out"):
        np.save(job["prediction_out"], prediction.astype(np.float32))
        result["prediction_out"] = job["prediction_out"]
    return result


def infer_full_path(job, mala, torch, model: str) -> dict:
    import ase.io
    import numpy as np

    params, network, data, predictor = load_predictor(mala, model)
    if job.get("batch_size"):
        params.running.mini_batch_size = int(job["batch_size"])
    atoms = ase.io.read(job["atoms"])
    grid = [int(n) for n in job["grid"]]
    workdir = Path(tempfile.mkdtemp(prefix="mala_lammps_"))
    script = workdir / "in.bgrid.mala"
    script.write_text(LAMMPS_BGRID_SCRIPT)
    set_descriptor_parameters(params, job.get("descriptors"), str(script))
    params.use_lammps = True
    params.running.inference_data_grid = grid
    log(
        f"predict_for_atoms: {len(atoms)} atoms, grid {grid}, twojmax "
        f"{params.descriptors.bispectrum_twojmax}, rcutfac {params.descriptors.bispectrum_cutoff}"
    )

    # time MALA's two stages by wrapping its own calls on these instances
    stage = {}
    calc = data.descriptor_calculator
    inner_desc = calc.calculate_from_atoms
    inner_fwd = predictor._forward_snap_descriptors

    def timed_desc(*args, **kwargs):
        t0 = time.perf_counter()
        out = inner_desc(*args, **kwargs)
        stage["descriptors_s"] = time.perf_counter() - t0
        stage["descriptor_shape"] = list(out[0].shape)
        stage["descriptors"] = out[0]
        return out

    def timed_fwd(*args, **kwargs):
        t0 = time.perf_counter()
        out = inner_fwd(*args, **kwargs)
        stage["network_s"] = time.perf_counter() - t0
        return out

    calc.calculate_from_atoms = timed_desc
    predictor._forward_snap_descriptors = timed_fwd

    total, desc, net, other = [], [], [], []
    warmup, repeats = int(job.get("warmup", 1)), int(job.get("repeats", 3))
    cwd = os.getcwd()
    os.chdir(workdir)  # MALA writes its LAMMPS data and log files to the working directory
    try:
        for i in range(warmup + repeats):
            stage.clear()
            t0 = time.perf_counter()
            ldos = predictor.predict_for_atoms(atoms)
            t = time.perf_counter() - t0
            log(
                f"{'warm-up' if i < warmup else 'repeat'} {i}: total {t:.3f} s, descriptors "
                f"{stage['descriptors_s']:.3f} s, network {stage['network_s']:.3f} s"
            )
            if i >= warmup:
                total.append(t)
                desc.append(stage["descriptors_s"])
                net.append(stage["network_s"])
                other.append(t - stage["descriptors_s"] - stage["network_s"])
    finally:
        os.chdir(cwd)
        shutil.rmtree(workdir, ignore_errors=True)
    n_points = grid[0] * grid[1] * grid[2]
    extra = {}
    if job.get("descriptors_out"):  # MALA's descriptors, [nx,ny,nz,3+F] float32 as computed
        np.save(job["descriptors_out"], stage["descriptors"])
        extra["descriptors_out"] = job["descriptors_out"]
    if job.get("atoms_prediction_out"):
        np.save(
            job["atoms_prediction_out"], ldos.reshape(grid + [ldos.shape[1]]).astype(np.float32)
        )
        extra["atoms_prediction_out"] = job["atoms_prediction_out"]
    return {
        "atoms": len(atoms),
        "grid": grid,
        "points": n_points,
        "descriptor_shape": stage.get("descriptor_shape"),
        "ldos_shape": list(ldos.shape),
        "batch_size": int(params.running.mini_batch_size),
        "twojmax": params.descriptors.bispectrum_twojmax,
        "rcutfac": params.descriptors.bispectrum_cutoff,
        "total_s": total,
        "descriptors_s": desc,
        "network_s": net,
        "other_s": other,
        "s_per_point": median(total) / n_points,
        "descriptor_s_per_point": median(desc) / n_points,
        "network_s_per_point": median(net) / n_points,
        **extra,
    }


def job_infer(job: dict, mala, torch) -> dict:
    out = {"model": job["model"]}
    if job.get("input"):
        out["descriptors_given"] = infer_from_descriptors(job, mala, torch, job["model"])
    if job.get("atoms"):
        out["full_path"] = infer_full_path(job, mala, torch, job["model"])
    if len(out) == 1:
        raise ValueError("infer needs 'input' (X.in.npy) and/or 'atoms' + 'grid'")
    return out


# ----------------------------------------------------------------------------------------
# band_energy
# ----------------------------------------------------------------------------------------


def job_band_energy(job: dict, mala, torch) -> dict:
    import ase.io
    import numpy as np
    from ase.cell import Cell

    params = base_parameters(mala, job)
    set_energy_grid(params, job["energy_grid"])
    temperature = float(job["temperature_K"])
    units = job.get("ldos_units", "1/(eV*A^3)")
    results = []
    for snap in job["snapshots"]:
        t0 = time.perf_counter()
        ldos = mala.LDOS.from_numpy_file(params, snap["ldos"], units=units)
        t_load = time.perf_counter() - t0
        grid = list(ldos.local_density_of_states.shape[:3])
        if ldos.local_density_of_states.shape[3] != params.targets.ldos_gridsize:
            raise ValueError(
                f"{snap['ldos']} has {ldos.local_density_of_states.shape[3]} energies, "
                f"energy_grid count is {params.targets.ldos_gridsize}"
            )
        ldos.temperature = temperature
        if snap.get("electrons_per_atom") is not None:
            ldos.electrons_per_atom = float(snap["electrons_per_atom"])
        if snap.get("atoms"):
            atoms = ase.io.read(snap["atoms"])
            # sets voxel = cell / grid and, with electrons_per_atom, the electron count
            ldos.read_additional_calculation_data([atoms, grid], "atoms+grid")
        else:
            cell = np.array(snap["cell"], dtype=float)
            ldos.voxel = Cell(cell / np.array(grid, dtype=float)[:, None])
        if snap.get("number_of_electrons") is not None:
            ldos.number_of_electrons_exact = float(snap["number_of_electrons"])
        if ldos.number_of_electrons_exact is None:
            raise ValueError("give number_of_electrons, or electrons_per_atom with atoms")

        # MALA's cached-property path: LDOS -> DOS (grid summation x voxel volume) ->
        # self-consistent Fermi energy (toms748 on the analytically integrated electron
        # count) -> band energy (analytical integration against the Fermi function)
        t0 = time.perf_counter()
        fermi = float(ldos.fermi_energy)
        t_fermi = time.perf_counter() - t0
        t0 = time.perf_counter()
        band = float(ldos.band_energy)
        t_band = time.perf_counter() - t0
        dos = ldos.density_of_states
        dos_calc = ldos._density_of_states_calculator
        res = {
            "ldos": snap["ldos"],
            "grid": grid,
            "voxel_volume_A3": float(ldos.voxel.volume),
            "number_of_electrons_exact": float(ldos.number_of_electrons_exact),
            "temperature_K": temperature,
            "fermi_energy_ev": fermi,
            "band_energy_ev": band,
            "number_of_electrons_at_fermi": float(
                dos_calc.get_number_of_electrons(dos, fermi_energy=fermi)
            ),
            "dos_integral": float(np.sum(dos) * params.targets.ldos_gridspacing_ev),
            "timings": {"load_s": t_load, "fermi_s": t_fermi, "band_s": t_band},
        }
        if snap.get("fermi_energy_ev") is not None:
            ef = float(snap["fermi_energy_ev"])
            res["band_energy_at_given_fermi_ev"] = float(
                dos_calc.get_band_energy(dos, fermi_energy=ef)
            )
            res["given_fermi_energy_ev"] = ef
        log(f"{snap['ldos']}: E_F {fermi:.6f} eV, band energy {band:.6f} eV")
        results.append(res)
    return {
        "energy_grid": job["energy_grid"],
        "energy_grid_first_last_ev": [
            float(params.targets.ldos_gridoffset_ev),
            float(
                params.targets.ldos_gridoffset_ev
                + (params.targets.ldos_gridsize - 1) * params.targets.ldos_gridspacing_ev
            ),
        ],
        "snapshots": results,
    }


JOBS = {"train": job_train, "infer": job_infer, "band_energy": job_band_energy}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", type=Path, help="job JSON file")
    parser.add_argument("--result", type=Path, help="result JSON (default: the job's 'result')")
    args = parser.parse_args()
    job = json.loads(args.job.read_text())
    result_path = args.result or (Path(job["result"]) if job.get("result") else None)
    if result_path is None:
        parser.error("no result path: give --result or a 'result' key in the job")
    kind = job.get("job")
    threads = int(job.get("threads", 1))
    set_threads(threads)
    result = {"job": kind, "ok": False, "threads": threads, "job_file": str(args.job.resolve())}
    code = 1
    # MALA prints to stdout; send it to stderr with our progress
    with contextlib.redirect_stdout(sys.stderr):
        try:
            if kind not in JOBS:
                raise ValueError(f"unknown job {kind!r}; use one of {', '.join(JOBS)}")
            mala, torch, import_s = import_mala(threads)
            result["versions"] = versions(mala, torch)
            result["torch_threads"] = torch.get_num_threads()
            log(
                f"{kind}: MALA {mala.__version__}, torch {torch.__version__}, "
                f"{torch.get_num_threads()} thread(s)"
            )
            t0 = time.perf_counter()
            result.update(JOBS[kind](job, mala, torch))
            result["wall_s"] = time.perf_counter() - t0
            result.setdefault("timings", {})["import_s"] = import_s
            result["ok"] = True
            code = 0
        except Exception as err:
            result["error"] = f"{type(err).__name__}: {err}"
            result["traceback"] = traceback.format_exc()
            log(result["traceback"])
    result_path.parent.mkdir(parents=True, exist_ok=True)
    result_path.write_text(json.dumps(result, indent=2) + "\n")
    log(f"result: {result_path}")
    return code


if __name__ == "__main__":
    sys.exit(main())
