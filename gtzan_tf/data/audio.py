"""Audio decoding: any supported file -> mono float32 at the configured sample rate."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

from gtzan_tf import native_stderr_silenced
from gtzan_tf.config import AudioConfig
from gtzan_tf.errors import BadAudioError

SUPPORTED_EXTENSIONS = (".wav", ".flac", ".mp3", ".au", ".ogg")


def probe_audio(path: str | Path, cfg: AudioConfig) -> float:
    """Check a file's header (and the samples of a floating-point file, the only kind that can hold NaN)
    without decoding the rest; returns its duration in seconds."""
    path = Path(path)
    if not path.is_file():
        raise BadAudioError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise BadAudioError(f"{path}: empty file; re-download it or remove it from the split list")
    try:
        with native_stderr_silenced():  # libmpg123 prints notes on a corrupt mp3 before failing
            info = sf.info(str(path))
    except Exception as exc:  # libsndfile reports every unreadable format the same way
        raise BadAudioError(f"{path}: cannot decode audio ({decode_failure(exc)}); re-download or convert it") from None
    seconds = info.frames / info.samplerate if info.samplerate else 0.0
    _check_duration(path, seconds, cfg)
    if info.subtype in ("FLOAT", "DOUBLE") and not np.all(np.isfinite(sf.read(str(path), dtype="float32")[0])):
        raise BadAudioError(f"{path}: audio contains NaN or infinite samples")
    return seconds


def audio_files(paths: list[Path]) -> list[Path]:
    """The files among `paths`, and the supported audio files under its folders (sorted)."""
    files = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix.lower() in SUPPORTED_EXTENSIONS)
        else:
            files.append(path)
    return files


def load_audio(path: str | Path, cfg: AudioConfig, max_seconds: float | None = None) -> np.ndarray:
    """Decode (only the first `max_seconds` when given), down-mix to mono and resample to
    `cfg.sample_rate`; float32 in [-1, 1]."""
    path = Path(path)
    if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
        raise BadAudioError(f"{path}: unsupported format; use one of {', '.join(SUPPORTED_EXTENSIONS)}")
    probe_audio(path, cfg)
    try:
        with native_stderr_silenced(), sf.SoundFile(str(path)) as audio:
            rate = audio.samplerate
            frames = -1 if max_seconds is None else round(max_seconds * rate)
            data = audio.read(frames, dtype="float32", always_2d=True)
    except Exception as exc:
        raise BadAudioError(f"{path}: cannot decode audio ({decode_failure(exc)}); re-download or convert it") from None
    return to_mono_resampled(data, rate, cfg, source=path)


def to_mono_resampled(data: np.ndarray, rate: int, cfg: AudioConfig, source: str | Path = "<array>") -> np.ndarray:
    """(samples,) or (samples, channels) at `rate` -> mono float32 at `cfg.sample_rate`."""
    import librosa

    data = np.asarray(data, dtype=np.float32)
    mono = data.mean(axis=1) if data.ndim == 2 else data
    if not np.all(np.isfinite(mono)):
        raise BadAudioError(f"{source}: audio contains NaN or infinite samples")
    _check_duration(Path(str(source)), len(mono) / rate, cfg)
    if rate != cfg.sample_rate:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mono = librosa.resample(mono, orig_sr=rate, target_sr=cfg.sample_rate, res_type=cfg.resample_type)
    return np.ascontiguousarray(mono, dtype=np.float32)


def _check_duration(path: Path, seconds: float, cfg: AudioConfig) -> None:
    if seconds <= 0:
        raise BadAudioError(f"{path}: no audio samples; re-download it or remove it from the split list")
    if seconds < cfg.min_seconds:
        raise BadAudioError(f"{path}: clip is {seconds:.2f} s long, at least {cfg.min_seconds:g} s is needed")


def decode_failure(exc: Exception) -> str:
    """Why a decoder failed, in words: libsndfile's 'does not exist ... (possibly a pipe?)' for a damaged
    mp3 and audioread's empty NoBackendError both mean the file is not audio the decoders can read."""
    text = str(exc).strip()
    if not text or "possibly a pipe" in text or type(exc).__name__ in ("NoBackendError", "EOFError"):
        return "not a readable audio file, or a damaged one"
    line = text.splitlines()[-1]
    return line.split("': ", 1)[1] if line.startswith("Error opening '") and "': " in line else line


def shortest_clip_frames(paths, cfg) -> int:
    """Feature frames (`cfg.features`, at `cfg.audio.sample_rate`) of the shortest of the audio files
    `paths`, read from their headers: the length every clip is cropped to when a whole clip is one
    segment (`features.segment_frames` = this, `features.max_segments` = 1), as the reference recipe did."""
    return min(cfg.features.frames(int(probe_audio(path, cfg.audio) * cfg.audio.sample_rate)) for path in paths)
