"""Keras preprocessing layers (kapre-style) that reproduce librosa's mel spectrogram in-graph.

They run on the TensorFlow backend (tf.signal) and always compute in float32. Registered as
serializable, so models that use them save and load as `.keras` files.
"""
from __future__ import annotations

import math

import keras
import librosa
import numpy as np
import tensorflow as tf

LN10 = math.log(10.0)


def _float32(kwargs: dict) -> dict:
    kwargs.setdefault("dtype", "float32")
    return kwargs


@keras.saving.register_keras_serializable(package="gtzan_tf")
class MelSpectrogram(keras.layers.Layer):
    """Waveforms (batch, samples) -> mel power spectrogram (batch, frames, n_mels).

    As librosa.feature.melspectrogram's defaults: frames centred with constant zero padding of
    n_fft // 2 on both sides (frames = 1 + samples // hop_length), periodic Hann window,
    |STFT|^2, and the Slaney mel matrix of librosa.filters.mel.
    """

    def __init__(self, sample_rate: int = 16000, n_fft: int = 1024, hop_length: int = 512, n_mels: int = 96,
                 **kwargs):
        super().__init__(**_float32(kwargs))
        self.sample_rate, self.n_fft, self.hop_length, self.n_mels = sample_rate, n_fft, hop_length, n_mels
        # (n_fft // 2 + 1, n_mels), a constant of the graph rather than a weight.
        self.mel_matrix = np.ascontiguousarray(
            librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels).T.astype(np.float32)
        )

    def call(self, waveforms):
        pad = self.n_fft // 2
        padded = tf.pad(waveforms, [[0, 0], [pad, pad]])
        stft = tf.signal.stft(padded, self.n_fft, self.hop_length, fft_length=self.n_fft,
                              window_fn=tf.signal.hann_window, pad_end=False)
        power = tf.square(tf.math.real(stft)) + tf.square(tf.math.imag(stft))
        return tf.matmul(power, tf.constant(self.mel_matrix))

    def compute_output_shape(self, input_shape):
        samples = input_shape[1]
        frames = None if samples is None else 1 + samples // self.hop_length
        return (input_shape[0], frames, self.n_mels)

    def get_config(self):
        return {**super().get_config(), "sample_rate": self.sample_rate, "n_fft": self.n_fft,
                "hop_length": self.hop_length, "n_mels": self.n_mels}


@keras.saving.register_keras_serializable(package="gtzan_tf")
class PowerToDb(keras.layers.Layer):
    """Power -> decibels, as librosa.power_to_db: 10 log10(max(amin, x) / ref), floored at
    (each example's maximum - top_db) unless top_db is None."""

    def __init__(self, ref: float = 1.0, amin: float = 1e-10, top_db: float | None = 80.0, **kwargs):
        super().__init__(**_float32(kwargs))
        if amin <= 0:
            raise ValueError("amin must be strictly positive")
        if top_db is not None and top_db < 0:
            raise ValueError("top_db must be non-negative")
        self.ref, self.amin, self.top_db = ref, amin, top_db

    def call(self, power):
        db = 10.0 / LN10 * tf.math.log(tf.maximum(power, self.amin))
        db -= 10.0 * math.log10(max(self.amin, self.ref))
        if self.top_db is None:
            return db
        peak = tf.reduce_max(db, axis=tf.range(1, tf.rank(db)), keepdims=True)
        return tf.maximum(db, peak - self.top_db)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "ref": self.ref, "amin": self.amin, "top_db": self.top_db}


@keras.saving.register_keras_serializable(package="gtzan_tf")
class MusicnnLogCompression(keras.layers.Layer):
    """musicnn's log compression: log10(scale * x + 1)."""

    def __init__(self, scale: float = 10000.0, **kwargs):
        super().__init__(**_float32(kwargs))
        self.scale = scale

    def call(self, power):
        return tf.math.log(self.scale * power + 1.0) / LN10

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}
