"""The features folder's manifest: the one reader and writer of `manifest.json`.

Keys: format_version, fingerprint (of the feature config), data (the dataset's fingerprint and
folder: `DatasetIndex.fingerprint`), config, genres, segment_shape, embeddings (input name ->
size), normalization (training mean and std), splits (split -> clips, source_clips, segments and
shards [{file, sha256, clips, segments}]) and skipped.

A features folder is read only after every shard is verified against the manifest (its sha256 and
record count), so a damaged or cut shard is one error, never a smaller split.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path


from gtzan_tf.config import Config
from gtzan_tf.data.index import check_known_genres
from gtzan_tf.errors import UserError
from gtzan_tf.files import sha256_file, write_json

MANIFEST = "manifest.json"
FORMAT_VERSION = 2  # 2: the data's identity is recorded


@dataclass(frozen=True)
class FeatureSet:
    """A prepared features folder: its manifest, shards and normalisation statistics.

    `model_genres` and `model_normalization`, when set (`scored_by`), make it read as a trained model
    sees data: labels are the model's genre indices and segments are standardised with the
    statistics it was trained with.
    """

    root: Path
    manifest: dict
    model_genres: tuple[str, ...] | None = None
    model_normalization: tuple[float, float] | None = None

    @property
    def fingerprint(self) -> str:
        return self.manifest["fingerprint"]

    @property
    def data_fingerprint(self) -> str:
        return self.manifest["data"]["fingerprint"]

    @property
    def data_root(self) -> str:
        return self.manifest["data"]["root"]

    @property
    def genres(self) -> list[str]:
        return list(self.model_genres or self.manifest["genres"])

    @property
    def label_map(self) -> list[int] | None:
        """Stored label -> the model's label, when read for a model (`scored_by`)."""
        return [self.model_genres.index(g) for g in self.manifest["genres"]] if self.model_genres else None

    def scored_by(self, genres: list[str], normalization: tuple[float, float]) -> "FeatureSet":
        """These features as a model trained on `genres` with `normalization` reads them: labels
        mapped by genre name (a genre the model does not know is one error)."""
        check_known_genres(self.manifest["genres"], genres, f"the data of {self.root} ({self.data_root})")
        return FeatureSet(self.root, self.manifest, tuple(genres), tuple(normalization))

    @property
    def segment_shape(self) -> tuple[int, int]:
        return tuple(self.manifest["segment_shape"])

    @property
    def embedding_dims(self) -> dict[str, int]:
        return self.manifest["embeddings"]

    @property
    def normalization(self) -> tuple[float, float]:
        if self.model_normalization:
            return self.model_normalization
        stats = self.manifest["normalization"]
        return stats["mean"], stats["std"]

    def check_data(self, data_fingerprint: str, data_dir: str | Path) -> None:
        """Refuse features that were prepared from other data than `data_dir` (identity `data_fingerprint`)."""
        if self.data_fingerprint != data_fingerprint:
            raise UserError(
                f"{self.root} holds features of other data ({self.data_root} as it was then), not of {data_dir}; "
                f"choose another --features folder, or prepare this one again with `python -m gtzan_tf.prepare "
                f"--data {data_dir} --out {self.root} --config {self.root / 'config.json'} --overwrite`")

    def verify(self) -> None:
        """Check every shard against the manifest (sha256 and record count); one error names a bad one."""
        for split in self.manifest["splits"].values():
            for shard in split["shards"]:
                path = self.root / shard["file"]
                repair = (f"run `python -m gtzan_tf.prepare --data {self.data_root} --out {self.root} "
                          f"--config {self.root / 'config.json'}` again to repair it")
                if not path.is_file():
                    raise UserError(f"{path} is missing; {repair}")
                if sha256_file(path) != shard["sha256"]:
                    raise UserError(f"{path} is damaged (its sha256 is not the one in {MANIFEST}); {repair}")
                records = count_records(path)
                if records != shard["clips"]:
                    found = "ends inside a record" if records is None else f"holds {records} records"
                    raise UserError(f"{path} {found}, {MANIFEST} says {shard['clips']}; {repair}")

    @cached_property
    def config(self) -> Config:
        return Config.from_dict(self.manifest["config"])

    def files(self, split: str) -> list[str]:
        if split not in self.manifest["splits"]:
            raise UserError(f"{self.root} has no {split!r} split; it has {', '.join(self.manifest['splits'])}")
        return [str(self.root / shard["file"]) for shard in self.manifest["splits"][split]["shards"]]

    def count(self, split: str, what: str = "segments") -> int:
        return self.manifest["splits"][split][what]

    def has(self, split: str) -> bool:
        """Whether `split` holds any clip (a dataset may list no test clips: cross-validate them all)."""
        return self.manifest["splits"].get(split, {}).get("clips", 0) > 0

    @property
    def segment_input(self) -> str:
        """The model input name of the stored segments: their feature kind."""
        return self.config.features.kind

    def check_inputs(self, inputs: tuple[str, ...]) -> None:
        missing = [name for name in inputs if name != self.segment_input and name not in self.embedding_dims]
        if missing:
            raise UserError(
                f"{self.root} was prepared without {', '.join(missing)}; "
                "prepare again with the musicnn embeddings enabled (data.embeddings)"
            )


def count_records(path: Path) -> int | None:
    """The records of a TFRecord file, read off its framing (each record: its length as uint64, a CRC
    of it, the data, a CRC of the data) without reading the data; None if it ends inside a record."""
    size, count, position = path.stat().st_size, 0, 0
    with open(path, "rb") as f:
        while position < size:
            header = f.read(8)
            if len(header) < 8:
                return None
            position += 8 + 4 + struct.unpack("<Q", header)[0] + 4
            f.seek(position)
            count += 1
    return count if position == size else None


def read_manifest(features_dir: str | Path) -> FeatureSet | None:
    """The folder's manifest, or None if it has none (a damaged one is one clear error)."""
    root = Path(features_dir)
    path = root / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        FeatureSet(root, manifest).fingerprint
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{path} is damaged; delete it and run prepare again to rebuild it") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{root} was prepared by an older gtzan-tf; prepare it again with `python -m gtzan_tf.prepare "
                        f"--data DIR --out {root} --config {root / 'config.json'} --overwrite`")
    return FeatureSet(root, manifest)


def load_feature_set(features_dir: str | Path) -> FeatureSet:
    """The complete, verified features folder `features_dir`."""
    fs = read_manifest(features_dir)
    if fs is None:
        raise UserError(f"{features_dir} has no {MANIFEST}; run `python -m gtzan_tf.prepare --data DIR --out {features_dir}` first")
    fs.verify()
    return fs


def write_manifest(out: Path, cfg: Config, data: dict, genres: list[str], embeddings: dict[str, int], splits: dict,
                   normalization: tuple[float, float], skipped: list[dict]) -> dict:
    """Write `manifest.json` atomically; `data` is {fingerprint, root} of the dataset, `splits` maps
    split -> {clips, source_clips, segments, shards}."""
    manifest = {
        "format_version": FORMAT_VERSION,
        "fingerprint": cfg.feature_fingerprint(),
        "data": data,
        "config": cfg.to_dict(),
        "genres": list(genres),
        "segment_shape": list(cfg.features.segment_shape),
        "embeddings": embeddings,
        "normalization": dict(zip(("mean", "std"), normalization)),
        "splits": splits,
        "skipped": skipped,
    }
    write_json(out / MANIFEST, manifest, indent=1)
    return manifest
