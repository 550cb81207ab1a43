"""train.py end to end: registry listing, training with exports, resuming, and clear errors."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from gtzan_tf.data.pipeline import eval_clip_dataset, load_feature_set
from gtzan_tf.inference import load_run
from gtzan_tf.models.registry import MODEL_NAMES

from conftest import ROOT, run_cli

EXPECTED_MODELS = [
    "cnn1d", "cnn1d_q1", "mlp_msd", "mlp_mtt", "cnn2d", "cnn2d_msd", "vgg13", "vgg16", "vgg19",
    "resnet18", "resnet34", "resnet50", "resnet101", "musicnn_msd", "musicnn_mtt", "musicnn_msd_fusion",
    "resnet34_msd",
]
FAST = ["--set", "data.validation_per_genre=1", "--set", "data.embeddings="]


def test_list_models_prints_the_seventeen_names():
    result = run_cli("train.py", "--list-models")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == EXPECTED_MODELS == list(MODEL_NAMES)


def test_resnet34_msd_trains_end_to_end_and_exports(trained_run, msd_features):
    summary = json.loads((trained_run / "run.json").read_text())
    assert summary["model"] == "resnet34_msd" and summary["epochs_run"] == 2
    assert 0 <= summary["test_clip_accuracy"] <= 1
    history = pd.read_csv(trained_run / "history.csv")
    assert list(history["epoch"]) == [0, 1] and "val_clip_accuracy" in history
    assert any((trained_run / "logs").rglob("events.out.tfevents*"))
    for name in ("config.json", "best.weights.h5", "saved_model/saved_model.pb", "serving/saved_model.pb"):
        assert (trained_run / name).exists(), name


def test_saved_model_outputs_equal_the_keras_model(trained_run, msd_features):
    import keras

    run = load_run(trained_run)
    fs = load_feature_set(msd_features)
    features, _, _ = next(iter(eval_clip_dataset(fs, "test", run.inputs)))
    expected = run.model.predict(features, verbose=0)
    loaded = tf.saved_model.load(str(trained_run / "saved_model"))
    np.testing.assert_allclose(loaded.serve(features), expected, atol=1e-5)
    layer = keras.layers.TFSMLayer(str(trained_run / "saved_model"), call_endpoint="serve")
    np.testing.assert_allclose(layer(features), expected, atol=1e-5)


def test_interrupted_run_resumes_from_its_last_epoch(tiny_features, tiny_data, tmp_path):
    run = tmp_path / "run"
    cmd = ["train.py", "--model", "cnn1d", "--data", str(tiny_data), "--features", str(tiny_features),
           "--out", str(run), "--epochs", "6", "--batch-size", "8", "--quiet", *FAST]
    proc = subprocess.Popen([sys.executable, *cmd], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history = run / "history.csv"
    deadline = time.time() + 300
    while time.time() < deadline and (not history.exists() or len(history.read_text().splitlines()) < 3):
        time.sleep(0.05)
    time.sleep(0.5)  # let BackupAndRestore finish writing the epoch's backup
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(pd.read_csv(history))
    assert 2 <= done_before < 6, "the run was not interrupted part-way"
    result = run_cli(*cmd)
    assert result.returncode == 0, result.stderr[-3000:]
    resumed_epochs = [line for line in result.stdout.splitlines() + result.stderr.splitlines() if line.startswith("Epoch ")]
    assert resumed_epochs and int(resumed_epochs[0].split()[1].split("/")[0]) > done_before - 1
    final = pd.read_csv(history).drop_duplicates("epoch", keep="last")
    assert list(final["epoch"]) == list(range(6))



def test_a_seeded_run_repeats_exactly(tiny_features, tiny_data, tmp_path):
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        result = run_cli("train.py", "--model", "cnn1d", "--data", str(tiny_data), "--features", str(tiny_features),
                         "--out", str(run), "--epochs", "3", "--batch-size", "8", "--seed", "3", "--quiet", *FAST)
        assert result.returncode == 0, result.stderr[-3000:]
    histories = [pd.read_csv(run / "history.csv") for run in runs]
    pd.testing.assert_frame_equal(*histories)
    assert (runs[0] / "best.weights.h5").read_bytes() == (runs[1] / "best.weights.h5").read_bytes()

@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "resnet35"], "unknown model 'resnet35'"),
        (["--model", "cnn1d", "--lr", "-0.1"], "--lr must be positive"),
        (["--model", "musicnn_msd"], "features.kind=musicnn"),
        (["--model", "musicnn_msd", "--set", "features.kind=musicnn", "--finetune-lr-factor", "0.1"],
         "--finetune-lr-factor needs --freeze-backbone-epochs"),
        (["--model", "cnn1d", "--mixup", "-1"], "mixup alpha"),
    ],
)
def test_bad_training_arguments_give_one_clear_line(args, message, tiny_data, tmp_path):
    result = run_cli("train.py", *args, "--data", str(tiny_data), "--out", str(tmp_path / "run"))
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_missing_data_folder_gives_one_clear_line(tmp_path):
    result = run_cli("train.py", "--model", "cnn1d", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "does not exist" in result.stderr and len(result.stderr.strip().splitlines()) == 1
