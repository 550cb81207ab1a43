"""Multi-worker training: real two-worker clusters on 127.0.0.1 split every global batch, stay in
sync, match one process with the same global batch, resume after a killed worker, and only the
chief writes.

Plus the pieces that need no cluster: TF_CONFIG checks, worker order, refused settings and the
callbacks both training paths share.
"""
from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from gtzan_tf.config import Config
from gtzan_tf.errors import UserError
from gtzan_tf.training import experiment, multiworker, trainer
from gtzan_tf.training.callbacks import BACKUP, ClipMetrics, make_callbacks
from gtzan_tf.training.multiworker import check_tf_config, local_tf_configs, weights_digest, worker_index

from conftest import ROOT

# The config the tiny features were prepared with (conftest.TINY), on the command line.
TINY_FLAGS = ["--set", "data.validation_per_genre=1", "--set", "data.embeddings="]
EPOCHS, BATCH = 2, 8
REPLICAS = re.compile(r"^worker (\d+): num_replicas_in_sync=(\d+)$", re.MULTILINE)
READ = re.compile(r"^worker (\d+) read (\d+) training segments, clip ids sha256=([0-9a-f]{64})$", re.MULTILINE)
DIGEST = re.compile(r"^worker (\d+) final weights sha256=([0-9a-f]{64})$", re.MULTILINE)
CHIEF_UMASK, WORKER_UMASK = 0o022, 0o077
# Two replicas of batch 8 against one of batch 16: the same sums in another order (float32).
ONE_PROCESS_ATOL = 1e-5


def start_workers(run: Path, tiny_data: Path, tiny_features: Path, workers: int, batch_size: int) -> list:
    """`train.py --strategy multiworker` as `workers` local processes, each in its own process group.

    Returns (process, stdout file, stderr file) per worker; the non-chief runs with umask 077, so
    that any file it made under RUN lacks group/other read permission.
    """
    tf_configs = local_tf_configs(workers)
    cmd = [sys.executable, "train.py", "--strategy", "multiworker", "--model", "cnn1d", "--data", str(tiny_data),
           "--out", str(run), "--features", str(tiny_features), "--epochs", str(EPOCHS),
           "--batch-size", str(batch_size), "--quiet", *TINY_FLAGS]
    started = []
    for index in range(workers):
        logs = run.parent / f"{run.name}-worker{index}"
        (logs / "tmp").mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "TF_CONFIG": tf_configs[index],
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONUNBUFFERED": "1",
            # Two processes on two cores: one compute thread each.
            "TF_NUM_INTRAOP_THREADS": "1",
            "TF_NUM_INTEROP_THREADS": "2",
            "OMP_NUM_THREADS": "1",
            "TMPDIR": str(logs / "tmp"),
        }
        out, err = logs / "stdout", logs / "stderr"
        with open(out, "w") as stdout, open(err, "w") as stderr:
            process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=stdout, stderr=stderr, start_new_session=True,
                                       umask=CHIEF_UMASK if index == 0 else WORKER_UMASK)
        started.append((process, out, err))
    return started


def stop(started: list) -> None:
    for process, _, _ in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def run_workers(run: Path, tiny_data: Path, tiny_features: Path, workers: int, batch_size: int) -> list[str]:
    """Start the workers, wait for all (bounded), return each one's stdout."""
    started = start_workers(run, tiny_data, tiny_features, workers, batch_size)
    try:
        for index, (process, out, err) in enumerate(started):
            assert process.wait(timeout=300) == 0, f"worker {index} failed:\n{out.read_text()}\n{err.read_text()[-4000:]}"
    finally:
        stop(started)
    return [out.read_text() for _, out, _ in started]


def reports(outputs: list[str]) -> dict:
    """What each worker printed: replicas, (segments read, clip-id digest) and final weights digest."""
    found = {"replicas": {}, "read": {}, "weights": {}}
    for out in outputs:
        found["replicas"].update({int(i): int(n) for i, n in REPLICAS.findall(out)})
        found["read"].update({int(i): (int(n), digest) for i, n, digest in READ.findall(out)})
        found["weights"].update({int(i): digest for i, digest in DIGEST.findall(out)})
    return found


