"""The TFRecord format: one `tf.train.Example` per clip version, holding all its segments.

Keys: clip_id (e.g. `jazz/jazz.00012` or `jazz/jazz.00012.aug1`), source_id (the original clip), genre,
label, n_segments, features (float32 bytes, n_segments x frames x bins) and one float list per
clip embedding (`msd_embedding`, `mtt_embedding`): the embedding slot of the format.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def serialize_clip(
    clip_id: str, source_id: str, genre: str, label: int, segments: np.ndarray, embeddings: dict[str, np.ndarray]
) -> bytes:
    feature = {
        "clip_id": _bytes(clip_id.encode()),
        "source_id": _bytes(source_id.encode()),
        "genre": _bytes(genre.encode()),
        "label": _int(label),
        "n_segments": _int(len(segments)),
        "features": _bytes(np.ascontiguousarray(segments, dtype="<f4").tobytes()),
    }
    for name, vector in embeddings.items():
        feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(vector, np.float32)))
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString(deterministic=True)  # map order would vary between processes


def clip_parser(segment_shape: tuple[int, int], embedding_dims: dict[str, int]):
    """A tf function: serialized Example -> dict with `features` (n_segments, frames, bins)."""
    spec = {
        "clip_id": tf.io.FixedLenFeature([], tf.string),
        "source_id": tf.io.FixedLenFeature([], tf.string),
        "genre": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64),
        "n_segments": tf.io.FixedLenFeature([], tf.int64),
        "features": tf.io.FixedLenFeature([], tf.string),
    }
    spec.update({name: tf.io.FixedLenFeature([dim], tf.float32) for name, dim in embedding_dims.items()})

    def parse(serialized):
        example = tf.io.parse_single_example(serialized, spec)
        flat = tf.io.decode_raw(example["features"], tf.float32)
        example["features"] = tf.reshape(flat, [-1, *segment_shape])
        return example

    return parse
