"""The one feature graph: layers and frontend against librosa, shards against the frontend, and
serving / predict.py against evaluate.py's path at another sample rate and for MFCC features."""
from __future__ import annotations

import json

import librosa
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import librosa_oracle
from gtzan_tf.config import SEGMENTS, Config
from gtzan_tf.data.audio import load_audio
from gtzan_tf.data.pipeline import load_feature_set
from gtzan_tf.data.records import clip_parser
from gtzan_tf.features.frontend import frontend_function
from gtzan_tf.features.layers import Chroma, Mfcc, RepeatPad, Resample, Segments
from gtzan_tf.inference import load_run
from gtzan_tf.musicnn import MusicnnEmbedding, load_audio as musicnn_load_audio

from conftest import SHARED, clip_files, run_cli

REFS = SHARED / "musicnn-refs"

# (kind, absolute tolerance): float32 FFT rounding gives <= 2e-4 dB on log-mel; the DCT sums 96 of
# them (MFCC); chroma is a ratio in [0, 1].
KINDS = [("logmel", 1e-3), ("mfcc", 1e-2), ("chroma", 1e-4)]


def music_like(sample_rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    rng = np.random.default_rng(seed)
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) * np.exp(-(t % 0.5) * 4)
    return (0.2 * chord + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.mark.parametrize("kind, atol", KINDS)
@pytest.mark.parametrize("sample_rate", [16000, 22050])
@pytest.mark.parametrize("seconds", [9.3, 1.5])  # several segments; shorter than one (repeat-padded)
def test_frontend_segments_match_librosa(kind, atol, sample_rate, seconds):
    cfg = Config().replace(audio={"sample_rate": sample_rate}, features={"kind": kind}, data={"embeddings": ()})
    y = music_like(sample_rate, seconds)
    expected = librosa_oracle.clip_segments(y, cfg)
    ours = frontend_function(cfg)(y)[SEGMENTS].numpy()
    assert ours.shape == expected.shape and ours.shape[1:] == cfg.features.segment_shape
    np.testing.assert_allclose(ours, expected, atol=atol)


def test_max_segments_caps_the_segments():
    cfg = Config().replace(features={"max_segments": 2}, data={"embeddings": ()})
    assert frontend_function(cfg)(music_like(16000, 20.0))[SEGMENTS].shape == (2, 125, 96)


def test_mfcc_and_chroma_layers_match_librosa():
    y = music_like(16000, 3.0)
    mel = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=1024, hop_length=512, n_mels=96)
    db = librosa.power_to_db(mel, ref=1.0, top_db=80.0)
    np.testing.assert_allclose(Mfcc(13)(db.T[None]).numpy()[0], librosa.feature.mfcc(S=db, n_mfcc=13).T, atol=1e-3)
    expected = librosa.feature.chroma_stft(y=y, sr=16000, n_fft=1024, hop_length=512, n_chroma=24, tuning=0.0).T
    np.testing.assert_allclose(Chroma(16000, 1024, 512, 24)(y[None]).numpy()[0], expected, atol=1e-4)
    silent = Chroma(16000, 1024, 512, 12)(np.zeros((1, 4096), np.float32)).numpy()
    assert np.isfinite(silent).all() and not silent.any()


@pytest.mark.parametrize("source, target", [(22050, 16000), (44100, 16000), (8000, 16000), (16000, 22050)])
@pytest.mark.parametrize("samples", [33075, 8000, 999])
def test_resample_matches_librosa_fft(source, target, samples):
    y = np.random.default_rng(samples).standard_normal(samples).astype(np.float32)
    expected = librosa.resample(y, orig_sr=source, target_sr=target, res_type="fft")
    ours = Resample(source, target)(y[None]).numpy()[0]
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    np.testing.assert_array_equal(Resample(16000, 16000)(y[None]).numpy()[0], y)


def test_repeat_pad_and_segments_layers():
    y = np.arange(10, dtype=np.float32)[None]
    np.testing.assert_array_equal(RepeatPad(25)(y).numpy()[0], np.tile(y[0], 3)[:25])
    np.testing.assert_array_equal(RepeatPad(5)(y).numpy(), y)
    frames = np.arange(2 * 11 * 3, dtype=np.float32).reshape(2, 11, 3)
    out = Segments(4)(frames).numpy()
    assert out.shape == (2, 2, 4, 3)
    np.testing.assert_array_equal(out.reshape(2, 8, 3), frames[:, :8])
    assert Segments(4, max_segments=1)(frames).shape == (2, 1, 4, 3)


@pytest.mark.skipif(not (REFS / "audio").is_dir(), reason="musicnn reference outputs not found")
def test_musicnn_branch_matches_the_original_embedding():
    """The frontend's embedding of the original's 16 kHz input equals the original musicnn's
    max_pool averaged over patches (shared reference outputs), to 1e-4 of its scale."""
    for model in ("MSD_musicnn", "MTT_musicnn"):
        embed = tf.function(MusicnnEmbedding(model), input_signature=[tf.TensorSpec([None], tf.float32)])
        for audio in sorted((REFS / "audio").iterdir()):
            with np.load(REFS / f"{audio.stem}__{model}.npz") as ref:
                expected = ref["max_pool"].mean(axis=0)
            ours = embed(musicnn_load_audio(audio)).numpy()
            assert np.abs(ours - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max()), (model, audio.name)


