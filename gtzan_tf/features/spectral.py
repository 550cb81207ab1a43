"""Time-frequency features with librosa (log-mel, MFCC, chroma) and their segmentation."""
from __future__ import annotations

import librosa
import numpy as np

from gtzan_tf.config import FeatureConfig


def log_mel(y: np.ndarray, sample_rate: int, cfg: FeatureConfig) -> np.ndarray:
    """power_to_db(mel power spectrogram), shape (frames, n_mels), as the reference recipe."""
    mel = librosa.feature.melspectrogram(
        y=y, sr=sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels
    )
    return librosa.power_to_db(mel, ref=1.0, top_db=cfg.top_db).T.astype(np.float32)


def compute_features(y: np.ndarray, sample_rate: int, cfg: FeatureConfig) -> np.ndarray:
    """Features of the kind `cfg.kind`, shape (frames, cfg.n_bins), float32."""
    if cfg.kind == "logmel":
        return log_mel(y, sample_rate, cfg)
    if cfg.kind == "mfcc":
        db = log_mel(y, sample_rate, cfg).T
        return librosa.feature.mfcc(S=db, n_mfcc=cfg.n_mfcc).T.astype(np.float32)
    chroma = librosa.feature.chroma_stft(
        y=y, sr=sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_chroma=cfg.n_chroma
    )
    return chroma.T.astype(np.float32)


def segment(features: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Non-overlapping segments (n, segment_frames, bins); leftover frames are dropped."""
    n = len(features) // cfg.segment_frames
    if n == 0:
        raise ValueError(f"{len(features)} frames is shorter than one {cfg.segment_frames}-frame segment")
    if cfg.max_segments:
        n = min(n, cfg.max_segments)
    return features[: n * cfg.segment_frames].reshape(n, cfg.segment_frames, features.shape[1])
