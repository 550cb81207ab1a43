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

from conftest import ROOT, run_cli, run_main

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


SEEDED = ["--model", "cnn1d", "--epochs", "4", "--batch-size", "8", "--seed", "3", "--dropout", "0.3", "--quiet", *FAST]


def snapshot(folder):
    """Every file under `folder` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def train_cli(tiny_data, tiny_features, run, *extra):
    return run_cli("train.py", "--data", str(tiny_data), "--features", str(tiny_features), "--out", str(run), *extra)


@pytest.fixture(scope="module")
def seeded_run(tiny_features, tiny_data, tmp_path_factory):
    """An uninterrupted seeded 4-epoch cnn1d run."""
    run = tmp_path_factory.mktemp("seeded") / "run"
    result = train_cli(tiny_data, tiny_features, run, *SEEDED)
    assert result.returncode == 0, result.stderr[-3000:]
    return run


def run_files(run):
    return {name: (run / name).read_bytes() for name in ("history.csv", "best.weights.h5", "run.json")}


def test_a_seeded_run_repeats_exactly(seeded_run, tiny_features, tiny_data, tmp_path):
    result = train_cli(tiny_data, tiny_features, tmp_path / "again", *SEEDED)
    assert result.returncode == 0, result.stderr[-3000:]
    assert run_files(tmp_path / "again") == run_files(seeded_run)


def test_a_run_killed_in_epoch_2_resumes_to_the_uninterrupted_run(seeded_run, tiny_features, tiny_data, tmp_path):
    run = tmp_path / "run"
    cmd = ["train.py", "--data", str(tiny_data), "--features", str(tiny_features), "--out", str(run), *SEEDED]
    proc = subprocess.Popen([sys.executable, *cmd], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history, deadline = run / "history.csv", time.time() + 300
    while time.time() < deadline and (not history.exists() or len(history.read_text().splitlines()) < 2):
        time.sleep(0.01)  # epoch 1 is logged: epoch 2 (or epoch 1's backup) is under way
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 1 <= len(history.read_text().splitlines()) - 1 < 4 and not (run / "run.json").exists()
    result = run_cli(*cmd)
    assert result.returncode == 0, result.stderr[-3000:]
    assert run_files(run) == run_files(seeded_run)


def test_training_again_into_a_finished_run_is_refused(seeded_run, tiny_features, tiny_data):
    before = snapshot(seeded_run)
    result = train_cli(tiny_data, tiny_features, seeded_run, *SEEDED)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {seeded_run} holds a finished run; choose a new --out, or delete it to train it again"]
    assert snapshot(seeded_run) == before


def test_callback_state_survives_a_restart_of_the_callbacks(tmp_path):
    """ModelCheckpoint's best, EarlyStopping's and ReduceLROnPlateau's counters and dropout's seed come back."""
    import keras

    from gtzan_tf.training.resume import CallbackState

    def fresh():
        return [keras.callbacks.ModelCheckpoint(str(tmp_path / "best.weights.h5"), monitor="val_clip_accuracy", mode="max"),
                keras.callbacks.EarlyStopping(monitor="val_clip_accuracy", mode="max", patience=5),
                keras.callbacks.ReduceLROnPlateau(monitor="val_loss", patience=3)]

    def model():
        return keras.Sequential([keras.Input((4,)), keras.layers.Dropout(0.5, seed=1)])

    before, trained = fresh(), model()
    for cb in before:
        cb.on_train_begin()
    before[0].best, before[1].best, before[1].wait, before[1].best_epoch = 0.8125, 0.8125, 1, 1
    before[2].best, before[2].wait = 0.7, 2
    trained(np.ones((8, 4)), training=True)  # advances the dropout seed
    state = CallbackState(tmp_path, before, 0)
    state.set_model(trained)
    state.on_epoch_end(2)
    after, restored = fresh(), model()
    state = CallbackState(tmp_path, after, 3)
    state.set_model(restored)
    for cb in [*after, state]:
        cb.on_train_begin()
    assert (after[0].best, after[1].best, after[1].wait, after[1].best_epoch) == (0.8125, 0.8125, 1, 1)
    assert (after[2].best, after[2].wait) == (0.7, 2)
    np.testing.assert_array_equal(restored(np.ones((8, 4)), training=True), trained(np.ones((8, 4)), training=True))


def test_a_backup_damaged_with_its_previous_copy_restarts_the_run_with_a_warning(seeded_run, tiny_features,
                                                                                  tiny_data, tmp_path):
    run = tmp_path / "run"
    (run / "backup").mkdir(parents=True)
    (run / ".gtzan-tf.json").write_text('{"project": "gtzan-tf", "kind": "run"}')
    (run / "backup" / "latest.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    (run / "backup" / "training_metadata.json").write_text('{"epoch": 2, "batch": 0}')
    (run / "backup" / "latest.weights.h5.bkp").write_bytes(b"\x89HDF\r\n\x1a\n torn too")
    result = train_cli(tiny_data, tiny_features, run, *SEEDED)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert f"warning: the backup in {run / 'backup'} is damaged, and so is its previous copy; " \
           "this run starts again from its first epoch" in result.stderr.splitlines()
    assert run_files(run) == run_files(seeded_run)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "resnet35"], "unknown model 'resnet35'"),
        (["--model", "cnn1d", "--lr", "-0.1"], "train.learning_rate must be a finite number > 0, got -0.1"),
        (["--model", "cnn1d", "--lr", "nan"], "train.learning_rate must be a finite number > 0, got nan"),
        (["--model", "cnn1d", "--set", "train.epochs=abc"], "bad value 'abc' for train.epochs: expected an integer"),
        (["--model", "musicnn_msd"], "features.kind=musicnn"),
        (["--model", "musicnn_msd", "--set", "features.kind=musicnn", "--finetune-lr-factor", "0.1"],
         "--finetune-lr-factor needs --freeze-backbone-epochs"),
        (["--model", "cnn1d", "--mixup", "-1"], "train.mixup_alpha must be a finite number >= 0, got -1.0"),
        (["--model", "cnn1d", "--folds", "3", "--strategy", "multiworker"], "--folds does not combine with --strategy multiworker"),
        (["--model", "cnn1d", "--monitor", "val_accuracy"], "unknown monitor 'val_accuracy'"),
    ],
)
def test_bad_training_arguments_give_one_clear_line(args, message, tiny_data, tmp_path, capsys):
    # In-process (a second each, not a TensorFlow start-up each): the CLI process is checked below.
    import train

    result = run_main(train.main, *args, "--data", str(tiny_data), "--out", str(tmp_path / "run"), capsys=capsys)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_missing_data_folder_gives_one_clear_line_from_the_cli_process(tmp_path):
    result = run_cli("train.py", "--model", "cnn1d", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "does not exist" in result.stderr and len(result.stderr.strip().splitlines()) == 1
