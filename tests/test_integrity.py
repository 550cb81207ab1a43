"""Issue 18: no silently wrong result.

Features belong to one dataset, shards are verified before use, one process writes a folder at a
time, and a run is finished only when everything is written.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import tensorflow as tf

import evaluate
import train
from gtzan_tf.data.index import GTZAN_8_GENRES, load_index
from gtzan_tf.data.manifest import load_feature_set
from gtzan_tf.errors import UserError
from gtzan_tf.files import LOCK_FILE, owned_folder
from gtzan_tf.prepare import ensure_prepared, prepare
from gtzan_tf.synth import generate_dataset
from gtzan_tf.training.experiment import train as train_run
from gtzan_tf.training.trainer import FINISHED, locate_features

from conftest import ROOT, TINY, TINY_MSD, run_main

FAST = ["--set", "data.validation_per_genre=1", "--set", "data.embeddings="]
CNN1D = TINY.replace(train={"model": "cnn1d", "epochs": 1, "batch_size": 8})


def copy_of(folder: Path, to: Path) -> Path:
    shutil.copytree(folder, to, copy_function=shutil.copy2)  # copy2 keeps modification times: the same data
    return to


# ------------------------------------------------------------------ features belong to one dataset
def test_runs_on_two_datasets_under_one_parent_get_two_features_folders(tiny_data, tmp_path):
    other = generate_dataset(tmp_path / "other", clips_per_genre=4, seconds=5.0, seed=1, progress=False)
    same = copy_of(tiny_data, tmp_path / "same")
    first = locate_features(TINY, tiny_data, tmp_path / "runs" / "a", None)[0]
    assert locate_features(TINY, other, tmp_path / "runs" / "b", None)[0] != first
    assert locate_features(TINY, same, tmp_path / "runs" / "c", None)[0] == first  # a copy is the same data
    os.utime(same / "wav" / "jazz" / "jazz.00000.wav")  # a file touched: another version of the data
    assert locate_features(TINY, same, tmp_path / "runs" / "d", None)[0] != first


def test_features_of_other_data_are_refused_and_left_as_they_are(tiny_data, tiny_features, tmp_path):
    other = generate_dataset(tmp_path / "other", clips_per_genre=4, seconds=5.0, seed=1, progress=False)
    features = copy_of(tiny_features, tmp_path / "features")
    before = {p.name: p.read_bytes() for p in features.iterdir() if p.is_file()}
    with pytest.raises(UserError, match=f"{features} holds features of other data .*not of {other}"):
        ensure_prepared(load_index(other, TINY.data), features, TINY)
    with pytest.raises(UserError, match="holds features made from other data"):
        prepare(other, features, TINY, progress=False)
    assert {p.name: p.read_bytes() for p in features.iterdir() if p.is_file()} == before
    assert ensure_prepared(load_index(tiny_data, TINY.data), features, TINY).root == features


@pytest.fixture(scope="module")
def evaluated_copy(trained_run, tmp_path_factory) -> Path:
    """A copy of the session's trained resnet34_msd run (it reads the session's features)."""
    return copy_of(trained_run, tmp_path_factory.mktemp("eval") / "run")


def test_evaluate_on_other_data_maps_labels_by_genre_name(evaluated_copy, msd_features, tmp_path, capsys):
    genres = [g for g in GTZAN_8_GENRES if g != "classical"]  # the first genre gone: every index moves
    subset = generate_dataset(tmp_path / "subset", clips_per_genre=4, seconds=5.0, seed=0, genres=genres,
                              progress=False)
    manifest = (msd_features / "manifest.json").read_bytes()
    result = run_main(evaluate.main, "--run", str(evaluated_copy), "--data", str(subset), capsys=capsys)
    assert result.returncode == 0, result.stderr
    rows = pd.read_csv(evaluated_copy / "eval" / "predictions.csv")
    assert sorted(rows["clip_id"]) == sorted(f"{c.clip_id}" for c in load_index(subset, TINY_MSD.data).split("test"))
    assert (rows["genre"] == rows["clip_id"].str.split("/").str[0]).all()  # true labels by name, none shifted
    assert (msd_features / "manifest.json").read_bytes() == manifest  # the run's own features untouched
    assert len(list(msd_features.parent.glob("features-*"))) == 1  # the subset's features beside them


def test_evaluate_refuses_genres_the_run_does_not_know(evaluated_copy, tmp_path, capsys):
    unknown = generate_dataset(tmp_path / "unknown", clips_per_genre=4, seconds=5.0, seed=0, genres=["blues", "jazz"],
                               progress=False)
    features = sorted(evaluated_copy.parent.parent.glob("*/features-*"))
    result = run_main(evaluate.main, "--run", str(evaluated_copy), "--data", str(unknown), capsys=capsys)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {unknown} has genres the model was not trained on: blues; the model knows {', '.join(GTZAN_8_GENRES)}"]
    assert sorted(evaluated_copy.parent.parent.glob("*/features-*")) == features, "features prepared before refusing"


# ------------------------------------------------------------------ verified shards
def flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def keep_first_record_half(path: Path) -> None:
    """Cut a shard at a record boundary: a valid TFRecord file holding the first half of its records."""
    records = list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records[: len(records) // 2]:
            writer.write(record)


@pytest.mark.parametrize("damage, shard", [(flip_bytes, "train-00000.tfrecord"),
                                           (keep_first_record_half, "test-00000.tfrecord")])
def test_a_damaged_shard_is_one_error_and_prepare_repairs_it(tiny_data, tiny_features, tmp_path, capsys, damage, shard):
    features = copy_of(tiny_features, tmp_path / "features")
    intact = (features / shard).read_bytes()
    damage(features / shard)
    with pytest.raises(UserError, match=f"{features / shard} is damaged.*prepare --data {tiny_data.resolve()} "
                                        f"--out {features} --config {features / 'config.json'}` again to repair it"):
        load_feature_set(features)
    result = run_main(train.main, "--model", "cnn1d", "--data", str(tiny_data), "--features", str(features),
                      "--out", str(tmp_path / "run"), "--epochs", "1", *FAST, capsys=capsys)
    assert result.returncode == 2 and f"{features / shard} is damaged" in result.stderr
    assert not (tmp_path / "run").exists()
    prepare(tiny_data, features, TINY, progress=False)
    assert (features / shard).read_bytes() == intact and load_feature_set(features).root == features


# ------------------------------------------------------------------ one writer per folder
HOLD_LOCK = """
import sys, time
from pathlib import Path
from gtzan_tf.files import owned_folder
with owned_folder(Path(sys.argv[1]), sys.argv[2], "--out"):
    print("locked", flush=True)
    time.sleep(120)
