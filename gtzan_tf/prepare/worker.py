"""One shard: decode and augment its clips, run the model frontend on each, then write the TFRecord and its sidecar.

The sidecar (`<shard>.json`) records the shard's checksum and statistics; a shard without a
valid sidecar is redone, so an interrupted run can be rerun.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from gtzan_tf import import_tensorflow_quietly
from gtzan_tf.config import SEGMENTS, Config
from gtzan_tf.errors import BadAudioError, tensorflow_io_errors
from gtzan_tf.files import atomic_path, sha256_file, write_json
from gtzan_tf.prepare.plan import ShardTask

# (clip_id, source_id, genre, label, waveform) of one clip version (the original or an augmented copy)
Version = tuple[str, str, str, int, np.ndarray]


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


def clip_versions(clip: tuple[str, str, int, str], cfg: Config, augmenter) -> list[Version]:
    """One clip decoded, followed by its augmented copies when `augmenter` is given (BadAudioError
    for a file that is not usable audio)."""
    from gtzan_tf.data.audio import load_audio
    from gtzan_tf.data.augment import augmented_copies

    clip_id, genre, label, path = clip
    y = load_audio(path, cfg.audio)
    versions = [(clip_id, clip_id, genre, label, y)]
    if augmenter is not None:
        for i, copy in enumerate(augmented_copies(y, cfg.audio.sample_rate, clip_id, cfg.augment, augmenter), 1):
            versions.append((f"{clip_id}.aug{i}", clip_id, genre, label, copy))
    return versions


def featurise_shard(task: ShardTask, cfg: Config, skip_bad: bool) -> tuple[list[tuple], list[dict], list[dict]]:
    """(clip_id, source_id, genre, label) of every clip version of the shard (the original, then
    its augmented copies), the model frontend's outputs for each, and the files skipped. One thread decodes and augments the next
    clips while the frontend (TensorFlow, which releases the GIL) runs on the current one."""
    from gtzan_tf.data.augment import build_augmenter
    from gtzan_tf.features.frontend import frontend_function

    augment = task.split in cfg.augment.splits and cfg.augment.copies > 0
    augmenter = build_augmenter(cfg.augment, cfg.audio.sample_rate) if augment else None
    frontend = frontend_function(cfg)
    versions, outputs, skipped = [], [], []
    with ThreadPoolExecutor(1, thread_name_prefix="decode") as decoder:
        pending = [decoder.submit(clip_versions, clip, cfg, augmenter) for clip in task.clips]
        for clip, future in zip(task.clips, pending):
            try:
                decoded = future.result()
            except BadAudioError as exc:
                if not skip_bad:
                    for later in pending:
                        later.cancel()
                    raise
                skipped.append({"path": clip[3], "reason": str(exc)})
                continue
            for version in decoded:
                outputs.append({name: value.numpy() for name, value in frontend(version[4]).items()})
                versions.append(version[:4])
    return versions, outputs, skipped


def build_shard(task: ShardTask, cfg_dict: dict, out_dir: str, skip_bad: bool) -> dict:
    """Prepare one shard and write it atomically; returns its sidecar."""
    import_tensorflow_quietly()
    from gtzan_tf.data.records import serialize_clip

    cfg = Config.from_dict(cfg_dict)
    out = Path(out_dir)
    versions, outputs, skipped = featurise_shard(task, cfg, skip_bad)
    all_segments = [clip.pop(SEGMENTS) for clip in outputs]
    embeddings = {name: np.stack([clip[name] for clip in outputs]) for name in outputs[0]} if outputs else {}

    records, total, total_sq, count, n_segments = [], 0.0, 0.0, 0, 0
    for i, ((clip_id, source_id, genre, label), segments) in enumerate(zip(versions, all_segments)):
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

    with atomic_path(path) as tmp, tensorflow_io_errors(path):
        with tf.io.TFRecordWriter(str(tmp)) as writer:
            for record in records:
                writer.write(record)
