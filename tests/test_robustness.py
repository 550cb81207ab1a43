"""Issue 11: nothing lost, nothing leaked, no traceback, on bad input and filesystem errors.

Refusals happen before any TensorFlow work, so most tests run the command lines on tiny copies of
the demo set and check: the exit code, one line naming the file or key, no traceback, and that the
folder holds exactly what it held before.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gtzan_tf.config import Config
from gtzan_tf.data.index import load_index
from gtzan_tf.errors import BadAudioError

from conftest import ROOT, TINY, run_cli, run_main

FAST = ["--set", "data.validation_per_genre=1", "--set", "data.embeddings=", "--set", "data.clips_per_shard=4"]


def snapshot(folder: Path) -> dict[str, bytes] | None:
    """Every file under `folder` with its bytes (None if there is no folder)."""
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """The single stderr line of a refused command, after checking exit code 2 and that it names `fragments`."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def prepare_cli(data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_cli("-m", "gtzan_tf.prepare", "--data", str(data), "--out", str(out), "--workers", "1", *FAST, *extra)


@pytest.fixture
def data(tiny_data, tmp_path) -> Path:
    """A private copy of the demo set to damage."""
    return Path(shutil.copytree(tiny_data, tmp_path / "gtzan"))


def first_test_clip(data: Path) -> str:
    return (data / "split" / "test.txt").read_text().split()[0]


def append_line(path: Path, line: str) -> None:
    path.write_text(path.read_text() + line + "\n")


# --------------------------------------------------------------------------- 1. data loss
def test_prepare_overwrite_refuses_a_folder_it_did_not_make(tiny_data, tmp_path):
    out = tmp_path / "x"
    out.mkdir()
    (out / "config.json").write_text('{"name": "p"}')
    (out / "notes.txt").write_text("keep\n")
    (out / ".draft.tmp-1").write_text("mine too\n")
    before = snapshot(out)
    for extra in ((), ("--overwrite",)):
        one_error_line(prepare_cli(tiny_data, out, *extra), str(out), "not a folder gtzan-tf made")
        assert snapshot(out) == before


def test_overwrite_removes_only_the_files_prepare_wrote(tiny_data, tmp_path):
    from gtzan_tf.prepare import prepare

    out = tmp_path / "features"
    small = TINY.replace(data={"clips_per_shard": 4}, augment={"copies": 0})
    first = prepare(tiny_data, out, small, progress=False)
    (out / "notes.txt").write_text("keep\n")
    (out / "extra").mkdir()
    second = prepare(tiny_data, out, small.replace(features={"n_mels": 64}), overwrite=True, progress=False)
    assert second["fingerprint"] != first["fingerprint"] and second["segment_shape"] == [125, 64]
    assert (out / "notes.txt").read_text() == "keep\n" and (out / "extra").is_dir()
    listed = {s["file"] for split in second["splits"].values() for s in split["shards"]}
    assert {p.name for p in out.glob("*.tfrecord")} == listed


def test_train_refuses_a_folder_holding_the_users_files(tiny_data, tiny_features, tmp_path, capsys):
    import train

    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text('{"name": "p"}')
    (out / "history.csv").write_text("a,b\n1,2\n")
    before = snapshot(out)
    result = run_main(train.main, "--model", "cnn1d", "--data", str(tiny_data), "--features", str(tiny_features),
                      "--out", str(out), "--epochs", "1", *FAST[:4], capsys=capsys)
    one_error_line(result, str(out), "not a train.py run folder")
    assert snapshot(out) == before


# --------------------------------------------------------------------------- 2. test clips leak into training
@pytest.mark.parametrize("spelling", ["{genre}/./{stem}.wav", "{genre}/{stem}.au", "./{genre}//{stem}.wav"])
def test_the_same_clip_in_two_splits_under_any_spelling_is_one_error(data, tmp_path, spelling):
    listed = first_test_clip(data)
    genre, name = listed.split("/")
    append_line(data / "split" / "train.txt", spelling.format(genre=genre, stem=Path(name).stem))
    out = tmp_path / "features"
    one_error_line(prepare_cli(data, out), f"clip {genre}/{Path(name).stem} is listed twice", "test.txt line")
    assert not out.exists()