"""


def hold_lock(folder: Path, kind: str) -> subprocess.Popen:
    """Another process (no TensorFlow) that holds `folder`'s lock, as a running train.py or prepare would."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(folder), kind], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_writer_is_refused_and_a_killed_one_leaves_no_lock(tiny_data, tiny_features, tmp_path, capsys):
    run, features = tmp_path / "run", tmp_path / "features"
    holders = [hold_lock(run, "run"), hold_lock(features, "features")]
    try:
        refused = run_main(train.main, "--model", "cnn1d", "--data", str(tiny_data), "--features", str(tiny_features),
                           "--out", str(run), "--epochs", "1", *FAST, capsys=capsys)
        assert refused.returncode == 2 and refused.stderr.strip() == \
            f"error: {run} is being written by another process right now; wait for it to finish, or choose another folder"
        with pytest.raises(UserError, match=f"{features} is being written by another process"):
            prepare(tiny_data, features, TINY, progress=False)
        assert sorted(p.name for p in run.iterdir()) == [".gtzan-tf.json", LOCK_FILE]  # nothing written
    finally:
        for proc in holders:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    with owned_folder(run, "run", "--out"), owned_folder(features, "features", "--out"):
        pass  # kill -9 left no stale lock


# ------------------------------------------------------------------ finished only when everything is written
def test_a_run_stopped_during_its_export_is_finished_by_the_same_command(tiny_data, tiny_features, tmp_path):
    run = tmp_path / "run"

    def killed_export(run_dir: Path) -> None:
        (run_dir / ".serving.tmp-123-new").mkdir()  # what a kill during replace_dir leaves
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(CNN1D, tiny_data, run, features_dir=tiny_features, verbose=0, finish=killed_export)
    assert (run / "run.json").is_file() and not (run / FINISHED).exists()
    history = (run / "history.csv").read_bytes()
    # Another config does not continue it (nor get the first config's run exported as its own).
    exported_by_mistake = []
    with pytest.raises(UserError, match=rf"^{run} was started with another config \(train.learning_rate 0.0001 -> 0.001\); "):
        train_run(CNN1D.replace(train={"learning_rate": 1e-3}), tiny_data, run, features_dir=tiny_features, verbose=0,
                  finish=exported_by_mistake.append)
    assert exported_by_mistake == [] and not (run / FINISHED).exists()
    exported = []
    started = time.perf_counter()
    summary = train_run(CNN1D, tiny_data, run, features_dir=tiny_features, verbose=0, finish=exported.append)
    assert exported == [run] and (run / FINISHED).is_file() and summary["epochs_run"] == 1
    assert (run / "history.csv").read_bytes() == history, "trained again"
    assert not list(run.glob(".*.tmp-*")), "the interrupted export's leftovers stay"
    with pytest.raises(UserError, match="holds a finished run"):
        train_run(CNN1D, tiny_data, run, features_dir=tiny_features, verbose=0)
    assert time.perf_counter() - started < 120


