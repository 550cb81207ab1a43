"""tf.data pipelines over prepared shards: shuffled segment batches and whole-clip groups."""
from __future__ import annotations

import tensorflow as tf

from gtzan_tf.config import SEGMENTS
from gtzan_tf.data.manifest import FeatureSet, load_feature_set  # noqa: F401 (load_feature_set: re-exported)
from gtzan_tf.data.records import clip_parser
from gtzan_tf.features.frontend import classifier_inputs
from gtzan_tf.features.layers import Standardize


def clip_dataset(fs: FeatureSet, split: str, inputs: tuple[str, ...], *, originals_only: bool = False,
                 shuffle_files: bool = False, seed: int = 0) -> tf.data.Dataset:
    """One element per clip version: (inputs with a leading segment axis, label, clip_id).

    The stored frontend outputs become model inputs by `classifier_inputs`, as in the serving
    model: segments standardised with the training set's mean and std, clip embeddings repeated
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

    def to_clip(ex):
        clip = {SEGMENTS: ex["features"], **{name: ex[name] for name in fs.embedding_dims}}
        return classifier_inputs(clip, fs.segment_input, inputs, standardize), ex["label"], ex["clip_id"]

    return examples.map(to_clip, num_parallel_calls=tf.data.AUTOTUNE)


def segment_dataset(fs: FeatureSet, split: str, inputs: tuple[str, ...], batch_size: int, *,
                    shuffle: bool = True, seed: int = 0, shuffle_buffer: int = 2048,
                    cache: bool = False, mixup_alpha: float = 0.0) -> tf.data.Dataset:
    """Shuffled, batched, prefetched (inputs, one-hot label) segment batches for `model.fit`;
    with `mixup_alpha` > 0, every batch mixed up (`mixup`)."""
    n_classes = len(fs.genres)
    clips = clip_dataset(fs, split, inputs, shuffle_files=shuffle, seed=seed)
    if cache:
        clips = clips.cache()

    def with_segment_labels(features, label, clip_id):
        n = tf.shape(next(iter(features.values())))[0]
        return features, tf.tile(tf.one_hot(label, n_classes)[tf.newaxis], [n, 1])

    segments = clips.map(with_segment_labels, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    segments = segments.apply(tf.data.experimental.assert_cardinality(fs.count(split)))
    if shuffle:
        segments = segments.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    batches = segments.batch(batch_size)
    if mixup_alpha:
        batches = batches.map(mixup(mixup_alpha, seed))
    return batches.prefetch(tf.data.AUTOTUNE)


def mixup(alpha: float, seed: int = 0):
    """A batch map (inputs, labels) -> each example mixed with another of the batch (Zhang et al.
    2018): x = lam x_i + (1 - lam) x_j and likewise the labels, lam ~ Beta(alpha, alpha) per example,
    every input of an example (segment and embeddings) with the same lam. It needs the labels, so it
    lives in the training pipeline, not in the model (evaluation never sees it)."""

    def mix(features, labels):
        n = tf.shape(labels)[0]
        a = tf.random.gamma([n], alpha, seed=seed)
        b = tf.random.gamma([n], alpha, seed=seed + 1)
        lam = a / (a + b)
        partner = tf.random.shuffle(tf.range(n), seed=seed)

        def blend(x):
            weight = tf.reshape(tf.cast(lam, x.dtype), [-1] + [1] * (len(x.shape) - 1))
            return weight * x + (1 - weight) * tf.gather(x, partner)

        return {name: blend(x) for name, x in features.items()}, blend(labels)

    return mix


def eval_clip_dataset(fs: FeatureSet, split: str, inputs: tuple[str, ...]) -> tf.data.Dataset:
    """Whole-clip groups of original (not augmented) clips, in a fixed order, for clip-level scores."""
    return clip_dataset(fs, split, inputs, originals_only=True).prefetch(tf.data.AUTOTUNE)