def train_segments(tiny_features: Path) -> int:
    return json.loads((tiny_features / "manifest.json").read_text())["splits"]["train"]["segments"]


def weights(path: Path) -> dict:
    arrays = {}
    with h5py.File(path) as f:
        f.visititems(lambda name, item: arrays.update({name: item[()]}) if isinstance(item, h5py.Dataset) else None)
    return arrays


def history(run: Path) -> list[dict]:
    with open(run / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def two_workers(tiny_data, tiny_features, tmp_path_factory):
    """An uninterrupted two-worker run: (run folder, each worker's stdout)."""
    run = tmp_path_factory.mktemp("runs") / "two"
    return run, run_workers(run, tiny_data, tiny_features, workers=2, batch_size=BATCH)


def test_two_workers_split_every_global_batch_and_end_in_sync(two_workers, tiny_features):
    _, outputs = two_workers
    found = reports(outputs)
    assert found["replicas"] == {0: 2, 1: 2}, "num_replicas_in_sync is not 2: the workers are not one cluster"
    (read0, ids0), (read1, ids1) = found["read"][0], found["read"][1]
    # 32 segments an epoch in global batches of 2 x 8: each worker reads half of every batch.
    assert read0 == read1 == train_segments(tiny_features) * EPOCHS // 2
    assert ids0 != ids1, "both workers trained on the same segments"
    assert found["weights"][0] == found["weights"][1], "the replicas ended with different weights"


def test_only_the_chief_writes_the_run_folder(two_workers):
    run, _ = two_workers
    assert {p.name for p in run.iterdir()} >= {"config.json", "history.csv", "best.weights.h5", "run.json",
                                               "saved_model", "serving"}
    assert not (run / BACKUP).exists(), "the chief's BackupAndRestore removes the backup after training"
    summary = json.loads((run / "run.json").read_text())
    assert summary["epochs_run"] == EPOCHS and summary["model"] == "cnn1d"
    assert 0.0 <= summary["test_clip_accuracy"] <= 1.0
    rows = history(run)
    assert [int(r["epoch"]) for r in rows] == list(range(EPOCHS))
    assert set(rows[0]) == {"epoch", "accuracy", "loss", "learning_rate", "val_accuracy", "val_loss", "val_clip_accuracy",
                            "val_clip_loss", "val_clip_rank"}
    for path in [run, *run.rglob("*")]:
        assert path.stat().st_mode & stat.S_IRGRP, f"{path} was written by the non-chief worker"
    assert not any((run.parent / f"{run.name}-worker1" / "tmp").iterdir()), "the non-chief's scratch folder is left"


def test_two_workers_equal_one_process_with_the_same_global_batch(two_workers, tiny_data, tiny_features, tmp_path):
    run, _ = two_workers
    alone = tmp_path / "runs" / "one"
    found = reports(run_workers(alone, tiny_data, tiny_features, workers=1, batch_size=2 * BATCH))
    assert found["replicas"] == {0: 1} and found["read"][0][0] == train_segments(tiny_features) * EPOCHS
    for two, one in zip(history(run), history(alone), strict=True):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "val_clip_accuracy", "val_clip_loss"):
            assert float(two[key]) == pytest.approx(float(one[key]), abs=ONE_PROCESS_ATOL), (two["epoch"], key)
    two, one = weights(run / "best.weights.h5"), weights(alone / "best.weights.h5")
    assert two.keys() == one.keys()
    for name in two:
        np.testing.assert_allclose(two[name], one[name], rtol=0, atol=ONE_PROCESS_ATOL, err_msg=name)