def test_files_with_one_name_in_every_genre_are_different_clips(data):
    for split in ("train", "test"):
        lines = (data / "split" / f"{split}.txt").read_text().split()
        renamed = []
        for line in lines:
            genre, name = line.split("/")
            track = f"track{int(name.split('.')[1])}.wav"
            (data / "wav" / genre / name).rename(data / "wav" / genre / track)
            renamed.append(f"{genre}/{track}")
        (data / "split" / f"{split}.txt").write_text("\n".join(renamed) + "\n")
    index = load_index(data, TINY.data)
    assert len({c.clip_id for c in index.clips}) == len(index.clips) == 32
    valid = index.split("valid")
    assert sorted(c.genre for c in valid) == sorted(index.genres)  # one per genre, not every track0
    assert all(c.clip_id == f"{c.genre}/{c.path.stem}" for c in index.clips)


# --------------------------------------------------------------------------- 4. nonsense settings
@pytest.mark.parametrize("setting", [
    "features.n_mels=-5", "features.n_mels=0", "features.hop_length=0", "audio.sample_rate=0",
    "features.segment_frames=0", "augment.copies=-1", "train.learning_rate=nan", "train.learning_rate=inf",
])
def test_nonsense_settings_are_refused_before_any_folder_is_made(tiny_data, tmp_path, setting):
    out = tmp_path / "features"
    one_error_line(prepare_cli(tiny_data, out, "--set", setting), setting.split("=")[0], "must be")
    assert not out.exists()


def test_a_setting_of_the_wrong_type_names_its_key(tiny_data, tmp_path):
    one_error_line(prepare_cli(tiny_data, tmp_path / "f", "--set", "features.n_mels=abc"),
                   "bad value 'abc' for features.n_mels: expected an integer")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"features": {"n_mels": "96"}}))
    one_error_line(prepare_cli(tiny_data, tmp_path / "f", "--config", str(config)), "features.n_mels must be an integer")
    assert not (tmp_path / "f").exists()


BAD_CONFIGS = {  # config.json text -> what its one error line says
    '{"trian": {"epochs": 3}}': "unknown config section 'trian': the sections are audio, features, augment, data, train",
    '[{"train": {"epochs": 3}}]': "a config is a JSON object of sections (audio, features, augment, data, train), got a list",
    '"train"': "got a string",
    '{"train": [["epochs", 3]]}': "config section 'train' must be an object of settings, got a list",
    '{"train": {"epochs": [3]}}': "train.epochs must be an integer, got [3]",
    '{"data": {"embeddings": "MSD_musicnn"}}': "data.embeddings must be a list of names, got 'MSD_musicnn'",
    '{"train": {"jit": "true"}}': "train.jit must be true or false",
    '{"train": {"epochs": 3,}}': "is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 24",
    '{"train": {\n  "epochs": 3\n  "jit": true}}': "is not valid JSON: Expecting ',' delimiter at line 3 column 3",
}
BAD_SETS = {
    "train.jit=ture": "bad value 'ture' for train.jit: expected true or false",
    "train.jit=1": "bad value '1' for train.jit: expected true or false",
    "train.mixed_precision=yes": "bad value 'yes' for train.mixed_precision: expected true or false or null",
    "trian.epochs=3": "unknown config section 'trian' in --set trian.epochs=3",
}


def refused_in_process(entry: str, tmp_path: Path, tiny_data: Path, capsys, *args: str) -> subprocess.CompletedProcess:
    """train.py's or prepare's main on `args`; checks that it wrote nothing under tmp_path."""
    if entry == "train.py":
        import train

        main, out = train.main, ["--model", "cnn1d", "--out", str(tmp_path / "run")]
    else:
        from gtzan_tf.prepare.__main__ import main

        out = ["--out", str(tmp_path / "features")]
    before = sorted(tmp_path.rglob("*"))
    result = run_main(main, "--data", str(tiny_data), *out, *args, capsys=capsys)
    assert sorted(tmp_path.rglob("*")) == before, "a refused command wrote files"
    return result


