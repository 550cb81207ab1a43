"""The features folder's manifest: the one reader and writer of `manifest.json`.

Keys: format_version, fingerprint (of the feature config), config, genres, segment_shape,
embeddings (input name -> size), normalization (training mean and std), splits (split ->
clips, source_clips, segments and shards [{file, sha256, clips, segments}]) and skipped.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from gtzan_tf.config import Config
from gtzan_tf.errors import UserError
from gtzan_tf.files import write_json

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class FeatureSet:
    """A prepared features folder: its manifest, shards and normalisation statistics."""

    root: Path
    manifest: dict

    @property
    def fingerprint(self) -> str:
        return self.manifest["fingerprint"]

    @property
    def genres(self) -> list[str]:
        return self.manifest["genres"]

    @property
    def segment_shape(self) -> tuple[int, int]:
        return tuple(self.manifest["segment_shape"])

    @property
    def embedding_dims(self) -> dict[str, int]:
        return self.manifest["embeddings"]

    @property
    def normalization(self) -> tuple[float, float]:
        stats = self.manifest["normalization"]
        return stats["mean"], stats["std"]

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
    return FeatureSet(root, manifest)


def load_feature_set(features_dir: str | Path) -> FeatureSet:
    """The complete features folder `features_dir` (every shard present)."""
    fs = read_manifest(features_dir)
    if fs is None:
        raise UserError(f"{features_dir} has no {MANIFEST}; run `python -m gtzan_tf.prepare --data DIR --out {features_dir}` first")
    for split in fs.manifest["splits"].values():
        for shard in split["shards"]:
            if not (fs.root / shard["file"]).is_file():
                raise UserError(f"{fs.root / shard['file']} is missing; run prepare again to rebuild it")
    return fs


def write_manifest(out: Path, cfg: Config, genres: list[str], embeddings: dict[str, int], splits: dict,
                   normalization: tuple[float, float], skipped: list[dict]) -> dict:
    """Write `manifest.json` atomically; `splits` maps split -> {clips, source_clips, segments, shards}."""
    manifest = {
        "format_version": FORMAT_VERSION,
        "fingerprint": cfg.feature_fingerprint(),
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