def test_a_killed_worker_resumes_to_the_uninterrupted_weights(two_workers, tiny_data, tiny_features, tmp_path):
    run = tmp_path / "runs" / "killed"
    started = start_workers(run, tiny_data, tiny_features, workers=2, batch_size=BATCH)
    try:
        chief, chief_out, chief_err = started[0]
        deadline = time.monotonic() + 300
        while "Epoch 2/" not in chief_out.read_text():  # printed once the chief has backed up epoch 1
            assert chief.poll() is None and time.monotonic() < deadline, chief_err.read_text()[-4000:]
            time.sleep(0.2)
        os.killpg(started[1][0].pid, signal.SIGKILL)
        assert chief.wait(timeout=120) == 2, "the chief does not stop when a worker is lost"
        error = chief_err.read_text()
        assert "error: worker 0: another worker of the cluster stopped" in error and "Traceback" not in error
    finally:
        stop(started)
    assert (run / BACKUP).is_dir() and [int(r["epoch"]) for r in history(run)] == [0]

    found = reports(run_workers(run, tiny_data, tiny_features, workers=2, batch_size=BATCH))
    assert found["read"][0][0] == found["read"][1][0] == train_segments(tiny_features) // 2, "not resumed at epoch 2"
    assert found["weights"][0] == found["weights"][1] == reports(two_workers[1])["weights"][0]
    assert [int(r["epoch"]) for r in history(run)] == list(range(EPOCHS))
    assert not (run / BACKUP).exists()


def start_alone(tiny_data: Path, tiny_features: Path, run: Path, *extra: str) -> tuple[subprocess.Popen, list[str]]:
    """Worker 0 of a two-worker TF_CONFIG whose worker 1 never starts: the process and both addresses."""
    tf_config = local_tf_configs(2)[0]
    cmd = [sys.executable, "train.py", "--strategy", "multiworker", "--model", "cnn1d", "--data", str(tiny_data),
           "--out", str(run), "--features", str(tiny_features), "--quiet", *TINY_FLAGS, *extra]
    process = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "TF_CONFIG": tf_config}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    return process, json.loads(tf_config)["cluster"]["worker"]


def listening(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as s:
        return s.connect_ex((host, int(port))) == 0


@pytest.mark.parametrize("signum, line", [(signal.SIGTERM, "stopped by SIGTERM"), (signal.SIGINT, "interrupted")])
def test_a_worker_waiting_for_its_peers_stops_on_a_signal_with_one_line(signum, line, tiny_data, tiny_features, tmp_path):
    run = tmp_path / "run"
    process, (own, _) = start_alone(tiny_data, tiny_features, run)
    try:
        deadline = time.monotonic() + 300
        while not listening(own):  # TensorFlow's server is up: the worker waits for its peer inside TensorFlow
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-3000:]
            time.sleep(0.2)
        time.sleep(1.0)
        process.send_signal(signum)  # to the process train.py started as, as a scheduler or Ctrl-C does
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 128 + signum and "Traceback" not in err
    assert err.strip().splitlines()[-2:] == ["worker 0: waiting up to 300 s for the workers of TF_CONFIG", line]
    assert not listening(own), "the waiting worker is still running"
    assert not run.exists()


def test_a_worker_whose_peer_never_comes_gives_up_naming_it(tiny_data, tiny_features, tmp_path):
    run = tmp_path / "run"
    process, (_, missing) = start_alone(tiny_data, tiny_features, run, "--worker-timeout", "5")
    try:
        _, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [
        "worker 0: waiting up to 5 s for the workers of TF_CONFIG",
        f"error: worker 0: gave up after 5 s waiting for {missing} of TF_CONFIG; start every worker within "
        "train.worker_timeout_seconds (--worker-timeout) of the others"]
    assert not run.exists()


