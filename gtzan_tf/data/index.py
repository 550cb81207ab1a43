"""Dataset index: the GTZAN folder layout, split lists and the validation hold-out.

Layout: `DIR/wav/<genre>/<genre>.000NN.wav` and `DIR/split/{train,test}.txt`, one
`genre/genre.000NN.wav` line per clip, relative to `DIR/wav/`. A folder without `split/` uses the
lists shipped in the package (`gtzan8`: the 8-genre split of the reference recipe).

A clip's identity is its normalised path relative to `wav/` without the extension
(`jazz/jazz.00001`): `jazz/./jazz.00001.wav` and `jazz/jazz.00001.au` are the same clip, and
`track0.wav` in two genres are two clips.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np

from gtzan_tf.config import DataConfig
from gtzan_tf.data.audio import SUPPORTED_EXTENSIONS
from gtzan_tf.errors import UserError

GTZAN_8_GENRES = ("classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae")
GTZAN_10_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")

SPLITS = ("train", "valid", "test")
# Shipped lists: split name -> list file in gtzan_tf/data/splits. Without "valid", it is held out.
SHIPPED_SPLITS = {
    "gtzan8": {"train": "train.txt", "test": "test.txt"},
    "gtzan10-filtered": {"train": "train_filtered.txt", "valid": "valid_filtered.txt", "test": "test_filtered.txt"},
}


@dataclass(frozen=True)
class Clip:
    clip_id: str
    genre: str
    path: Path
    split: str


@dataclass(frozen=True)
class DatasetIndex:
    root: Path
    genres: tuple[str, ...]
    clips: tuple[Clip, ...]
    skipped: tuple[tuple[str, str], ...] = ()

    def split(self, name: str) -> list[Clip]:
        return [clip for clip in self.clips if clip.split == name]

    def label(self, genre: str) -> int:
        return self.genres.index(genre)

    def fingerprint(self) -> str:
        """The identity of this data (read once per index: a stat per clip; see `_fingerprint`)."""
        return self._fingerprint

    @cached_property
    def _fingerprint(self) -> str:
        """The identity of this data: every clip's id, genre, split and file (extension, size and
        modification time), so features are never shared by two datasets or two versions of one.

        Sizes and times rather than content hashes: a stat per file costs nothing at any corpus
        size, where hashing GTZAN's 1.3 GB would add seconds to every run (and FMA's 100 GB many
        minutes); a file that is rewritten or touched gets a new identity, so its features are
        prepared again rather than reused.
        """
        rows = []
        for clip in self.clips:
            stat = clip.path.stat()
            rows.append([clip.clip_id, clip.genre, clip.split, clip.path.suffix, stat.st_size, stat.st_mtime_ns])
        payload = json.dumps({"genres": list(self.genres), "clips": sorted(rows)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def check_known_genres(found: Sequence[str], known: Sequence[str], data: str | Path) -> None:
    """One error when `data` has genres (`found`) that a model trained on `known` cannot score."""
    unknown = [genre for genre in found if genre not in known]
    if unknown:
        raise UserError(f"{data} has genres the model was not trained on: {', '.join(unknown)}; "
                        f"the model knows {', '.join(known)}")


def load_index(data_dir: str | Path, cfg: DataConfig, split_lists: str = "auto", skip_bad: bool = False) -> DatasetIndex:
    """Read and validate the layout; every problem is one clear UserError (or a skip with --skip-bad)."""
    root = Path(data_dir)
    wav_dir = root / "wav"
    if root.is_file():
        raise UserError(f"--data {root} is a file; pass the dataset folder (the one holding wav/)")
    if not root.is_dir():
        raise UserError(f"data folder {root} does not exist; generate a demo set with `python -m gtzan_tf.synth --out {root}`")
    if not wav_dir.is_dir():
        raise UserError(f"{root} has no wav/ folder: expected the GTZAN layout {root}/wav/<genre>/<genre>.000NN.wav")
    folder_genres = sorted(p.name for p in wav_dir.iterdir() if p.is_dir())
    lists = _read_split_lists(root, split_lists)
    problems: list[tuple[str, str]] = []
    entries: list[tuple[str, str, Path, str]] = []
    seen: dict[str, str] = {}  # clip id -> where it is listed first
    for split, (source, lines) in lists.items():
        for number, line in lines:
            where = f"{source} line {number}"
            try:
                clip_id, genre, path = _resolve_entry(wav_dir, line, folder_genres, where)
            except UserError as exc:
                problems.append((line, str(exc)))
                continue
            if clip_id in seen:
                problems.append((line, f"clip {clip_id} is listed twice, {seen[clip_id]} and {where} ({line!r}); "
                                       "a clip may be listed once, in one split only"))
                continue
            seen[clip_id] = where
            entries.append((clip_id, genre, path, split))
    if problems and not skip_bad:
        raise UserError(problems[0][1] + " (pass --skip-bad to continue without it)")
    for entry, reason in problems:
        warnings.warn(f"skipping {entry}: {reason}", stacklevel=2)
    genres = tuple(sorted({genre for _, genre, _, _ in entries}))
    if not genres:
        raise UserError(f"no usable clips listed for {root}")
    trained = {genre for _, genre, _, split in entries if split != "test"}
    if not any(split == "train" for *_, split in entries):
        raise UserError(f"{lists['train'][0]} lists no usable clips; training needs at least one per genre")
    for genre in sorted(set(genres) - trained):
        warnings.warn(f"genre {genre!r} is listed only in {lists['test'][0]}: the model never trains on it", stacklevel=2)
    clips = [Clip(clip_id, genre, path, split) for clip_id, genre, path, split in entries]
    if "valid" not in lists:
        clips = _hold_out_validation(clips, cfg)
    return DatasetIndex(root=root, genres=genres, clips=tuple(clips), skipped=tuple(problems))


def _read_split_lists(root: Path, split_lists: str) -> dict[str, tuple[str, list[tuple[int, str]]]]:
    split_dir = root / "split"
    if split_lists == "auto" and split_dir.is_dir():
        names = {"train": "train.txt", "test": "test.txt"}
        if (split_dir / "valid.txt").is_file():
            names["valid"] = "valid.txt"
        missing = [n for n in names.values() if not (split_dir / n).is_file()]
        if missing:
            raise UserError(f"{split_dir} lacks {', '.join(missing)}: expected train.txt and test.txt")
        texts = {split: (str(split_dir / name), _read_text(split_dir / name)) for split, name in names.items()}
    else:
        key = "gtzan8" if split_lists == "auto" else split_lists
        if key not in SHIPPED_SPLITS:
            raise UserError(f"unknown split lists {split_lists!r}: choose auto or one of {', '.join(SHIPPED_SPLITS)}")
        package = resources.files("gtzan_tf.data") / "splits"
        texts = {
            split: (f"shipped {key} {name}", (package / name).read_text()) for split, name in SHIPPED_SPLITS[key].items()
        }
    return {
        split: (source, [(i, line.strip()) for i, line in enumerate(text.splitlines(), 1) if line.strip()])
        for split, (source, text) in texts.items()
    }


def _read_text(path: Path) -> str:
    """A split list as text: UTF-8, with or without a byte-order mark; anything else is one clear line."""
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UserError(f"{path} is UTF-16 text; save it as UTF-8 (one genre/file line per clip)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UserError(f"{path} line {line} is not UTF-8 text; save the list as UTF-8") from None


def _resolve_entry(wav_dir: Path, line: str, folder_genres: list[str], where: str) -> tuple[str, str, Path]:
    """Validate one split entry `genre/genre.000NN.ext`; returns (clip identity, genre, path)."""
    relative = Path(line)
    if relative.is_absolute() or ".." in relative.parts or len(relative.parts) != 2:
        raise UserError(f"{line!r} ({where}) is not a path inside wav/: expected genre/genre.000NN.wav")
    genre, filename = relative.parts
    if genre not in folder_genres:
        raise UserError(
            f"unknown genre {genre!r} ({where}): genres are the folders of {wav_dir}: {', '.join(folder_genres) or 'none'}"
        )
    path = wav_dir / relative
    if not path.is_file():
        # GTZAN is also distributed as .au: accept the same clip under another supported extension.
        alternatives = [path.with_suffix(ext) for ext in SUPPORTED_EXTENSIONS if path.with_suffix(ext).is_file()]
        if not alternatives:
            raise UserError(f"missing file {path} ({where}); restore it or remove the line")
        path = alternatives[0]
    return f"{genre}/{Path(filename).stem}", genre, path


def _hold_out_validation(clips: list[Clip], cfg: DataConfig) -> list[Clip]:
    """Move a seeded share of every genre's training clips to "valid" (`validation_size`)."""
    if not 0 <= cfg.validation_fraction < 1 or cfg.validation_per_genre < 0:
        raise UserError("data.validation_fraction must be in [0, 1) and data.validation_per_genre at least 0")
    rng = np.random.default_rng(cfg.split_seed)
    held: set[str] = set()
    for genre in sorted({c.genre for c in clips if c.split == "train"}):
        candidates = sorted(c.clip_id for c in clips if c.split == "train" and c.genre == genre)
        size = validation_size(len(candidates), cfg)
        held.update(rng.choice(candidates, size=size, replace=False).tolist())
    return [Clip(c.clip_id, c.genre, c.path, "valid") if c.clip_id in held else c for c in clips]


def validation_size(n_clips: int, cfg: DataConfig) -> int:
    """Clips of a genre with `n_clips` training clips that the hold-out takes: the fraction (rounded),
    at least `validation_per_genre`, at most half, so at least as many stay to train."""
    return min(max(round(cfg.validation_fraction * n_clips), cfg.validation_per_genre), n_clips // 2)
