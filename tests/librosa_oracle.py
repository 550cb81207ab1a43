"""librosa's features, written plainly: the oracle the in-graph frontend is tested against."""
from __future__ import annotations

import librosa
import numpy as np

from gtzan_tf.config import Config, FeatureConfig


def features(y: np.ndarray, sample_rate: int, f: FeatureConfig) -> np.ndarray:
    """(frames, bins) features of the kind `f.kind`, float32."""
    if f.kind == "chroma":
        chroma = librosa.feature.chroma_stft(y=y, sr=sample_rate, n_fft=f.n_fft, hop_length=f.hop_length,
                                             n_chroma=f.n_chroma, tuning=0.0)
        return chroma.T.astype(np.float32)
    mel = librosa.feature.melspectrogram(y=y, sr=sample_rate, n_fft=f.n_fft, hop_length=f.hop_length, n_mels=f.n_mels)
    db = librosa.power_to_db(mel, ref=1.0, top_db=f.top_db)
    if f.kind == "mfcc":
        return librosa.feature.mfcc(S=db, n_mfcc=f.n_mfcc).T.astype(np.float32)
    return db.T.astype(np.float32)


def repeat_pad(y: np.ndarray, min_samples: int) -> np.ndarray:
    return y if len(y) >= min_samples else np.tile(y, -(-min_samples // len(y)))[:min_samples]


def segments(frames: np.ndarray, f: FeatureConfig) -> np.ndarray:
    n = len(frames) // f.segment_frames
    if f.max_segments:
        n = min(n, f.max_segments)
    return frames[: n * f.segment_frames].reshape(n, f.segment_frames, frames.shape[1])


def clip_segments(y: np.ndarray, cfg: Config) -> np.ndarray:
    """What the frontend's segment output should be for one clip."""
    padded = repeat_pad(y, cfg.features.segment_samples)
    return segments(features(padded, cfg.audio.sample_rate, cfg.features), cfg.features)
