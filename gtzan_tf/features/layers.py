"""Keras preprocessing layers (kapre-style): waveform -> features -> segments, in-graph.

Each layer is small and does one thing as librosa does it (librosa is the test oracle); the
frontend (`features/frontend.py`) composes them. They run on the TensorFlow backend (tf.signal),
always compute in float32, and are registered as serializable, so models that use them save and
load as `.keras` files.
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


def power_spectrogram(waveforms, n_fft: int, hop_length: int):
    """|STFT|^2 (batch, frames, n_fft // 2 + 1) as librosa.stft's defaults: centred frames with
    n_fft // 2 zeros on both sides (frames = 1 + samples // hop_length), periodic Hann window."""
    pad = n_fft // 2
    padded = tf.pad(waveforms, [[0, 0], [pad, pad]])
    stft = tf.signal.stft(padded, n_fft, hop_length, fft_length=n_fft, window_fn=tf.signal.hann_window, pad_end=False)
    return tf.square(tf.math.real(stft)) + tf.square(tf.math.imag(stft))


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
        return tf.matmul(power_spectrogram(waveforms, self.n_fft, self.hop_length), tf.constant(self.mel_matrix))

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


@keras.saving.register_keras_serializable(package="gtzan_tf")
class Mfcc(keras.layers.Layer):
    """dB mel spectrogram (batch, frames, n_mels) -> MFCCs (batch, frames, n_mfcc), as
    librosa.feature.mfcc(S=db): orthonormal DCT-II over the mel axis, no liftering."""

    def __init__(self, n_mfcc: int = 20, **kwargs):
        super().__init__(**_float32(kwargs))
        self.n_mfcc = n_mfcc

    def call(self, db):
        return tf.signal.dct(db, type=2, norm="ortho")[..., : self.n_mfcc]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.n_mfcc)

    def get_config(self):
        return {**super().get_config(), "n_mfcc": self.n_mfcc}


@keras.saving.register_keras_serializable(package="gtzan_tf")
class Chroma(keras.layers.Layer):
    """Waveforms (batch, samples) -> chromagram (batch, frames, n_chroma), as
    librosa.feature.chroma_stft(tuning=0.0): power STFT, librosa's chroma filter bank, and every
    frame divided by its maximum (frames below float32's smallest normal left as they are).

    The tuning is fixed at A440 rather than estimated from each clip, so that a clip's features do
    not depend on a per-clip pitch estimate.
    """

    def __init__(self, sample_rate: int = 16000, n_fft: int = 1024, hop_length: int = 512, n_chroma: int = 12,
                 **kwargs):
        super().__init__(**_float32(kwargs))
        self.sample_rate, self.n_fft, self.hop_length, self.n_chroma = sample_rate, n_fft, hop_length, n_chroma
        self.chroma_matrix = np.ascontiguousarray(
            librosa.filters.chroma(sr=sample_rate, n_fft=n_fft, n_chroma=n_chroma, tuning=0.0).T.astype(np.float32)
        )

    def call(self, waveforms):
        raw = tf.matmul(power_spectrogram(waveforms, self.n_fft, self.hop_length), tf.constant(self.chroma_matrix))
        peak = tf.reduce_max(tf.abs(raw), axis=-1, keepdims=True)
        return raw / tf.where(peak < np.finfo(np.float32).tiny, tf.ones_like(peak), peak)

    def compute_output_shape(self, input_shape):
        samples = input_shape[1]
        frames = None if samples is None else 1 + samples // self.hop_length
        return (input_shape[0], frames, self.n_chroma)

    def get_config(self):
        return {**super().get_config(), "sample_rate": self.sample_rate, "n_fft": self.n_fft,
                "hop_length": self.hop_length, "n_chroma": self.n_chroma}


@keras.saving.register_keras_serializable(package="gtzan_tf")
class RepeatPad(keras.layers.Layer):
    """Sequences (batch, length, ...) shorter than `min_length` along axis 1 (waveforms, or frames
    of a spectrogram) are repeated end to end up to `min_length`; longer ones pass unchanged
    (as numpy.tile(y, k)[:min_length])."""

    def __init__(self, min_length: int, **kwargs):
        super().__init__(**_float32(kwargs))
        self.min_length = min_length

    def call(self, sequences):
        n = tf.shape(sequences)[1]
        return tf.gather(sequences, tf.range(tf.maximum(n, self.min_length)) % n, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None, *input_shape[2:])

    def get_config(self):
        return {**super().get_config(), "min_length": self.min_length}


@keras.saving.register_keras_serializable(package="gtzan_tf")
class Segments(keras.layers.Layer):
    """Frames (batch, frames, bins) -> non-overlapping segments (batch, n, segment_frames, bins);
    leftover frames are dropped, and at most `max_segments` are kept when it is set."""

    def __init__(self, segment_frames: int, max_segments: int | None = None, **kwargs):
        super().__init__(**_float32(kwargs))
        self.segment_frames, self.max_segments = segment_frames, max_segments

    def call(self, frames):
        n = tf.shape(frames)[1] // self.segment_frames
        if self.max_segments:
            n = tf.minimum(n, self.max_segments)
        kept = frames[:, : n * self.segment_frames]
        return tf.reshape(kept, [tf.shape(frames)[0], n, self.segment_frames, tf.shape(frames)[2]])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None, self.segment_frames, input_shape[2])

    def get_config(self):
        return {**super().get_config(), "segment_frames": self.segment_frames, "max_segments": self.max_segments}


@keras.saving.register_keras_serializable(package="gtzan_tf")
class Resample(keras.layers.Layer):
    """Waveforms (batch, samples) at `source_rate` -> `target_rate` by FFT resampling, as
    librosa.resample(res_type="fft") (scipy.signal.resample); the identity when the rates agree."""

    def __init__(self, source_rate: int, target_rate: int, **kwargs):
        super().__init__(**_float32(kwargs))
        self.source_rate, self.target_rate = source_rate, target_rate

    def call(self, waveforms):
        if self.source_rate == self.target_rate:
            return waveforms
        n_in = tf.shape(waveforms)[1]
        n_out = tf.cast(tf.math.ceil(tf.cast(n_in, tf.float64) * self.target_rate / self.source_rate), tf.int32)
        spectrum = tf.signal.rfft(waveforms, fft_length=[n_in])
        n = tf.minimum(n_in, n_out)
        kept = spectrum[:, : n // 2 + 1]
        # The bin at n/2 of an even n: doubled when downsampling, halved when upsampling (as scipy).
        nyquist_gain = tf.where(n_out < n_in, 2.0, 0.5)
        scale = tf.where((n % 2 == 0) & (n_in != n_out) & (tf.range(n // 2 + 1) == n // 2), nyquist_gain, 1.0)
        kept *= tf.cast(scale, kept.dtype)[tf.newaxis]
        padded = tf.pad(kept, [[0, 0], [0, n_out // 2 + 1 - (n // 2 + 1)]])
        ratio = tf.cast(n_out, tf.float32) / tf.cast(n_in, tf.float32)
        return tf.signal.irfft(padded, fft_length=[n_out]) * ratio

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None)

    def get_config(self):
        return {**super().get_config(), "source_rate": self.source_rate, "target_rate": self.target_rate}


@keras.saving.register_keras_serializable(package="gtzan_tf")
class Standardize(keras.layers.Layer):
    """(x - mean) / std with the training set's statistics."""

    def __init__(self, mean: float, std: float, **kwargs):
        super().__init__(**_float32(kwargs))
        self.mean, self.std = float(mean), float(std)

    def call(self, x):
        return (x - self.mean) / self.std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std}
