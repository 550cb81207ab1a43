"""musicnn's input: 16 kHz audio -> log-compressed mel spectrogram -> 3 s patches (numpy and TF).

The original computes `log10(10000 * float16(mel) + 1)` with librosa (n_fft 512, hop 256,
96 Slaney mels). We round mel to float16 as it does (so stored spectrograms are reproduced
exactly), but keep values above float16's range in float32 and do the arithmetic in float32,
so loud audio gives finite values where the original gives inf.
"""
from __future__ import annotations

from pathlib import Path

import keras
import librosa
import numpy as np
import tensorflow as tf

from gtzan_tf import native_stderr_silenced
from gtzan_tf.data.audio import decode_failure
from gtzan_tf.errors import BadAudioError
from gtzan_tf.features.layers import MelSpectrogram, MusicnnLogCompression, RepeatPad, Segments
from gtzan_tf.musicnn.params import PARAMS

FLOAT16_MAX = float(np.finfo(np.float16).max)


def load_audio(path: str | Path) -> np.ndarray:
    """Mono float32 waveform at 16 kHz (librosa, soxr_hq), as the original loads it."""
    if not Path(path).is_file():
        raise BadAudioError(f"{path}: no such file")
    try:
        with native_stderr_silenced():  # libmpg123 prints notes on a corrupt mp3 before failing
            y, _ = librosa.load(path, sr=PARAMS.sample_rate, mono=True)
    except Exception as exc:  # soundfile and audioread raise many types for unreadable files
        raise BadAudioError(f"{path}: cannot decode audio ({decode_failure(exc)}); re-download or convert it") from None
    if y.size == 0:
        raise BadAudioError(f"{path}: no audio samples")
    return y


def round_to_float16(mel: np.ndarray) -> np.ndarray:
    """mel rounded to float16 precision as the original does, values above float16's range kept."""
    if mel.max(initial=0.0) <= FLOAT16_MAX:
        return mel.astype(np.float16).astype(np.float32)
    rounded = np.minimum(mel, FLOAT16_MAX).astype(np.float16).astype(np.float32)
    return np.where(mel > FLOAT16_MAX, mel, rounded)


def musicnn_spectrogram(y: np.ndarray) -> np.ndarray:
    """16 kHz waveform -> (frames, 96) float32 network input, finite for any finite input."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise BadAudioError(f"expected a non-empty mono waveform, got shape {y.shape}")
    if not np.isfinite(y).all():
        raise BadAudioError("waveform has NaN or infinite samples")
    mel = librosa.feature.melspectrogram(
        y=y, sr=PARAMS.sample_rate, n_fft=PARAMS.n_fft, hop_length=PARAMS.hop_length, n_mels=PARAMS.n_mels
    )
    spec = round_to_float16(mel)  # (mels, frames), float32 arithmetic from here: no overflow
    spec *= PARAMS.log_scale
    spec += 1
    return np.ascontiguousarray(np.log10(spec, out=spec).T)


def patches(spec: np.ndarray) -> np.ndarray:
    """(frames, 96) -> (P, 187, 96): no overlap, leftover frames dropped; short input repeated to 1 patch."""
    frames = PARAMS.patch_frames
    if len(spec) < frames:
        spec = spec[np.arange(frames) % len(spec)]
    n = len(spec) // frames
    return np.ascontiguousarray(spec[: n * frames].reshape(n, frames, spec.shape[1]))


def file_patches(path: str | Path) -> np.ndarray:
    """Audio file -> (P, 187, 96) network inputs."""
    return patches(musicnn_spectrogram(load_audio(path)))


@keras.saving.register_keras_serializable(package="gtzan_tf")
class MusicnnPatches(keras.layers.Layer):
    """16 kHz waveforms (batch, samples) of any length -> patches (batch, P, 187, 96), in-graph.

    Same recipe as `musicnn_spectrogram` + `patches`, with tf.signal in place of librosa.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.mel = MelSpectrogram(PARAMS.sample_rate, PARAMS.n_fft, PARAMS.hop_length, PARAMS.n_mels, name="mel")
        self.compress = MusicnnLogCompression(PARAMS.log_scale, name="log_compression")
        self.repeat = RepeatPad(PARAMS.patch_frames, name="repeat_to_one_patch")
        self.segments = Segments(PARAMS.patch_frames, name="patches")

    def build(self, input_shape):
        self.mel.build(input_shape)
        self.compress.build(self.mel.compute_output_shape(input_shape))

    def call(self, waveforms):
        mel = self.mel(waveforms)
        rounded = tf.cast(tf.cast(tf.minimum(mel, FLOAT16_MAX), tf.float16), tf.float32)
        spec = self.compress(tf.where(mel > FLOAT16_MAX, mel, rounded))
        return self.segments(self.repeat(spec))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None, *PARAMS.patch_shape)
