"""tf.data pipelines over prepared shards: shuffled segment batches and whole-clip groups."""
from __future__ import annotations

from collections.abc import Collection

import tensorflow as tf

from gtzan_tf.config import SEGMENTS
from gtzan_tf.data.manifest import FeatureSet, load_feature_set  # noqa: F401 (load_feature_set: re-exported)
from gtzan_tf.data.records import clip_parser
from gtzan_tf.features.frontend import classifier_inputs
from gtzan_tf.features.layers import Standardize

# Epoch e of a run seeded s shuffles with seed s * EPOCH_SEED_STRIDE + e: no two (s, e) pairs share one.
EPOCH_SEED_STRIDE = 1_000_003
EPOCH_GRAPH_SEED = 1


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

    The stored frontend outputs become model inputs by `classifier_inputs`, as in the serving
    model: segments standardised with the training set's mean and std (`fs.normalization`), labels
    in `fs.genres`' order (`FeatureSet.scored_by`), clip embeddings repeated
    on every segment of their clip (the reference recipe). The order depends on the seed
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
    standardize = Standardize(*fs.normalization)
    examples = records.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    if originals_only:
        examples = examples.filter(lambda ex: tf.equal(ex["clip_id"], ex["source_id"]))
    if sources is not None:
        kept = tf.constant(sorted(sources), tf.string)
        examples = examples.filter(lambda ex: tf.reduce_any(tf.equal(ex["source_id"], kept)))

    label_map = None if fs.label_map is None else tf.constant(fs.label_map, tf.int64)

    def to_clip(ex):
        clip = {SEGMENTS: ex["features"], **{name: ex[name] for name in fs.embedding_dims}}
        label = ex["label"] if label_map is None else tf.gather(label_map, ex["label"])
        return classifier_inputs(clip, fs.segment_input, inputs, standardize), label, ex["clip_id"]

    return examples.map(to_clip, num_parallel_calls=tf.data.AUTOTUNE)


def segment_dataset(fs: FeatureSet, split: str, inputs: tuple[str, ...], batch_size: int, *,
                    shuffle: bool = True, seed: int = 0, shuffle_buffer: int = 2048, cache: bool = False,
                    sources: Collection[str] | None = None, originals_only: bool = False,
                    clip_ids: bool = False, n_segments: int | None = None,
                    mixup_alpha: float = 0.0) -> tf.data.Dataset:
    """Shuffled, batched, prefetched (inputs, one-hot label) segment batches for `model.fit`;
    (inputs, one-hot label, clip id) with `clip_ids`. `sources` and `originals_only` select clips
    as in `clip_dataset`; `n_segments`, their segment count, is counted when not given. With `mixup_alpha` > 0
    (and no clip ids), every batch mixed up (`mixup`)."""
    n_classes = len(fs.genres)
    clips = clip_dataset(fs, split, inputs, originals_only=originals_only, sources=sources,
                         shuffle_files=shuffle, seed=seed)
    if cache:
        clips = clips.cache()

    def with_segment_labels(features, label, clip_id):
        n = tf.shape(next(iter(features.values())))[0]
        labels = tf.tile(tf.one_hot(label, n_classes)[tf.newaxis], [n, 1])
        return (features, labels, tf.fill([n], clip_id)) if clip_ids else (features, labels)

    segments = clips.map(with_segment_labels, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    if n_segments is None:
        n_segments = count_segments(fs, split, sources, originals_only)
    segments = segments.apply(tf.data.experimental.assert_cardinality(n_segments))
    if shuffle:
        segments = segments.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    batches = segments.batch(batch_size)
    if mixup_alpha and not clip_ids:
        batches = batches.enumerate().map(mixup(mixup_alpha, seed))
    return batches.prefetch(tf.data.AUTOTUNE)


def mixup(alpha: float, seed):
    """A map over enumerated batches (index, (inputs, labels)) -> each example mixed with another of
    its batch (Zhang et al. 2018): x = lam x_i + (1 - lam) x_j and likewise the labels, lam ~
    Beta(alpha, alpha) per example, every input of an example (segment and embeddings) with the same
    lam; random numbers from (seed, index) alone. It needs the labels, so it lives in the training
    pipeline, not in the model (evaluation never sees it)."""

    def mix(index, batch):
        features, labels = batch
        key = tf.stack([tf.cast(seed, tf.int64), tf.cast(index, tf.int64)])
        seeds = tf.random.experimental.stateless_split(key, 3)
        n = tf.shape(labels)[0]
        a, b = (tf.random.stateless_gamma([n], seeds[i], alpha) for i in (0, 1))
        lam = a / (a + b)
        partner = tf.argsort(tf.random.stateless_uniform([n], seeds[2]))

        def blend(x):
            weight = tf.reshape(tf.cast(lam, x.dtype), [-1] + [1] * (len(x.shape) - 1))
            return weight * x + (1 - weight) * tf.gather(x, partner)

        return {name: blend(x) for name, x in features.items()}, blend(labels)

    return mix


def training_batches(fs: FeatureSet, inputs: tuple[str, ...], batch_size: int, *, seed: int, epochs: range,
                     shuffle_buffer: int = 2048, sources: Collection[str] | None = None,
                     mixup_alpha: float = 0.0) -> tf.data.Dataset:
    """The shuffled (and with `mixup_alpha`, mixed-up) training batches of `epochs`, one epoch after
    the other, for `model.fit(steps_per_epoch=...)`.

    Every epoch's order is a function of (seed, epoch) alone, so a run resumed at epoch k sees the
    batches the uninterrupted run saw from epoch k on.
    """

    n_segments = count_segments(fs, "train", sources)  # read here: one_epoch runs in a traced graph

    def one_epoch(epoch):
        # The shuffles get the tensor seed (seed, epoch). TensorFlow pairs an op seed with the graph seed and
        # cannot take a tensor op seed beside a graph seed of 0 (`keras.utils.set_random_seed(0)`), so this
        # function's own graph gets a fixed graph seed: the order depends on (seed, epoch) alone.
        tf.random.set_seed(EPOCH_GRAPH_SEED)
        return segment_dataset(fs, "train", inputs, batch_size, seed=seed * EPOCH_SEED_STRIDE + epoch,
                               shuffle_buffer=shuffle_buffer, sources=sources, n_segments=n_segments,
                               mixup_alpha=mixup_alpha)

    return tf.data.Dataset.range(epochs.start, epochs.stop).flat_map(one_epoch).prefetch(tf.data.AUTOTUNE)


def eval_clip_dataset(fs: FeatureSet, split: str, inputs: tuple[str, ...],
                      sources: Collection[str] | None = None) -> tf.data.Dataset:
    """Whole-clip groups of original (not augmented) clips, in a fixed order, for clip-level scores."""
    return clip_dataset(fs, split, inputs, originals_only=True, sources=sources).prefetch(tf.data.AUTOTUNE)
