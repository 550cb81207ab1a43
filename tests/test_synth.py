"""The synthetic GTZAN-layout dataset: layout, splits, determinism, atomic writes, audio, separability."""
from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile as sf
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gtzan_tf.data.index import GTZAN_8_GENRES, GTZAN_10_GENRES
from gtzan_tf.errors import UserError
from gtzan_tf.synth import clip_seed, dataset, generate_dataset, synthesize_clip
from gtzan_tf.synth.__main__ import main

from conftest import run_cli

SR = 22050


def files_bytes(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_stratified_splits(tmp_path):
    out = generate_dataset(tmp_path / "d", clips_per_genre=4, seconds=1.5, seed=3, progress=False)
    wavs = sorted(p.relative_to(out / "wav").as_posix() for p in (out / "wav").rglob("*.wav"))
    assert wavs == [f"{g}/{g}.{i:05d}.wav" for g in GTZAN_8_GENRES for i in range(4)]
    info = sf.info(str(out / "wav" / "classical" / "classical.00000.wav"))
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (SR, 1, "PCM_16", int(1.5 * SR))
    splits = {s: (out / "split" / f"{s}.txt").read_text().splitlines() for s in ("train", "test")}
    for lines in splits.values():
        for line in lines:
            assert re.fullmatch(r"([a-z]+)/\1\.\d{5}\.wav", line), line
    assert not set(splits["train"]) & set(splits["test"])
    assert sorted(splits["train"] + splits["test"]) == wavs
    for genre in GTZAN_8_GENRES:  # round(4 * 0.25) = 1 test clip per genre
        assert sum(line.startswith(f"{genre}/") for line in splits["test"]) == 1
        assert sum(line.startswith(f"{genre}/") for line in splits["train"]) == 3


def test_ten_genres_other_sample_rate_and_test_fraction(tmp_path):
    out = generate_dataset(tmp_path / "d", clips_per_genre=5, seconds=1.0, genres=GTZAN_10_GENRES,
                           test_fraction=0.4, sample_rate=16000, progress=False)
    assert sorted(p.name for p in (out / "wav").iterdir()) == sorted(GTZAN_10_GENRES)
    assert len((out / "split" / "test.txt").read_text().split()) == 10 * 2
    assert sf.info(str(out / "wav" / "blues" / "blues.00004.wav")).samplerate == 16000


def test_deterministic_and_prefix_stable(tmp_path):
    kwargs = dict(seconds=1.0, seed=7, progress=False)
    a = files_bytes(generate_dataset(tmp_path / "a", clips_per_genre=3, **kwargs))
    b = files_bytes(generate_dataset(tmp_path / "b", clips_per_genre=3, **kwargs))
    assert a == b
    c = files_bytes(generate_dataset(tmp_path / "c", clips_per_genre=4, **kwargs))
    wavs = [name for name in a if name.endswith(".wav")]
    assert len(wavs) == 8 * 3 and all(a[name] == c[name] for name in wavs)
    other_seed = files_bytes(generate_dataset(tmp_path / "e", clips_per_genre=3, **{**kwargs, "seed": 8}))
    assert all(a[name] != other_seed[name] for name in wavs)


def test_rerun_replaces_previous_output_and_refuses_other_folders(tmp_path):
    out = tmp_path / "d"
    generate_dataset(out, clips_per_genre=3, seconds=0.5, progress=False)
    generate_dataset(out, clips_per_genre=2, seconds=0.5, genres=("jazz", "pop"), progress=False)
    assert sorted(p.name for p in (out / "wav").iterdir()) == ["jazz", "pop"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no temporary folders left
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not a gtzan_tf.synth output"):
        generate_dataset(foreign, clips_per_genre=1, seconds=0.5, progress=False)
    assert (foreign / "notes.txt").read_text() == "keep me"
    for bad in (dict(clips_per_genre=0), dict(test_fraction=1.0), dict(genres=("polka",)), dict(seconds=0)):
        with pytest.raises(UserError):
            generate_dataset(tmp_path / "bad", **{"clips_per_genre": 1, "seconds": 0.5, **bad}, progress=False)


def test_interrupted_run_leaves_previous_output_intact(tmp_path, monkeypatch):
    out = tmp_path / "d"
    generate_dataset(out, clips_per_genre=2, seconds=0.5, progress=False)
    before = files_bytes(out)
    calls = []

    def interrupted(*args):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(args)
        return synthesize_clip(*args)

    monkeypatch.setattr(dataset, "synthesize_clip", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(out, clips_per_genre=4, seconds=0.5, seed=1, progress=False)
    assert files_bytes(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_cli(tmp_path, capsys):
    done = run_cli("-m", "gtzan_tf.synth", "--out", str(tmp_path / "d"), "--clips-per-genre", "2", "--seconds", "0.5",
                   "--genres", "10")
    assert done.returncode == 0, done.stderr
    assert "10 genres x 2 clips" in done.stdout
    assert len((tmp_path / "d" / "split" / "train.txt").read_text().split()) == 10
    same = generate_dataset(tmp_path / "same", clips_per_genre=2, seconds=0.5, genres=GTZAN_10_GENRES, progress=False)
    assert files_bytes(same) == files_bytes(tmp_path / "d")  # identical across processes
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "data.csv").write_text("1,2\n")
    with pytest.raises(SystemExit) as refused:
        main(["--out", str(tmp_path / "x")])
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


@pytest.mark.parametrize("genre", GTZAN_10_GENRES)
def test_audio_is_sane_and_clips_differ(genre):
    clips = [synthesize_clip(genre, clip_seed(0, genre, i), 3.0, SR) for i in range(2)]
    for y in clips:
        assert y.dtype == np.float32 and y.shape == (3 * SR,)
        assert np.isfinite(y).all()
        peak = np.abs(y).max()
        assert 10 ** (-12.5 / 20) <= peak <= 10 ** (-0.9 / 20)
        frames = np.sqrt(np.mean(y[: len(y) // 1024 * 1024].reshape(-1, 1024) ** 2, axis=1))
        assert (frames > peak * 1e-3).mean() > 0.9  # sounding throughout, not silent
    assert np.abs(np.corrcoef(clips[0], clips[1])[0, 1]) < 0.5
    np.testing.assert_array_equal(clips[0], synthesize_clip(genre, clip_seed(0, genre, 0), 3.0, SR))


def test_genres_are_distinguishable_by_a_cheap_classifier():
    """Mean/std of log band energies + logistic regression, trained on 5 clips per genre, tested on 3."""
    def features(audio):
        frames = np.lib.stride_tricks.sliding_window_view(audio, 1024)[::512] * np.hanning(1024)
        power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
        bands = np.log10(np.add.reduceat(power, np.unique(np.geomspace(2, 512, 40).astype(int)), axis=1) + 1e-10)
        return np.concatenate([bands.mean(axis=0), bands.std(axis=0)])

    x, y, index = [], [], []
    for label, genre in enumerate(GTZAN_8_GENRES):
        for i in range(8):
            x.append(features(synthesize_clip(genre, clip_seed(11, genre, i), 2.0, SR)))
            y.append(label)
            index.append(i)
    x, y, train = np.array(x), np.array(y), np.array(index) < 5
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x[train], y[train])
    accuracy = (model.predict(x[~train]) == y[~train]).mean()
    assert accuracy >= 0.7, accuracy  # chance: 0.125