def test_the_missing_workers_are_read_from_tensorflows_message():
    tf_config = {"cluster": {"chief": ["c:0"], "worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}
    leader = ("Barrier timed out. Id: [Init]Wait_for_all_tasks_to_register::0.\n# of tasks that reached the barrier: 1/3."
              "\nThe first task at the barrier: /job:chief/replica:0/task:0. Some timed out task names:\n"
              "/job:worker/replica:0/task:0\n/job:worker/replica:0/task:1\n\nAdditional GRPC error information from "
              "remote target /job:chief/replica:0/task:0 while calling /tensorflow.CoordinationService/RegisterTask")
    assert multiworker._missing_workers(leader, tf_config, 0) == ["a:1", "b:2"]
    other = ("Deadline Exceeded\nAdditional GRPC error information from remote target /job:chief/replica:0/task:0 "
             "while calling /tensorflow.CoordinationService/RegisterTask:\n:UNKNOWN:Error received from peer")
    assert multiworker._missing_workers(other, tf_config, 1) == ["c:0"]
    assert multiworker._missing_workers("Deadline Exceeded", tf_config, 1) == ["c:0", "b:2"]


def test_tf_config_errors_are_one_clear_line(monkeypatch):
    cases = {
        "{not json": "not valid JSON",
        json.dumps({"cluster": {"worker": ["a:1"]}}): '"cluster" and "task"',
        json.dumps({"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker", "index": 0}}): "only",
        json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}): "task index 2",
    }
    for raw, message in cases.items():
        monkeypatch.setenv("TF_CONFIG", raw)
        with pytest.raises(UserError, match=message):
            check_tf_config()
    monkeypatch.delenv("TF_CONFIG")
    assert check_tf_config() == {}


def test_worker_order_puts_the_chief_first():
    assert worker_index({}) == 0
    workers_only = {"cluster": {"worker": ["a:1", "b:2"]}}
    assert worker_index({**workers_only, "task": {"type": "worker", "index": 0}}) == 0
    assert worker_index({**workers_only, "task": {"type": "worker", "index": 1}}) == 1
    with_chief = {"cluster": {"chief": ["c:0"], "worker": ["a:1", "b:2"]}}
    assert worker_index({**with_chief, "task": {"type": "chief", "index": 0}}) == 0
    assert worker_index({**with_chief, "task": {"type": "worker", "index": 0}}) == 1


def test_unsupported_settings_fail_before_any_work(tmp_path):
    for train in ({"seeds": 2}, {"jit": True}, {"model": "cnn1d", "freeze_backbone_epochs": 1}):
        cfg = Config().replace(train={"model": "cnn1d", **train})
        with pytest.raises(UserError):
            multiworker.train_multiworker(cfg, tmp_path / "data", tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_both_paths_build_one_callback_list(tmp_path):
    """train_one (model.fit) and the multi-worker loop take their callbacks from make_callbacks."""
    kinds = [type(c).__name__ for c in make_callbacks(Config(), tmp_path, val_clips=object())]
    assert kinds == ["DiskRoom", "ClipMetrics", "ModelCheckpoint", "EarlyStopping", "ReduceLROnPlateau", "TensorBoard",
                     "CSVLogger", "TerminateOnNaN", "CallbackState", "BackupAndRestore"]
    scheduled = make_callbacks(Config().replace(train={"schedule": "cosine"}), tmp_path, val_clips=None)
    assert not any(isinstance(c, (ClipMetrics, keras.callbacks.ReduceLROnPlateau)) for c in scheduled)
    for module in (trainer, multiworker):
        assert module.make_callbacks is make_callbacks


def test_model_fit_refuses_multiworker(tmp_path):
    cfg = Config().replace(train={"model": "cnn1d", "strategy": "multiworker"})
    with pytest.raises(UserError, match="keras-team/keras#20585"):
        experiment.train(cfg, tmp_path / "data", tmp_path / "run")


def test_weights_digest_covers_every_weight():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.BatchNormalization()])
    before = weights_digest(model)
    assert before == weights_digest(model)
    model.layers[-1].moving_mean.assign(np.ones(2, np.float32))  # a non-trainable weight
    assert weights_digest(model) != before