def test_musicnn_branch_resamples_other_rates_like_librosa():
    y = music_like(22050, 4.0)
    at_16k = librosa.resample(y, orig_sr=22050, target_sr=16000, res_type="fft")
    embed_22k, embed_16k = MusicnnEmbedding("MSD_musicnn", 22050), MusicnnEmbedding("MSD_musicnn", 16000)
    expected = embed_16k(at_16k).numpy()
    # 1e-6 differences in the resampled waveform flip a few float16 roundings of musicnn's mel.
    np.testing.assert_allclose(embed_22k(y).numpy(), expected, atol=1e-2)
    assert np.abs(embed_16k(y).numpy() - expected).max() > 0.1  # not resampling is far off


# ----------------------------------------------------------------- one path from shards to serving
def _train(tiny_data, tmp_path_factory, name: str, model: str, settings: list[str]):
    run = tmp_path_factory.mktemp("runs") / name
    result = run_cli("train.py", "--model", model, "--data", str(tiny_data), "--out", str(run), "--epochs", "1",
                     "--batch-size", "8", "--quiet", "--set", "data.validation_per_genre=1", *settings)
    assert result.returncode == 0, result.stderr[-4000:]
    return run


@pytest.fixture(scope="module")
def run_22k(tiny_data, tmp_path_factory):
    """A two-branch run (log-mel + MSD musicnn) on audio decoded at 22.05 kHz."""
    return _train(tiny_data, tmp_path_factory, "cnn2d_msd_22k", "cnn2d_msd",
                  ["--set", "audio.sample_rate=22050", "--set", "data.embeddings=MSD_musicnn"])


@pytest.fixture(scope="module")
def run_mfcc(tiny_data, tmp_path_factory):
    return _train(tiny_data, tmp_path_factory, "cnn1d_mfcc", "cnn1d",
                  ["--set", "features.kind=mfcc", "--set", "data.embeddings="])


@pytest.mark.parametrize("run_fixture", ["run_22k", "run_mfcc"])
def test_serving_and_predict_equal_evaluate(run_fixture, request, tiny_data):
    run = request.getfixturevalue(run_fixture)
    result = run_cli("evaluate.py", "--run", str(run))
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(run / "eval" / "predictions.csv").set_index("clip_id")
    cfg = Config.load(run / "config.json")
    genres = json.loads((run / "run.json").read_text())["genres"]
    assert list(table.columns) == ["genre", "predicted", *[f"p_{g}" for g in genres]]
    files = clip_files(tiny_data)
    assert len(table) == 8 and set(table.index) <= set(files)

    serve = tf.saved_model.load(str(run / "serving")).signatures["serving_default"]
    predicted = run_cli("predict.py", "--model", str(run), "--json", *[str(files[c]) for c in table.index])
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    by_file = {json.loads(line)["file"]: json.loads(line) for line in predicted.stdout.splitlines()}
    for clip_id, row in table.iterrows():
        expected = row[[f"p_{g}" for g in genres]].to_numpy(np.float64)
        served = serve(waveform=load_audio(files[clip_id], cfg.audio))["probabilities"].numpy()
        np.testing.assert_allclose(served, expected, atol=1e-4)
        from_cli = by_file[str(files[clip_id])]["probabilities"]
        np.testing.assert_allclose([from_cli[g] for g in genres], expected, atol=1e-4)


def test_mfcc_run_feeds_an_input_named_mfcc(run_mfcc):
    run = load_run(run_mfcc)
    assert run.inputs == ("mfcc",) and [tensor.name for tensor in run.model.inputs] == ["mfcc"]


def test_shard_features_equal_the_frontend(run_22k, tiny_data):
    features = load_feature_set(json.loads((run_22k / "run.json").read_text())["features_dir"])
    cfg = features.config
    frontend = frontend_function(cfg)
    parse = clip_parser(features.segment_shape, features.embedding_dims)
    records = [parse(r) for r in tf.data.TFRecordDataset(features.files("test"))]
    assert records and cfg.audio.sample_rate == 22050
    files = clip_files(tiny_data)
    for record in records:
        clip = frontend(load_audio(files[record["clip_id"].numpy().decode()], cfg.audio))
        np.testing.assert_allclose(record["features"].numpy(), clip[SEGMENTS].numpy(), atol=1e-5)
        # Another process (train.py's prepare): musicnn's float32 sums may round apart, as in the
        # parity tests against the original, to 1e-4 of the embedding's scale.
        expected = clip["msd_embedding"].numpy()
        np.testing.assert_allclose(record["msd_embedding"].numpy(), expected, atol=1e-4 * max(1.0, np.abs(expected).max()))
