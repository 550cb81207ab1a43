"""One shard: decode and augment its clips, run the model frontend on each, then write the TFRecord and its sidecar.

The sidecar (`<shard>.json`) records the shard's checksum and statistics; a shard without a
valid sidecar is redone, so an interrupted run can be rerun.
"""
from __future__ import annotations

import errno
import hashlib
import json
from pathlib import Path

import numpy as np

from gtzan_tf import import_tensorflow_quietly
from gtzan_tf.config import Config
from gtzan_tf.errors import BadAudioError
from gtzan_tf.files import atomic_path, write_json
from gtzan_tf.prepare.plan import ShardTask

# (clip_id, source_id, genre, label, waveform) of one clip version (the original or an augmented copy)
Version = tuple[str, str, str, int, np.ndarray]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def shard_is_done(out: Path, task: ShardTask) -> dict | None:
    """The sidecar of a complete, intact shard, or None."""
    sidecar, shard = out / f"{task.name}.json", out / f"{task.name}.tfrecord"
    if not (sidecar.is_file() and shard.is_file()):
        return None
    try:
        info = json.loads(sidecar.read_text())
    except ValueError:
        return None
    return info if info.get("sha256") == sha256_file(shard) else None


def init_worker(threads: int | None) -> None:
    import_tensorflow_quietly()
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.experimental.enable_op_determinism()


def decode_versions(task: ShardTask, cfg: Config, skip_bad: bool) -> tuple[list[Version], list[dict]]:
    """The shard's clips decoded, each followed by its augmented copies; and the skipped files."""
    from gtzan_tf.data.audio import load_audio
    from gtzan_tf.data.augment import augmented_copies, build_augmenter

    rate = cfg.audio.sample_rate
    augment = task.split in cfg.augment.splits and cfg.augment.copies > 0
    augmenter = build_augmenter(cfg.augment, rate) if augment else None
    versions, skipped = [], []
    for clip_id, genre, label, path in task.clips:
        try:
            y = load_audio(path, cfg.audio)
        except BadAudioError as exc:
            if not skip_bad:
                raise
            skipped.append({"path": path, "reason": str(exc)})
            continue
        versions.append((clip_id, clip_id, genre, label, y))
        if augment:
            for i, copy in enumerate(augmented_copies(y, rate, clip_id, cfg.augment, augmenter), 1):
                versions.append((f"{clip_id}.aug{i}", clip_id, genre, label, copy))
    return versions, skipped


def featurise_versions(versions: list[Version], cfg: Config) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """The model frontend on every version: its (n_segments, frames, bins) segments; and the clip
    embeddings (n_versions, 753) by input name."""
    from gtzan_tf.config import SEGMENTS
    from gtzan_tf.features.frontend import frontend_function

    frontend = frontend_function(cfg)
    clips = [{name: value.numpy() for name, value in frontend(v[4]).items()} for v in versions]
    segments = [clip.pop(SEGMENTS) for clip in clips]
    embeddings = {name: np.stack([clip[name] for clip in clips]) for name in clips[0]} if clips else {}
    return segments, embeddings


def build_shard(task: ShardTask, cfg_dict: dict, out_dir: str, skip_bad: bool) -> dict:
    """Prepare one shard and write it atomically; returns its sidecar."""
    import_tensorflow_quietly()
    from gtzan_tf.data.records import serialize_clip

    cfg = Config.from_dict(cfg_dict)
    out = Path(out_dir)
    versions, skipped = decode_versions(task, cfg, skip_bad)
    all_segments, embeddings = featurise_versions(versions, cfg)

    records, total, total_sq, count, n_segments = [], 0.0, 0.0, 0, 0
    for i, ((clip_id, source_id, genre, label, _), segments) in enumerate(zip(versions, all_segments)):
        n_segments += len(segments)
        if task.split == "train":
            total += float(segments.sum(dtype=np.float64))
            total_sq += float(np.square(segments, dtype=np.float64).sum())
            count += segments.size
        clip_embeddings = {name: vectors[i] for name, vectors in embeddings.items()}
        records.append(serialize_clip(clip_id, source_id, genre, label, segments, clip_embeddings))

    shard = out / f"{task.name}.tfrecord"
    write_tfrecord(shard, records)
    info = {
        "file": shard.name,
        "sha256": sha256_file(shard),
        "split": task.split,
        "clips": len(versions),
        "source_clips": len(task.clips) - len(skipped),
        "segments": n_segments,
        "sum": total,
        "sum_sq": total_sq,
        "count": count,
        "skipped": skipped,
    }
    write_json(out / f"{task.name}.json", info, indent=1)
    return info


def write_tfrecord(path: Path, records: list[bytes]) -> None:
    import tensorflow as tf

    with atomic_path(path) as tmp:
        try:
            with tf.io.TFRecordWriter(str(tmp)) as writer:
                for record in records:
                    writer.write(record)
        except tf.errors.OpError as exc:  # disk full or read-only, in TensorFlow's words
            raise OSError(errno.EIO, exc.message, str(path)) from None
