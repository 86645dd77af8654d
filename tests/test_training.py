"""Training: loss goes down, runs are reproducible, resume after SIGKILL, DDP, errors.

The snapshots are synthetic: random descriptors and an LDOS that is a smooth function of
them (0.45 + 0.1 tanh(d·M)), so a small network learns it in a few epochs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from test_dataset import make_snapshot

from nearsight import cli
from nearsight.config import DescriptorsConfig, dumps_toml, load_config
from nearsight.descriptors.compute import metadata
from nearsight.errors import InputError
from nearsight.io.dataset import PseudoRecord, read_snapshot, store_descriptors, write_snapshot
from nearsight.model.bundle import Bundle
from nearsight.model.inference import predict_ldos
from nearsight.model.training import TrainResult, train

REPO = Path(__file__).resolve().parents[1]
UPF = REPO / "examples" / "al" / "pseudo" / "Al.pz-vbc.UPF"
DESCRIPTORS = DescriptorsConfig(twojmax=2)
N_FEATURES = int(metadata(DESCRIPTORS)["features"])  # 5 at twojmax 2
N_ENERGIES = 7
ECUTRHO = 8.0
"""Ry; the smallest density cutoff for which QE's Ewald sum converges (12 electrons)."""
SHAPE = (10, 9, 8)
"""The coarsest grid of the 4.05 Å cell that resolves ECUTRHO (physical metrics run)."""
MAPPING = np.random.default_rng(123).normal(size=(N_FEATURES, N_ENERGIES))


def subprocess_env() -> dict[str, str]:
    """Environment of a child `nearsight train`: one thread per process."""
    return dict(os.environ, OMP_NUM_THREADS="1")


def synthetic_snapshot(path: Path, index: int, shape: tuple[int, int, int]) -> Path:
    """A snapshot whose LDOS [.., 7] is a smooth function of its 5 descriptors."""
    rng = np.random.default_rng(100 + index)
    n = int(np.prod(shape))
    desc = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    ldos = 0.45 + 0.1 * np.tanh(desc @ MAPPING)
    text = UPF.read_text()
    record = PseudoRecord("Al", UPF.name, hashlib.sha256(text.encode()).hexdigest(), text)
    snap = make_snapshot(shape=shape, ne=N_ENERGIES, seed=index)
    snap = dataclasses.replace(
        snap,
        ldos=ldos.reshape(*shape, N_ENERGIES).astype(np.float32),
        pseudopotentials={"Al": record},
        qe=dataclasses.replace(snap.qe, ecutwfc_ry=2.0, ecutrho_ry=ECUTRHO, fft_grid=shape),
    )
    write_snapshot(path, snap)
    store_descriptors(path, desc.reshape(*shape, N_FEATURES), metadata(DESCRIPTORS))
    return path