@pytest.mark.parametrize("entry", ["train.py", "prepare"])
@pytest.mark.parametrize("text", BAD_CONFIGS)
def test_a_config_file_of_the_wrong_shape_is_one_line_and_writes_nothing(entry, text, tiny_data, tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(text)
    line = one_error_line(refused_in_process(entry, tmp_path, tiny_data, capsys, "--config", str(config)),
                          BAD_CONFIGS[text])
    assert line.startswith(f"error: {config}"), line


@pytest.mark.parametrize("entry", ["train.py", "prepare"])
@pytest.mark.parametrize("setting", BAD_SETS)
def test_a_set_value_that_is_not_of_its_type_is_one_line(entry, setting, tiny_data, tmp_path, capsys):
    one_error_line(refused_in_process(entry, tmp_path, tiny_data, capsys, "--set", setting), BAD_SETS[setting])


def test_set_booleans_are_true_or_false_in_any_case():
    assert Config().with_overrides(["train.jit=TRUE", "train.refit=True"]).train.jit is True
    flipped = Config().replace(train={"jit": True, "mixed_precision": True})
    assert flipped.with_overrides(["train.jit=false", "train.mixed_precision=FALSE"]).train.jit is False
    assert flipped.with_overrides(["train.mixed_precision=null"]).train.mixed_precision is None


def test_a_diverging_run_stops_at_the_first_nan_loss_with_one_line(tiny_data, tiny_features, tmp_path):
    run = tmp_path / "run"
    result = run_cli("train.py", "--model", "cnn1d", "--data", str(tiny_data), "--features", str(tiny_features),
                     "--out", str(run), "--epochs", "3", "--batch-size", "8", "--lr", "1e30", "--quiet", *FAST[:4])
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "diverged" in errors[0] and str(run) in errors[0]
    assert not (run / "run.json").exists() and not (run / "saved_model").exists()


# --------------------------------------------------------------------------- 5. one line, not a traceback
def test_out_that_is_a_file_is_one_line(tiny_data, tiny_features, tmp_path, capsys):
    import train

    target = tmp_path / "file"
    target.write_text("mine\n")
    one_error_line(prepare_cli(tiny_data, target), str(target), "is a file")
    result = run_main(train.main, "--model", "cnn1d", "--data", str(tiny_data), "--features", str(tiny_features),
                      "--out", str(target), *FAST[:4], capsys=capsys)
    one_error_line(result, str(target), "is a file")
    assert target.read_text() == "mine\n"


def test_out_below_a_file_is_one_os_error_line(tiny_data, tmp_path):
    (tmp_path / "file").write_text("mine\n")
    out = tmp_path / "file" / "features"
    one_error_line(prepare_cli(tiny_data, out), str(out), "Not a directory")


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EACCES])
def test_disk_full_or_read_only_during_prepare_is_one_line_and_leaves_nothing(tiny_data, tmp_path, monkeypatch, capsys, error):
    """Every project write ends in an fsync; failing it is what a full disk or read-only folder does to a write."""
    from gtzan_tf.prepare.__main__ import main

    def failing_fsync(fd):
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr(os, "fsync", failing_fsync)
    out = tmp_path / "features"
    with pytest.raises(SystemExit) as exit_info:
        main(["--data", str(tiny_data), "--out", str(out), "--workers", "1", *FAST])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"error: {out / '.gtzan-tf.json'}: {os.strerror(error)}"]
    assert not out.exists()


def test_disk_full_when_train_py_starts_is_one_line_and_leaves_nothing(tiny_data, tiny_features, tmp_path, monkeypatch,
                                                                      capsys):
    import train

    def failing_fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", failing_fsync)
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--model", "cnn1d", "--data", str(tiny_data), "--features", str(tiny_features), "--out", str(run),
                    "--epochs", "1", *FAST[:4]])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {run / '.gtzan-tf.json'}: {os.strerror(errno.ENOSPC)}"]
    assert not run.exists()


