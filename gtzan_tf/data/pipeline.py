"""tf.data pipelines over prepared shards: shuffled segment batches and whole-clip groups."""
from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import tensorflow as tf

from gtzan_tf.config import Config
from gtzan_tf.data.records import clip_parser
from gtzan_tf.errors import UserError

SEGMENT_INPUT = "logmel"


@dataclass(frozen=True)
class FeatureSet:
    """A prepared features folder: its manifest, shards and normalisation statistics."""

    root: Path
    manifest: dict

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

    def check_inputs(self, inputs: tuple[str, ...]) -> None:
        missing = [name for name in inputs if name != SEGMENT_INPUT and name not in self.embedding_dims]
        if missing:
            raise UserError(
                f"{self.root} was prepared without {', '.join(missing)}; "
                "prepare again with the musicnn embeddings enabled (data.embeddings)"
            )


def load_feature_set(features_dir: str | Path) -> FeatureSet:
    root = Path(features_dir)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise UserError(f"{root} has no manifest.json; run `python -m gtzan_tf.prepare --data DIR --out {root}` first")
    manifest = json.loads(manifest_path.read_text())
    for split in manifest["splits"].values():
        for shard in split["shards"]:
            if not (root / shard["file"]).is_file():
                raise UserError(f"{root / shard['file']} is missing; run prepare again to rebuild it")
    return FeatureSet(root, manifest)


def clip_table(fs: FeatureSet, split: str) -> list[dict]:
    """Every clip version of `split` in record order: clip_id, source_id, genre, n_segments."""
    spec = {key: tf.io.FixedLenFeature([], tf.string) for key in ("clip_id", "source_id", "genre")}
    spec["n_segments"] = tf.io.FixedLenFeature([], tf.int64)
    records = tf.data.TFRecordDataset(fs.files(split)).map(lambda r: tf.io.parse_single_example(r, spec))
    return [
        {key: value.decode() if isinstance(value, bytes) else int(value) for key, value in row.items()}
        for row in records.as_numpy_iterator()
    ]


def count_segments(fs: FeatureSet, split: str, sources: Collection[str] | None = None,
                   originals_only: bool = False) -> int:
    """Segments of `split` (only those of the `sources` clips and, if asked, of the originals)."""
    if sources is None and not originals_only:
        return fs.count(split)
    return sum(
        row["n_segments"] for row in clip_table(fs, split)
        if (sources is None or row["source_id"] in sources) and (not originals_only or row["clip_id"] == row["source_id"])
    )


def clip_dataset(fs: FeatureSet, split: str, inputs: tuple[str, ...], *, originals_only: bool = False,
                 sources: Collection[str] | None = None, shuffle_files: bool = False,
                 seed: int = 0) -> tf.data.Dataset:
    """One element per clip version: (inputs with a leading segment axis, label, clip_id).

    `sources` keeps only the versions of those source clips (one cross-validation fold's share).

    Segments are normalised with the training set's mean and std; clip embeddings are repeated
    on every segment of their clip, as the reference recipe does. The order depends on the seed
    only (parallel reads and maps stay deterministic), so a seeded run can be repeated exactly.
    """
    fs.check_inputs(inputs)
    files = tf.data.Dataset.from_tensor_slices(fs.files(split))
    if shuffle_files:
        files = files.shuffle(len(fs.files(split)), seed=seed, reshuffle_each_iteration=True)
    records = files.interleave(
        tf.data.TFRecordDataset,
        cycle_length=4,
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    parse = clip_parser(fs.segment_shape, fs.embedding_dims)
    mean, std = fs.normalization
    examples = records.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    if originals_only:
        examples = examples.filter(lambda ex: tf.equal(ex["clip_id"], ex["source_id"]))
    if sources is not None:
        kept = tf.constant(sorted(sources), tf.string)
        examples = examples.filter(lambda ex: tf.reduce_any(tf.equal(ex["source_id"], kept)))

    def to_clip(ex):
        n = tf.shape(ex["features"])[0]
        features = {}
        for name in inputs:
            if name == SEGMENT_INPUT:
                features[name] = (ex["features"] - mean) / std
            else:
                features[name] = tf.tile(ex[name][tf.newaxis], [n, 1])
        return features, ex["label"], ex["clip_id"]

    return examples.map(to_clip, num_parallel_calls=tf.data.AUTOTUNE)


def segment_dataset(fs: FeatureSet, split: str, inputs: tuple[str, ...], batch_size: int, *,
                    shuffle: bool = True, seed: int = 0, shuffle_buffer: int = 2048, cache: bool = False,
                    sources: Collection[str] | None = None, originals_only: bool = False) -> tf.data.Dataset:
    """Shuffled, batched, prefetched (inputs, one-hot label) segment batches for `model.fit`."""
    n_classes = len(fs.genres)
    clips = clip_dataset(fs, split, inputs, originals_only=originals_only, sources=sources,
                         shuffle_files=shuffle, seed=seed)
    if cache:
        clips = clips.cache()

    def with_segment_labels(features, label, clip_id):
        n = tf.shape(next(iter(features.values())))[0]
        return features, tf.tile(tf.one_hot(label, n_classes)[tf.newaxis], [n, 1])

    segments = clips.map(with_segment_labels, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    n_segments = count_segments(fs, split, sources, originals_only)
    segments = segments.apply(tf.data.experimental.assert_cardinality(n_segments))
    if shuffle:
        segments = segments.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return segments.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def eval_clip_dataset(fs: FeatureSet, split: str, inputs: tuple[str, ...],
                      sources: Collection[str] | None = None) -> tf.data.Dataset:
    """Whole-clip groups of original (not augmented) clips, in a fixed order, for clip-level scores."""
    return clip_dataset(fs, split, inputs, originals_only=True, sources=sources).prefetch(tf.data.AUTOTUNE)
