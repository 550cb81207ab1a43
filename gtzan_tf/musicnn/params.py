"""The constants of musicnn's input and its embedding: one frozen dataclass, used everywhere."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MusicnnParams:
    """Signal processing and patching of the original musicnn 0.1.0 (configuration.py)."""

    sample_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 96
    patch_frames: int = 187  # 3 s: librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1
    embedding_size: int = 753  # 561 front-end + 3 x 64 mid-end channels, pooled over time
    log_scale: float = 10000.0  # spectrogram = log10(log_scale * mel + 1)

    @property
    def patch_shape(self) -> tuple[int, int]:
        """(frames, mels) of one network input."""
        return (self.patch_frames, self.n_mels)


PARAMS = MusicnnParams()