# ------------------------------------------------------------------ a full disk anywhere a run writes
@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs (root can mount one here and in CI); skipped where mounting is not allowed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk: Path, leave: int) -> Path:
    """A ballast file that leaves `leave` bytes free on `disk`."""
    ballast = disk / "ballast"
    ballast.unlink(missing_ok=True)
    with open(ballast, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, shutil.disk_usage(disk).free - leave)
    return ballast


def test_a_full_disk_is_one_line_wherever_a_run_writes_and_the_same_command_resumes(tiny_data, tiny_features,
                                                                                     small_disk, capsys):
    import gtzan_tf.export

    run = small_disk / "run"
    command = ["--model", "cnn1d", "--data", str(tiny_data), "--features", str(tiny_features), "--out", str(run),
               "--epochs", "2", "--batch-size", "8", "--quiet", *FAST]
    for step, (main, args, leave) in enumerate([(train.main, command, 600_000),
                                                (gtzan_tf.export.main, [str(run)], 20_000),
                                                (evaluate.main, ["--run", str(run)], 20_000)]):
        before = {p.name for p in run.iterdir()} if run.exists() else set()
        kept = (run / "serving" / "saved_model.pb").read_bytes() if step else None
        ballast = fill(small_disk, leave)
        full = run_main(main, *args, capsys=capsys)
        assert full.returncode == 2 and "Traceback" not in full.stderr, full.stderr[-3000:]
        errors = [line for line in full.stderr.splitlines() if line.startswith("error:")]
        assert errors == [full.stderr.strip().splitlines()[-1]] and "No space left on device" in errors[0]
        assert not list(run.glob(".*.tmp-*")), "temporaries left behind"
        if step:  # a finished run keeps its files whole: the old export, no half eval/
            assert {p.name for p in run.iterdir()} == before
            assert (run / "serving" / "saved_model.pb").read_bytes() == kept
        ballast.unlink()
        again = run_main(main, *args, capsys=capsys)
        assert again.returncode == 0, again.stderr[-3000:]
    assert (run / FINISHED).is_file() and (run / "eval" / "metrics.json").is_file()