def make_project(root: Path, shape: tuple[int, int, int] = SHAPE, **sections: dict) -> Path:
    """3 training and 1 validation snapshot and a config.toml; ``sections`` override it."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        synthetic_snapshot(root / f"train_{i}.h5", i, shape)
    synthetic_snapshot(root / "val_0.h5", 9, shape)
    config = {
        "seed": 3,
        "output_dir": "run",
        "descriptors": {"twojmax": 2},
        "data": {"train": ["train_*.h5"], "validation": ["val_*.h5"]},
        "network": {"hidden": [32], "activations": ["tanh"]},
        "training": {
            "learning_rate": 0.03,
            "batch_size": 16,
            "max_epochs": 6,
            "early_stopping_patience": 50,
            "threads": 1,
        },
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values} if isinstance(values, dict) else values
    path = root / "config.toml"
    path.write_text(dumps_toml(config))
    return path


def set_entries(path: Path, section: str, **values: object) -> None:
    """Rewrite one section of a config file written by :func:`make_project`."""
    import tomllib

    raw = tomllib.loads(path.read_text())
    raw[section] = {**raw[section], **values}
    path.write_text(dumps_toml(raw))


def weights(bundle_path: Path) -> dict[str, torch.Tensor]:
    return Bundle.load(bundle_path).network.state_dict()


def without_seconds(history: list[dict]) -> list[dict]:
    """History records minus wall times, which no two runs share."""
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def train_project(config_path: Path, output_dir: str, **kwargs: object) -> TrainResult:
    config, base = load_config(config_path)
    return train(dataclasses.replace(config, output_dir=output_dir), base, **kwargs)


def test_loss_decreases_and_the_best_weights_are_the_model(tmp_path: Path) -> None:
    project = make_project(tmp_path, training={"metrics_every": 3})
    lines: list[str] = []
    calls: list[tuple[int, int, int, float]] = []
    result = train_project(
        project, "run_basic", log=lines.append, progress=lambda *a: calls.append(a)
    )
    history = result.history
    assert [h["epoch"] for h in history] == list(range(1, 7))
    val = [h["validation_loss"] for h in history]
    assert val[-1] < 0.5 * val[0] and history[-1]["train_loss"] < history[0]["train_loss"]
    assert result.best_epoch == int(np.argmin(val)) + 1
    assert result.best_validation_loss == min(val)
    assert not result.stopped_early and result.resumed_from_epoch is None
    # 2160 training points in batches of 16: 135 batches per epoch, reported one by one.
    assert len(calls) == 6 * 135 and calls[134][:3] == (1, 135, 135)
    assert all(np.isfinite(c[3]) for c in calls)

    bundle = Bundle.load(result.bundle_path)
    assert result.bundle_path == project.parent / "run_basic" / "model.safetensors"
    assert bundle.temperature_k == 298.0 and bundle.electrons_per_atom == {"Al": 3.0}
    assert bundle.ecutrho_ry == ECUTRHO and bundle.energy_grid.n == N_ENERGIES
    np.testing.assert_allclose(bundle.grid_spacing, [4.05 / 10, 4.05 / 9, 4.05 / 8])
    prov = bundle.provenance
    assert prov["history"]["best_epoch"] == result.best_epoch and prov["seed"] == 3
    assert [f["file"] for f in prov["training_files"]] == [f"train_{i}.h5" for i in range(3)]
    assert (
        prov["validation_files"][0]["sha256"]
        == hashlib.sha256((project.parent / "val_0.h5").read_bytes()).hexdigest()
    )
    # The bundle predicts the validation LDOS with exactly the best epoch's error.
    snap = read_snapshot(project.parent / "val_0.h5")
    pred = predict_ldos(
        bundle.network,
        bundle.input_scaler,
        bundle.output_scaler,
        snap.descriptors.reshape(-1, N_FEATURES),
    )
    scale = bundle.output_scaler
    mse = np.mean(
        (scale.transform(pred.astype(np.float64)) - scale.transform(
            snap.ldos.reshape(-1, N_ENERGIES).astype(np.float64)
        )) ** 2
    )  # fmt: skip
    np.testing.assert_allclose(mse, result.best_validation_loss, rtol=1e-4)

    out = project.parent / "run_basic"
    assert without_seconds(json.loads((out / "history.json").read_text())) == without_seconds(
        history
    )
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 6 and state["early_stopping"]["best_epoch"] == result.best_epoch
    for key, value in bundle.network.state_dict().items():
        assert torch.equal(value, state["early_stopping"]["best_weights"][key])
    assert re.fullmatch(
        r"epoch 1  train \d\.\d{3}e[-+]\d\d  val \d\.\d{3}e[-+]\d\d  lr 3\.0e-02  "
        r"\d+\.\d\d s  best",
        lines[2],
    ), lines[2]
    # Physical metrics every 3 epochs, and of the best weights at the end.
    assert [("band_energy_mae_mev_per_atom" in h) for h in history] == [False, False, True] * 2
    assert "| band " in lines[4] and "| band " not in lines[3]
    assert lines[-2].startswith(f"best epoch {result.best_epoch} of 6: val ")
    assert "| band " in lines[-2] and "meV/atom" in lines[-2] and "density" in lines[-2]
    assert result.metrics["density_mape_percent"] >= 0


@pytest.mark.parametrize("lazy", [False, True])
def test_same_config_and_seed_give_identical_weights_and_history(
    tmp_path: Path, lazy: bool
) -> None:
    path = make_project(
        tmp_path, data={"lazy": lazy, "block_points": 200}, training={"max_epochs": 3}
    )
    first = train_project(path, "run_a")
    second = train_project(path, "run_b")
    assert first.history[-1]["validation_loss"] < first.history[0]["validation_loss"]
    assert without_seconds(first.history) == without_seconds(second.history)
    a, b = weights(first.bundle_path), weights(second.bundle_path)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_early_stopping_and_learning_rate_plateau(tmp_path: Path) -> None:
    # One tiny gradient step per epoch: no epoch improves by the scheduler's relative 1e-4
    # or early stopping's 1%, so the learning rate halves after 2 bad epochs (patience 1)
    # and training stops after 3.
    path = make_project(
        tmp_path,
        training={
            "optimizer": "sgd",
            "batch_size": 4096,
            "learning_rate": 1e-6,
            "min_learning_rate": 1e-9,
            "lr_patience": 1,
            "early_stopping_patience": 3,
            "early_stopping_min_delta": 0.01,
            "max_epochs": 20,
        },
    )
    lines: list[str] = []
    config, base = load_config(path)
    result = train(config, base, log=lines.append)
    assert result.stopped_early and len(result.history) == 4 and result.best_epoch == 1
    assert [h["learning_rate"] for h in result.history] == [1e-6, 1e-6, 1e-6, 5e-7]
    assert any(line.startswith("stopped early") for line in lines)
    # The model is epoch 1's weights, not the last epoch's.
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    model = weights(result.bundle_path)
    assert all(torch.equal(model[k], v) for k, v in state["early_stopping"]["best_weights"].items())
    assert not all(torch.equal(model[k], v) for k, v in state["model"].items())


def test_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    # A bigger grid and small batches make an epoch take about 0.2-0.5 s, so the kill
    # lands in the middle of the run.
    path = make_project(
        tmp_path,
        shape=(12, 10, 10),
        network={"hidden": [32, 32]},
        training={"batch_size": 8, "max_epochs": 6},
    )
    reference = train_project(path, "reference")
    command = [sys.executable, "-m", "nearsight", "train", str(path)]
    env = subprocess_env()
    history_file = tmp_path / "run" / "history.json"
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        seen = 0
        deadline = time.monotonic() + 120
        while seen < 3:
            assert proc.poll() is None, f"finished before it was killed:\n{proc.stdout.read()}"
            assert time.monotonic() < deadline, "no 3 epochs within 120 s"
            if history_file.is_file():
                seen = len(json.loads(history_file.read_text()))
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert seen < 6, "the run ended before the kill; make epochs slower"
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    resumed = int(re.search(r"resuming from epoch (\d+)", rerun.stdout).group(1))
    assert resumed >= seen, "at most the epoch in progress may be lost"
    history = json.loads(history_file.read_text())
    assert without_seconds(history) == without_seconds(reference.history)
    a, b = weights(reference.bundle_path), weights(tmp_path / "run" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ bitwise"
    log = (tmp_path / "run" / "train.log").read_text()
    assert "resuming from epoch" in log and "wrote" in log


def test_distributed_data_parallel_matches_one_process(tmp_path: Path) -> None:
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available in this build")
    # Batches of 15 split 7 + 8 over the ranks; a moderate learning rate keeps Adam from
    # amplifying rounding differences (they stay near 1e-7 here).
    path = make_project(
        tmp_path, training={"batch_size": 15, "max_epochs": 4, "learning_rate": 0.01}
    )
    single = train_project(path, "single")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
        "-m", "nearsight", "train", str(path), "-o", str(tmp_path / "ddp"),
    ]  # fmt: skip
    run = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    # Only rank 0 prints: one log line per epoch.
    assert len(re.findall(r"^epoch +\d", run.stdout, flags=re.M)) == 4, run.stdout
    ddp = json.loads((tmp_path / "ddp" / "history.json").read_text())
    # Each rank sums the gradient of its half of a batch and gloo adds the halves: the
    # same terms in another order, so float32 rounding differs slightly from one process.
    np.testing.assert_allclose(
        [h["validation_loss"] for h in ddp],
        [h["validation_loss"] for h in single.history],
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        [h["train_loss"] for h in ddp], [h["train_loss"] for h in single.history], rtol=1e-5
    )
    assert Bundle.load(tmp_path / "ddp" / "model.safetensors").provenance["ranks"] == 2


def test_checkpoint_of_another_config_is_refused_unless_restart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_project(tmp_path, training={"max_epochs": 2})
    assert cli.main(["train", str(path)]) == 0
    assert "wrote" in capsys.readouterr().out
    set_entries(path, "training", learning_rate=0.02)
    assert cli.main(["train", str(path)]) == 1
    err = capsys.readouterr().err
    assert "checkpoint.pt" in err and "--restart" in err and "different configuration" in err
    with pytest.raises(InputError, match="checkpoint"):
        train(*load_config(path))
    assert cli.main(["train", str(path), "--restart", "--epochs", "3"]) == 0
    out = capsys.readouterr().out
    assert "resuming" not in out and "best epoch" in out
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history) == 3 and history[0]["learning_rate"] == 0.02
    # Settings that do not change an epoch's numbers may change between runs: more epochs
    # continue the finished run.
    assert cli.main(["train", str(path), "--epochs", "4"]) == 0
    assert "resuming from epoch 3" in capsys.readouterr().out
    model = tmp_path / "run" / "model.safetensors"
    before = weights(model)
    # A finished run trains nothing when run again, and writes the same model.
    assert cli.main(["train", str(path), "--epochs", "4"]) == 0
    assert "already complete after 4 epochs" in capsys.readouterr().out
    assert all(torch.equal(before[k], v) for k, v in weights(model).items())
    assert len(json.loads((tmp_path / "run" / "history.json").read_text())) == 4


def test_missing_training_files_are_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_project(tmp_path, data={"train": []})
    with pytest.raises(InputError, match=r"\[data.train\] no snapshot files given"):
        train(*load_config(path))
    set_entries(path, "data", train=["missing_*.h5"])
    assert cli.main(["train", str(path)]) == 1
    err = capsys.readouterr().err
    assert "data.train" in err and "missing_*.h5" in err and "fix:" in err
