"""prepare: resumable, idempotent, the same shards from any number of workers, and one clear line for every bad input."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gtzan_tf.prepare import prepare

from conftest import ROOT, TINY, run_cli

FAST = ["--set", "data.validation_per_genre=1", "--set", "data.embeddings=", "--set", "data.clips_per_shard=4"]


def shard_digests(folder: Path) -> dict[str, str]:
    manifest = json.loads((folder / "manifest.json").read_text())
    return {s["file"]: s["sha256"] for split in manifest["splits"].values() for s in split["shards"]}


SMALL_SHARDS = TINY.replace(data={"clips_per_shard": 4})


@pytest.fixture(scope="module")
def reference_run(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "features"
    prepare(tiny_data, out, SMALL_SHARDS, progress=False)
    return out


def test_interrupted_prepare_resumes_to_identical_shards(tiny_data, reference_run, tmp_path):
    out = tmp_path / "features"
    cmd = [sys.executable, "-m", "gtzan_tf.prepare", "--data", str(tiny_data), "--out", str(out), "--workers", "1", *FAST]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(out.glob("*.json"))) < 4:  # config, plan and 2 sidecars
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.json").exists(), "the run finished before it could be interrupted"
    assert len(list(out.glob("*.tfrecord"))) < len(shard_digests(reference_run))
    result = run_cli(*cmd[1:])
    assert result.returncode == 0, result.stderr
    assert shard_digests(out) == shard_digests(reference_run)
    assert not list(out.glob(".*tmp*"))


def test_second_prepare_does_no_work(tiny_data, reference_run):
    before = {p.name: p.stat().st_mtime_ns for p in reference_run.iterdir()}
    result = run_cli("-m", "gtzan_tf.prepare", "--data", str(tiny_data), "--out", str(reference_run), *FAST)
    assert result.returncode == 0, result.stderr
    assert "already prepared" in result.stderr
    after = {p.name: p.stat().st_mtime_ns for p in reference_run.iterdir()}
    assert {k: v for k, v in after.items() if k.endswith(".tfrecord")} == {
        k: v for k, v in before.items() if k.endswith(".tfrecord")}


def test_two_workers_give_the_same_shards(tiny_data, reference_run, tmp_path):
    out = tmp_path / "features"
    result = run_cli("-m", "gtzan_tf.prepare", "--data", str(tiny_data), "--out", str(out), "--workers", "2", *FAST)
    assert result.returncode == 0, result.stderr
    assert shard_digests(out) == shard_digests(reference_run)


def copy_dataset(tiny_data: Path, dest: Path) -> Path:
    shutil.copytree(tiny_data, dest)
    return dest


def corrupt(path: Path) -> None:
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")


def empty(path: Path) -> None:
    path.write_bytes(b"")


def too_short(path: Path) -> None:
    sf.write(path, np.zeros(8000, np.float32), 22050)


BAD_FILES = {"corrupt": (corrupt, "cannot decode"), "empty": (empty, "empty file"), "short": (too_short, "at least 1 s")}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_audio_file_gives_one_clear_line_and_writes_nothing(tiny_data, tmp_path, kind):
    data = copy_dataset(tiny_data, tmp_path / "gtzan")
    victim = data / "wav" / "jazz" / "jazz.00001.wav"
    damage, message = BAD_FILES[kind]
    damage(victim)
    out = tmp_path / "features"
    result = run_cli("-m", "gtzan_tf.prepare", "--data", str(data), "--out", str(out), *FAST)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "jazz.00001.wav" in lines[0] and message in lines[0]
    assert not out.exists()


def test_skip_bad_continues_and_lists_skipped_files_in_the_manifest(tiny_data, tmp_path):
    data = copy_dataset(tiny_data, tmp_path / "gtzan")
    corrupt(data / "wav" / "jazz" / "jazz.00001.wav")
    train = data / "split" / "train.txt"
    train.write_text(train.read_text() + "polka/polka.00000.wav\n")
    with pytest.warns(UserWarning) as warned:
        manifest = prepare(data, tmp_path / "features", TINY, skip_bad=True, progress=False)
    for name in ("jazz.00001.wav", "polka"):
        assert any(name in str(w.message) for w in warned), name
    assert sorted(Path(s["path"]).name for s in manifest["skipped"]) == ["jazz.00001.wav", "polka.00000.wav"]
    assert manifest["splits"]["test"]["source_clips"] + manifest["splits"]["train"]["source_clips"] + \
        manifest["splits"]["valid"]["source_clips"] == 31


BAD_LINES = {
    "traversal": ("../../etc/passwd", "not a path inside wav/"),
    "missing": ("jazz/jazz.00099.wav", "missing file"),
    "unknown genre": ("polka/polka.00000.wav", "unknown genre 'polka'"),
}


@pytest.mark.parametrize("kind", sorted(BAD_LINES))
def test_bad_split_entry_gives_one_clear_line(tiny_data, tmp_path, kind):
    data = copy_dataset(tiny_data, tmp_path / "gtzan")
    line, message = BAD_LINES[kind]
    train = data / "split" / "train.txt"
    train.write_text(train.read_text() + line + "\n")
    out = tmp_path / "features"
    result = run_cli("-m", "gtzan_tf.prepare", "--data", str(data), "--out", str(out), *FAST)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert message in lines[0] and "train.txt" in lines[0]
    assert not out.exists()


def test_missing_data_folder_and_wrong_layout(tmp_path):
    result = run_cli("-m", "gtzan_tf.prepare", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "f"))
    assert result.returncode != 0 and "does not exist" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "flat").mkdir()
    result = run_cli("-m", "gtzan_tf.prepare", "--data", str(tmp_path / "flat"), "--out", str(tmp_path / "f"))
    assert result.returncode != 0 and "no wav/ folder" in result.stderr


def test_changed_config_refuses_to_mix_features(tiny_data, reference_run):
    with pytest.raises(Exception, match="another config"):
        prepare(tiny_data, reference_run, TINY.replace(features={"n_mels": 64}), progress=False)
