"""Keras preprocessing layers against librosa, and their .keras round trip.

Tolerances: tf.signal's float32 FFT and librosa's (numpy, float32) differ by float rounding only,
measured at <= 5e-7 of each example's peak power and <= 2e-4 dB after power_to_db; we allow
1e-5 of the peak and 1e-3 dB (x20 and x5 margins). The dB comparison covers the top_db floor.
"""
from __future__ import annotations

import keras
import librosa
import numpy as np
import pytest
import tensorflow as tf

from gtzan_tf.features.layers import MelSpectrogram, MusicnnLogCompression, PowerToDb

SETTINGS = [  # sample_rate, n_fft, hop_length, n_mels
    (16000, 1024, 512, 96),  # the classifier's log-mel
    (16000, 512, 256, 96),  # musicnn
    (22050, 2048, 512, 128),
    (8000, 256, 128, 40),
    (44100, 1024, 441, 64),
]


def waveforms(sample_rate: int, samples: int) -> np.ndarray:
    """Two examples 60 dB apart: a tone in noise, and the same much quieter."""
    t = np.arange(samples) / sample_rate
    rng = np.random.default_rng(samples)
    y = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(samples)
    return np.stack([y, 1e-3 * y]).astype(np.float32)


def librosa_mel(y: np.ndarray, sample_rate: int, n_fft: int, hop_length: int, n_mels: int) -> np.ndarray:
    return np.stack([
        librosa.feature.melspectrogram(y=v, sr=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels).T
        for v in y
    ])


@pytest.mark.filterwarnings("ignore:n_fft=.*is too large")
@pytest.mark.parametrize("sample_rate, n_fft, hop_length, n_mels", SETTINGS)
@pytest.mark.parametrize("seconds", [2.3, 0.02])
def test_mel_spectrogram_and_db_match_librosa(sample_rate, n_fft, hop_length, n_mels, seconds):
    y = waveforms(sample_rate, int(seconds * sample_rate))
    expected = librosa_mel(y, sample_rate, n_fft, hop_length, n_mels)
    ours = MelSpectrogram(sample_rate, n_fft, hop_length, n_mels)(y).numpy()
    assert ours.shape == expected.shape == (2, 1 + y.shape[1] // hop_length, n_mels)
    peak = expected.max(axis=(1, 2), keepdims=True)
    assert (np.abs(ours - expected) / peak).max() <= 1e-5
    expected_db = np.stack([librosa.power_to_db(p, ref=1.0, top_db=80.0) for p in expected])
    assert np.abs(PowerToDb(top_db=80.0)(ours).numpy() - expected_db).max() <= 1e-3


@pytest.mark.parametrize("ref, amin, top_db", [(1.0, 1e-10, 80.0), (1.0, 1e-10, None), (3.5, 1e-5, 40.0)])
def test_power_to_db_matches_librosa(ref, amin, top_db):
    rng = np.random.default_rng(3)
    power = (10.0 ** rng.uniform(-14, 2, (3, 50, 20))).astype(np.float32)
    power[1] *= 1e-6  # each example is floored relative to its own peak
    expected = np.stack([librosa.power_to_db(p, ref=ref, amin=amin, top_db=top_db) for p in power])
    ours = PowerToDb(ref=ref, amin=amin, top_db=top_db)(power).numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-4)


def test_musicnn_log_compression():
    x = np.array([[0.0, 1e-8, 0.3, 7.0, 1e5]], np.float32)
    np.testing.assert_allclose(MusicnnLogCompression()(x).numpy(), np.log10(10000 * x + 1), rtol=1e-6)


def test_unknown_length_in_tf_function():
    mel = MelSpectrogram(16000, 512, 256, 32)
    fn = tf.function(lambda y: mel(y), input_signature=[tf.TensorSpec([None, None], tf.float32)])
    for samples in (300, 16000):
        assert fn(tf.zeros((1, samples))).shape == (1, 1 + samples // 256, 32)


def test_layers_save_and_load_as_keras(tmp_path):
    waveform = keras.Input((None,), name="waveform")
    mel = MelSpectrogram(16000, 1024, 512, 96)(waveform)
    outputs = {"db": PowerToDb(top_db=80.0)(mel), "musicnn": MusicnnLogCompression()(mel)}
    model = keras.Model(waveform, outputs)
    path = tmp_path / "frontend.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert [type(layer).__name__ for layer in restored.layers[1:]] == [
        "MelSpectrogram", "PowerToDb", "MusicnnLogCompression"]
    assert restored.layers[1].get_config()["n_fft"] == 1024
    y = waveforms(16000, 40000)
    for key, value in model(y).items():
        np.testing.assert_array_equal(restored(y)[key], value)