def test_a_failed_folder_replacement_leaves_the_old_folder_and_no_temporary(tmp_path):
    from gtzan_tf.files import replace_dir

    target = tmp_path / "serving"
    target.mkdir()
    (target / "saved_model.pb").write_text("old")

    def write(tmp):
        tmp.mkdir()
        (tmp / "saved_model.pb").write_text("half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp / "variables"))

    with pytest.raises(OSError):
        replace_dir(target, write)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["serving"]
    assert (target / "saved_model.pb").read_text() == "old"


@pytest.mark.parametrize("encoding", ["utf-16", "latin-1"])
def test_a_split_list_that_is_not_utf8_is_one_line(data, tmp_path, encoding):
    train = data / "split" / "train.txt"
    text = train.read_text() + "jazz/jazz.000é.wav\n"
    train.write_bytes(text.encode(encoding))
    out = tmp_path / "features"
    one_error_line(prepare_cli(data, out), str(train), "UTF-16" if encoding == "utf-16" else "not UTF-8")
    assert not out.exists()


def test_musicnn_out_dir_that_is_a_file_is_one_line(tiny_data, tmp_path):
    target = tmp_path / "file"
    target.write_text("mine\n")
    clip = next((tiny_data / "wav" / "jazz").iterdir())
    result = subprocess.run([sys.executable, "-m", "gtzan_tf.musicnn", str(clip), "--out-dir", str(target)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600, env=without_tf_log_level())
    one_error_line(result, str(target), "File exists")
    assert target.read_text() == "mine\n"


# --------------------------------------------------------------------------- 6. silent or misleading
def without_tf_log_level() -> dict[str, str]:
    """The environment a user has: TensorFlow's C++ logging not silenced by the test suite."""
    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


def test_skip_bad_names_each_skipped_file_and_prepare_prints_no_tensorflow_start_up_lines(data, tmp_path):
    (data / "wav" / "jazz" / "jazz.00001.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    out = tmp_path / "features"
    cmd = ["-m", "gtzan_tf.prepare", "--data", str(data), "--out", str(out), "--workers", "1", "--skip-bad", *FAST]
    result = subprocess.run([sys.executable, *cmd], cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env=without_tf_log_level())
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if not line.startswith("prepare:") and "clip/s" not in line]
    assert [line for line in lines if "jazz.00001.wav" in line] and all(
        line.startswith("warning: skipped ") for line in lines if line.strip()), lines
    assert (out / "manifest.json").is_file()


def test_a_utf8_byte_order_mark_is_accepted(data):
    train = data / "split" / "train.txt"
    train.write_bytes(b"\xef\xbb\xbf" + train.read_bytes())
    assert len(load_index(data, TINY.data).genres) == 8


def test_a_genre_listed_only_in_test_is_a_warning(data):
    (data / "wav" / "polka").mkdir()
    shutil.copy(data / "wav" / "jazz" / "jazz.00000.wav", data / "wav" / "polka" / "polka.00000.wav")
    append_line(data / "split" / "test.txt", "polka/polka.00000.wav")
    with pytest.warns(UserWarning, match="genre 'polka' is listed only in .*test.txt"):
        load_index(data, TINY.data)


def test_an_empty_train_list_is_refused_before_any_work(data, tmp_path):
    (data / "split" / "train.txt").write_text("")
    out = tmp_path / "features"
    one_error_line(prepare_cli(data, out), "train.txt lists no usable clips")
    assert not out.exists()


def test_nan_audio_is_one_line_and_leaves_no_shards(data, tmp_path):
    victim = data / "wav" / "reggae" / "reggae.00002.wav"
    y, rate = sf.read(victim, dtype="float32")
    y[100] = np.nan
    sf.write(victim, y, rate, subtype="FLOAT")
    out = tmp_path / "features"
    one_error_line(prepare_cli(data, out), str(victim), "NaN")
    assert not out.exists()


def test_data_that_is_a_file_says_so(tiny_data, tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    one_error_line(prepare_cli(target, tmp_path / "f"), str(target), "is a file")


def test_train_py_accepts_the_skip_bad_its_error_suggests(data, tmp_path, capsys):
    import train

    (data / "wav" / "jazz" / "jazz.00001.wav").write_bytes(b"")
    result = run_main(train.main, "--model", "cnn1d", "--data", str(data), "--out", str(tmp_path / "run"),
                      "--epochs", "1", *FAST[:4], capsys=capsys)
    one_error_line(result, "jazz.00001.wav", "pass --skip-bad")
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob("features-*"))

    args = train.build_parser().parse_args(["--skip-bad", "--data", str(data), "--out", str(tmp_path / "run")])
    assert args.skip_bad


@pytest.mark.parametrize("payload", [b"\xff\xfb\x90\x00" + bytes(range(256)) * 8, b"ID3\x03\x00garbage"])
def test_a_corrupt_mp3_says_it_is_not_readable_audio(tmp_path, payload, capfd):
    from gtzan_tf.data.audio import probe_audio
    from gtzan_tf.musicnn.frontend import load_audio as musicnn_load_audio

    path = tmp_path / "broken.mp3"
    path.write_bytes(payload)
    for load in (lambda p: probe_audio(p, Config().audio), musicnn_load_audio):
        with warnings.catch_warnings(), pytest.raises(BadAudioError) as info:
            warnings.simplefilter("ignore")
            load(path)
        message = str(info.value)
        assert str(path) in message and "cannot decode audio" in message
        assert not any(word in message for word in ("possibly a pipe", "NoBackendError", "EOFError", "does not exist"))
        native = capfd.readouterr().err  # libmpg123's own notes ("Illegal Audio-MPEG-Header ...") are hidden
        assert "MPEG" not in native and "resync" not in native, native
