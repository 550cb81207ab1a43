"""Multi-worker training: two real workers on 127.0.0.1 stay in sync and only the chief writes.

Plus the pieces that need no cluster: TF_CONFIG checks, worker order, and the early-stopping /
learning-rate decisions compared with the Keras callbacks that the single-machine path uses.
"""
from __future__ import annotations

import csv
import json
import os
import re
import socket
import stat
import subprocess
import sys

import keras
import numpy as np
import pytest

from gtzan_tf.config import Config
from gtzan_tf.errors import UserError
from gtzan_tf.training import multiworker
from gtzan_tf.training.multiworker import HISTORY_COLUMNS, check_tf_config, weights_digest, worker_role

from conftest import ROOT

# The config the tiny features were prepared with (conftest.TINY), on the command line.
TINY_FLAGS = ["--set", "data.validation_per_genre=1", "--set", "data.embeddings="]
DIGEST = re.compile(r"^worker (\d+) final weights sha256=([0-9a-f]{64})$", re.MULTILINE)
CHIEF_UMASK, WORKER_UMASK = 0o022, 0o077


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_two_workers_train_in_sync_and_only_the_chief_writes(tiny_data, tiny_features, tmp_path):
    run = tmp_path / "runs" / "mw"
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    cmd = [sys.executable, "train.py", "--strategy", "multiworker", "--model", "cnn1d", "--data", str(tiny_data),
           "--out", str(run), "--features", str(tiny_features), "--epochs", "2", "--batch-size", "8", "--quiet",
           *TINY_FLAGS]
    procs = []
    for index in range(2):
        scratch = tmp_path / f"tmp{index}"
        scratch.mkdir()
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            # Two processes on two cores: one compute thread each.
            "TF_NUM_INTRAOP_THREADS": "1",
            "TF_NUM_INTEROP_THREADS": "2",
            "OMP_NUM_THREADS": "1",
            "TMPDIR": str(scratch),
        }
        # Files made by the non-chief would lack group/other permission bits: checked below.
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, umask=CHIEF_UMASK if index == 0 else WORKER_UMASK))
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=300))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for index, (proc, (out, err)) in enumerate(zip(procs, outputs)):
        assert proc.returncode == 0, f"worker {index} failed:\n{out}\n{err[-4000:]}"

    digests = {}
    for out, _ in outputs:
        found = DIGEST.findall(out)
        assert len(found) == 1, out
        digests[int(found[0][0])] = found[0][1]
    assert sorted(digests) == [0, 1]
    assert digests[0] == digests[1], "the replicas ended with different weights"

    assert {p.name for p in run.iterdir()} >= {"config.json", "history.csv", "best.weights.h5", "run.json",
                                               "saved_model", "serving"}
    assert not (run / multiworker.BACKUP).exists(), "the chief removes its backup after training"
    summary = json.loads((run / "run.json").read_text())
    assert summary["epochs_run"] == 2 and summary["model"] == "cnn1d"
    assert 0.0 <= summary["test_clip_accuracy"] <= 1.0
    with open(run / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == HISTORY_COLUMNS
    assert [int(r["epoch"]) for r in rows] == [0, 1]

    # Nothing under RUN was made by the non-chief, and its checkpoint scratch folder is gone.
    for path in [run, *run.rglob("*")]:
        assert path.stat().st_mode & stat.S_IRGRP, f"{path} was written by the non-chief worker"
    assert not any((tmp_path / "tmp1").iterdir())


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
    assert worker_role({}).is_chief
    workers_only = {"cluster": {"worker": ["a:1", "b:2"]}}
    assert worker_role({**workers_only, "task": {"type": "worker", "index": 0}}).is_chief
    assert worker_role({**workers_only, "task": {"type": "worker", "index": 1}}).index == 1
    with_chief = {"cluster": {"chief": ["c:0"], "worker": ["a:1", "b:2"]}}
    assert worker_role({**with_chief, "task": {"type": "chief", "index": 0}}).is_chief
    assert worker_role({**with_chief, "task": {"type": "worker", "index": 0}}).index == 1


def test_unsupported_settings_fail_before_any_work(tmp_path):
    for train in ({"seeds": 2}, {"jit": True}, {"model": "cnn1d", "freeze_backbone_epochs": 1}):
        cfg = Config().replace(train={"model": "cnn1d", **train})
        with pytest.raises(UserError):
            multiworker.train_multiworker(cfg, tmp_path / "data", tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_epoch_end_decisions_match_the_keras_callbacks():
    """Early stopping on val_clip_accuracy and ReduceLROnPlateau on val_loss, epoch by epoch."""
    cfg = Config().replace(train={"learning_rate": 1e-3, "early_stopping_patience": 4, "reduce_lr_patience": 2})
    clip_accuracy = [0.1, 0.3, 0.3, 0.2, 0.35, 0.3, 0.3, 0.3, 0.34, 0.2, 0.1]
    val_loss = [2.0, 1.9, 1.95, 1.89995, 1.97, 1.8, 1.81, 1.82, 1.7999, 1.9, 2.0]

    reference = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    reference.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    stopping = keras.callbacks.EarlyStopping(monitor="val_clip_accuracy", mode="max",
                                             patience=cfg.train.early_stopping_patience)
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=cfg.train.reduce_lr_patience)
    for callback in (stopping, plateau):
        callback.set_model(reference)
        callback.on_train_begin()

    optimizer = keras.optimizers.Adam(1e-3)
    state = multiworker._State()
    best_so_far, stopped_at = -np.inf, None
    for epoch, (clip, loss) in enumerate(zip(clip_accuracy, val_loss)):
        stopping.on_epoch_end(epoch, {"val_clip_accuracy": clip})
        plateau.on_epoch_end(epoch, {"val_loss": loss})
        logs = {"val_clip_accuracy": clip, "val_loss": loss, "learning_rate": float(optimizer.learning_rate)}
        improved, stop = multiworker._end_of_epoch(cfg, state, optimizer, logs, epoch)
        assert improved == (clip > best_so_far), epoch  # ModelCheckpoint(save_best_only=True, mode="max")
        best_so_far = max(best_so_far, clip)
        assert float(optimizer.learning_rate) == pytest.approx(float(reference.optimizer.learning_rate)), epoch
        assert stop == reference.stop_training, epoch
        if stop:
            stopped_at = epoch
            break
    assert stopped_at == 8
    assert float(optimizer.learning_rate) < 1e-3


def test_weights_digest_covers_every_weight():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.BatchNormalization()])
    before = weights_digest(model)
    assert before == weights_digest(model)
    model.layers[-1].moving_mean.assign(np.ones(2, np.float32))  # a non-trainable weight
    assert weights_digest(model) != before
