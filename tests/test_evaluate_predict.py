"""evaluate.py, predict.py and the self-contained serving SavedModel."""
from __future__ import annotations

import errno
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import tensorflow as tf

from gtzan_tf.data.audio import load_audio
from gtzan_tf.inference import Predictor, load_run

from conftest import clip_files, run_cli, run_main


def test_evaluate_writes_metrics_and_plots(trained_run, tiny_data):
    result = run_cli("evaluate.py", "--run", str(trained_run))
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((trained_run / "eval" / "metrics.json").read_text())
    for key in ("clip_accuracy", "clip_accuracy_vote", "segment_accuracy", "macro_f1", "per_genre",
                "confusion_matrix", "genres"):
        assert key in metrics
    assert np.sum(metrics["confusion_matrix"]) == metrics["n_clips"] == 8
    assert "clip" in result.stdout.lower() and "jazz" in result.stdout
    for png in ("confusion_matrix.png", "history.png"):
        data = (trained_run / "eval" / png).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000


def test_compare_prints_one_markdown_table(trained_run):
    result = run_cli("evaluate.py", "--compare", str(trained_run), str(trained_run))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert len(rows) == 4 and "| resnet34_msd |" in rows[2] and "| resnet34_msd |" in rows[3]


def test_predict_stereo_mp3_and_short_clip(trained_run, tmp_path):
    t = np.arange(int(44100 * 3.5)) / 44100
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.2 * np.sin(2 * np.pi * 330 * t)], axis=1)
    sf.write(tmp_path / "stereo.mp3", stereo.astype(np.float32), 44100, format="MP3")
    sf.write(tmp_path / "short.wav", (0.3 * np.sin(2 * np.pi * 440 * t[: 2 * 44100])).astype(np.float32), 44100)
    result = run_cli("predict.py", "--model", str(trained_run), "--json", "--segments",
                     str(tmp_path / "stereo.mp3"), str(tmp_path / "short.wav"))
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["file"].rsplit("/", 1)[1] for o in outputs] == ["stereo.mp3", "short.wav"]
    genres = set(load_run(trained_run).genres)
    for o in outputs:
        assert o["genre"] in genres and abs(sum(o["probabilities"].values()) - 1) < 1e-5
        assert len(o["segments"]) >= 1 and len(o["top_k"]) == 3


def test_predict_reports_a_corrupt_file_in_one_line_and_exits_1(trained_run, tiny_data, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEjunk")
    good = tiny_data / "wav" / "jazz" / "jazz.00000.wav"
    result = run_cli("predict.py", "--model", str(trained_run), str(bad), str(good))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.wav" in lines[0] and "Traceback" not in result.stderr
    assert "jazz.00000.wav" in result.stdout


def test_serving_model_gives_evaluates_probabilities_and_handles_short_clips(trained_run, tiny_data):
    run = load_run(trained_run)
    assert run_cli("evaluate.py", "--run", str(trained_run)).returncode == 0
    table = pd.read_csv(trained_run / "eval" / "predictions.csv").set_index("clip_id")
    serving = tf.saved_model.load(str(trained_run / "serving"))
    signature = serving.signatures["serving_default"]
    files = clip_files(tiny_data)
    for clip_id in table.index[:3]:
        y = load_audio(files[clip_id], run.cfg.audio)
        out = signature(waveform=tf.constant(y))
        assert [g.decode() for g in out["genres"].numpy()] == run.genres
        expected = table.loc[clip_id, [f"p_{g}" for g in run.genres]].to_numpy(np.float64)
        np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-4)
        assert abs(float(tf.reduce_sum(out["probabilities"])) - 1) < 1e-5
    short = y[: 2 * 16000]
    repeated = np.concatenate([short, short])[: run.cfg.features.segment_samples]
    served = Predictor(run).serve(short)
    assert served["segment_probabilities"].shape == (1, len(run.genres))
    np.testing.assert_allclose(served["probabilities"], signature(waveform=tf.constant(repeated))["probabilities"].numpy(),
                               atol=1e-5)


def copy_run(trained_run, dest):
    """The files predict and evaluate read, copied (not the Keras SavedModel export)."""
    dest.mkdir()
    for name in ("config.json", "run.json", "best.weights.h5", "history.csv"):
        shutil.copy(trained_run / name, dest / name)
    shutil.copytree(trained_run / "serving", dest / "serving")
    return dest


def assert_one_line_naming(result, path):
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "damaged or incomplete" in lines[0], lines


# predict.py reads run.json and serving/; evaluate.py reads run.json and best.weights.h5.
@pytest.mark.parametrize("name, damages", [("best.weights.h5", ("evaluate",)), ("run.json", ("predict", "evaluate")),
                                           ("serving/saved_model.pb", ("predict",))])
def test_a_truncated_run_file_is_one_line_in_predict_and_evaluate(trained_run, tiny_data, tmp_path, name, damages,
                                                                  capsys):
    import evaluate
    import predict

    run = copy_run(trained_run, tmp_path / "run")
    damaged = run / name
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    clip = str(tiny_data / "wav" / "jazz" / "jazz.00000.wav")
    results = {"predict": run_main(predict.main, "--model", str(run), clip, capsys=capsys),
               "evaluate": run_main(evaluate.main, "--run", str(run), capsys=capsys)}
    for command, result in results.items():
        if command in damages:
            assert_one_line_naming(result, run)
        else:
            assert result.returncode == 0, result.stderr[-3000:]
    if "evaluate" in damages:
        assert not (run / "eval").exists()


def test_evaluate_prints_its_metrics_before_a_write_fails(trained_run, tmp_path, monkeypatch, capsys):
    """A read-only or full disk under eval/ (simulated at the fsync every write ends with) costs one line, not the metrics."""
    import evaluate

    run = copy_run(trained_run, tmp_path / "run")

    def failing_fsync(fd):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(["--run", str(run)])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert "clip accuracy (mean probabilities)" in captured.out and "confusion matrix" in captured.out
    assert captured.err.strip().splitlines() == [f"error: {run / 'eval' / 'predictions.csv'}: {os.strerror(errno.EROFS)}"]
    assert not (run / "eval").exists() and not list(run.glob(".*.tmp-*"))  # eval/ is written whole or not at all


def test_predict_warns_that_silent_audio_gets_a_guess(trained_run, tiny_data, tmp_path):
    sf.write(tmp_path / "silence.wav", np.zeros(3 * 16000, np.float32), 16000)
    sf.write(tmp_path / "hiss.wav", np.full(3 * 16000, 1e-6, np.float32), 16000)
    music = tiny_data / "wav" / "jazz" / "jazz.00000.wav"
    result = run_cli("predict.py", "--model", str(trained_run), str(tmp_path / "silence.wav"), str(tmp_path / "hiss.wav"),
                     str(music))
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 2 and all(line.startswith("warning: ") and "silent" in line for line in warnings)
    assert "silence.wav" in warnings[0] and "hiss.wav" in warnings[1]
    assert len(result.stdout.strip().splitlines()) == 3
