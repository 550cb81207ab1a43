"""Offline waveform augmentation with audiomentations, seeded per clip and copy."""
from __future__ import annotations

import hashlib
import random

import numpy as np
from audiomentations import AddGaussianNoise, Compose, Gain, PitchShift, Shift, TimeStretch

from gtzan_tf.config import AugmentConfig


def build_augmenter(cfg: AugmentConfig, sample_rate: int) -> Compose:
    """The reference's white noise, circular shift and time stretch, plus pitch shift and gain."""
    return Compose(
        [
            AddGaussianNoise(min_amplitude=cfg.noise_std, max_amplitude=cfg.noise_std, p=cfg.noise_p),
            Shift(
                min_shift=-cfg.shift_max_samples,
                max_shift=cfg.shift_max_samples,
                shift_unit="samples",
                rollover=True,
                fade_duration=0.0,
                p=cfg.shift_p,
            ),
            TimeStretch(
                min_rate=cfg.stretch_min_rate,
                max_rate=cfg.stretch_max_rate,
                leave_length_unchanged=True,
                p=cfg.stretch_p,
            ),
            PitchShift(min_semitones=-cfg.pitch_semitones, max_semitones=cfg.pitch_semitones, p=cfg.pitch_p),
            Gain(min_gain_db=-cfg.gain_db, max_gain_db=cfg.gain_db, p=cfg.gain_p),
        ]
    )


def copy_seed(base_seed: int, clip_id: str, copy_index: int) -> int:
    """A seed that depends only on the clip and copy, never on processing order."""
    digest = hashlib.sha256(f"{base_seed}:{clip_id}:{copy_index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def augmented_copies(
    y: np.ndarray, sample_rate: int, clip_id: str, cfg: AugmentConfig, augmenter: Compose | None = None
) -> list[np.ndarray]:
    """`cfg.copies` augmented versions of `y`, identical for the same seed and clip id."""
    augmenter = augmenter or build_augmenter(cfg, sample_rate)
    copies = []
    for index in range(1, cfg.copies + 1):
        seed = copy_seed(cfg.seed, clip_id, index)
        # audiomentations draws from the global `random` and `np.random` generators.
        random.seed(seed)
        np.random.seed(seed)
        out = augmenter(samples=y.astype(np.float32), sample_rate=sample_rate)
        copies.append(np.clip(out, -1.0, 1.0).astype(np.float32))
    return copies
