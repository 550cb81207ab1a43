"""Dataset writer: the GTZAN layout (wav/<genre>/ and split lists) of synthesised clips, replaced atomically."""
from __future__ import annotations

import io
import wave
import zlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gtzan_tf.data.index import GTZAN_8_GENRES
from gtzan_tf.errors import UserError
from gtzan_tf.synth.render import synthesize_clip
from gtzan_tf.synth.styles import STYLES
from gtzan_tf.files import replace_dir, write_bytes, write_json

MARKER = "synth.json"


def clip_seed(seed: int, genre: str, index: int) -> list[int]:
    """Seed of one clip: independent of how many clips or which other genres are generated."""
    return [seed, zlib.crc32(genre.encode()), 0, index]


def split_clips(genre: str, clips_per_genre: int, test_fraction: float, seed: int) -> set[int]:
    """Indices of the test clips of one genre: round(N * fraction), at least one, never all (seeded)."""
    n_test = int(round(clips_per_genre * test_fraction))
    if test_fraction > 0:
        n_test = max(n_test, 1)
    n_test = min(n_test, clips_per_genre - 1)
    order = np.random.default_rng([seed, zlib.crc32(genre.encode()), 1]).permutation(clips_per_genre)
    return {int(i) for i in order[:n_test]}


def _wav_bytes(audio: np.ndarray, sr: int) -> bytes:
    """A mono 16-bit PCM WAV file of `audio` (clipped to [-1, 1])."""
    pcm = np.round(np.clip(audio, -1, 1) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sr)
        f.writeframes(pcm.tobytes())
    return buffer.getvalue()


def generate_dataset(out_dir: str | Path, *, clips_per_genre: int = 24, seconds: float = 12.0, seed: int = 0,
                     genres: tuple[str, ...] = GTZAN_8_GENRES, test_fraction: float = 0.25,
                     sample_rate: int = 22050, progress: bool = True) -> Path:
    """Write a synthetic dataset in the GTZAN layout to `out_dir` (replacing an earlier synth output).

    Writes `wav/<genre>/<genre>.NNNNN.wav` (mono 16-bit PCM), `split/{train,test}.txt` and the
    `synth.json` marker into a hidden folder next to `out_dir`, then renames it into place, so an
    interrupted run leaves no half-written files. Clip i of a genre depends only on (seed, genre, i).
    """
    out = Path(out_dir)
    unknown = [g for g in genres if g not in STYLES]
    if unknown:
        raise UserError(f"unknown genre {unknown[0]!r}: choose from {', '.join(STYLES)}")
    if seed < 0:
        raise UserError(f"--seed must be >= 0, got {seed}")
    if clips_per_genre < 1:
        raise UserError(f"--clips-per-genre must be at least 1, got {clips_per_genre}")
    if not 0 < seconds <= 600:
        raise UserError(f"--seconds must be in (0, 600], got {seconds}")
    if not 0 <= test_fraction < 1:
        raise UserError(f"--test-fraction must be in [0, 1), got {test_fraction}")
    if not 8000 <= sample_rate <= 96000:
        raise UserError(f"--sample-rate must be 8000..96000 Hz, got {sample_rate}")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file; choose a folder for --out")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise UserError(f"{out} is not empty and is not a gtzan_tf.synth output; choose another --out or remove it")
    out.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        lines: dict[str, list[str]] = {"train": [], "test": []}
        with tqdm(total=len(genres) * clips_per_genre, unit="clip", desc="synth", disable=not progress) as bar:
            for genre in genres:
                (tmp / "wav" / genre).mkdir(parents=True)
                test = split_clips(genre, clips_per_genre, test_fraction, seed)
                for i in range(clips_per_genre):
                    name = f"{genre}/{genre}.{i:05d}.wav"
                    audio = synthesize_clip(genre, clip_seed(seed, genre, i), seconds, sample_rate)
                    write_bytes(tmp / "wav" / name, _wav_bytes(audio, sample_rate))
                    lines["test" if i in test else "train"].append(name)
                    bar.update()
        (tmp / "split").mkdir()
        for split, names in lines.items():
            write_bytes(tmp / "split" / f"{split}.txt", "".join(f"{name}\n" for name in names).encode())
        params = {"clips_per_genre": clips_per_genre, "seconds": seconds, "seed": seed, "genres": list(genres),
                  "test_fraction": test_fraction, "sample_rate": sample_rate}
        write_json(tmp / MARKER, params)

    replace_dir(out, write)
    return out
