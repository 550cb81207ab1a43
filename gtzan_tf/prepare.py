"""Precompute features: audio -> (augmented) segments + musicnn embeddings -> sharded TFRecords.

    python -m gtzan_tf.prepare --data DIR --out FEATURES_DIR [--workers N] [--skip-bad]
                               [--num-shards N --shard-index I] [--merge] [--set section.key=value]

Every shard is written to a temporary file and renamed when complete, then a small JSON sidecar
records its checksum and statistics; a shard without a valid sidecar is redone. So an interrupted
run can be re-run, a finished one does no work, and `manifest.json` (written last, when every
shard is done) lists only complete shards. With `--num-shards N --shard-index I`, N machines each
prepare one part of the same plan; the last part to finish (or `--merge`) writes the manifest.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gtzan_tf import import_tensorflow_quietly
from gtzan_tf.config import EMBEDDING_INPUTS, Config
from gtzan_tf.data.index import SPLITS, DatasetIndex, load_index
from gtzan_tf.errors import BadAudioError, UserError, cli
from gtzan_tf.musicnn.params import PARAMS as MUSICNN
from gtzan_tf.utils import atomic_write_bytes

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ShardTask:
    """One unit of work: the clips of one shard of one split."""

    split: str
    number: int
    clips: tuple[tuple[str, str, int, str], ...]  # (clip_id, genre, label, path)

    @property
    def name(self) -> str:
        return f"{self.split}-{self.number:05d}"


def plan_shards(index: DatasetIndex, cfg: Config) -> list[ShardTask]:
    """The deterministic list of shards every worker and machine agrees on."""
    tasks = []
    for split in SPLITS:
        clips = [(c.clip_id, c.genre, index.label(c.genre), str(c.path)) for c in index.split(split)]
        size = cfg.data.clips_per_shard
        for number, start in enumerate(range(0, len(clips), size)):
            tasks.append(ShardTask(split, number, tuple(clips[start : start + size])))
    return tasks


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
    info = json.loads(sidecar.read_text())
    return info if info.get("sha256") == sha256_file(shard) else None


# --------------------------------------------------------------------------- worker side
def _init_worker(threads: int | None) -> None:
    import_tensorflow_quietly()
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.experimental.enable_op_determinism()


def build_shard(task: ShardTask, cfg_dict: dict, out_dir: str, skip_bad: bool) -> dict:
    """Decode, augment and featurise (the model frontend) the clips of one shard; write it atomically."""
    from gtzan_tf.data.audio import load_audio
    from gtzan_tf.data.augment import augmented_copies, build_augmenter
    from gtzan_tf.data.records import serialize_clip
    from gtzan_tf.features.frontend import SEGMENTS, frontend_function

    import_tensorflow_quietly()
    cfg = Config.from_dict(cfg_dict)
    out = Path(out_dir)
    rate = cfg.audio.sample_rate
    augment = task.split in cfg.augment.splits and cfg.augment.copies > 0
    augmenter = build_augmenter(cfg.augment, rate) if augment else None
    frontend = frontend_function(cfg)
    records, skipped = [], []
    total, total_sq, count, n_segments = 0.0, 0.0, 0, 0
    for clip_id, genre, label, path in task.clips:
        try:
            y = load_audio(path, cfg.audio)
        except BadAudioError as exc:
            if not skip_bad:
                raise
            skipped.append({"path": path, "reason": str(exc)})
            continue
        versions = [(clip_id, y)]
        if augment:
            copies = augmented_copies(y, rate, clip_id, cfg.augment, augmenter)
            versions += [(f"{clip_id}.aug{i}", copy) for i, copy in enumerate(copies, 1)]
        for version_id, waveform in versions:
            clip = {name: value.numpy() for name, value in frontend(waveform).items()}
            segments = clip.pop(SEGMENTS)
            n_segments += len(segments)
            if task.split == "train":
                total += float(segments.sum(dtype=np.float64))
                total_sq += float(np.square(segments, dtype=np.float64).sum())
                count += segments.size
            records.append(serialize_clip(version_id, clip_id, genre, label, segments, clip))

    shard = out / f"{task.name}.tfrecord"
    _write_tfrecord_atomic(shard, records)
    info = {
        "file": shard.name,
        "sha256": sha256_file(shard),
        "split": task.split,
        "clips": len(records),
        "source_clips": len(task.clips) - len(skipped),
        "segments": n_segments,
        "sum": total,
        "sum_sq": total_sq,
        "count": count,
        "skipped": skipped,
    }
    atomic_write_bytes(out / f"{task.name}.json", json.dumps(info, indent=1).encode())
    return info


def _write_tfrecord_atomic(path: Path, records: list[bytes]) -> None:
    """TensorFlow's TFRecord writer into a hidden temporary file, fsync, then rename."""
    import tensorflow as tf

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tf.io.TFRecordWriter(str(tmp)) as writer:
        for record in records:
            writer.write(record)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --------------------------------------------------------------------------- driver side
def prepare(
    data_dir: str | Path,
    out_dir: str | Path,
    cfg: Config | None = None,
    *,
    workers: int = 1,
    skip_bad: bool = False,
    split_lists: str = "auto",
    num_shards: int = 1,
    shard_index: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> dict | None:
    """Prepare features into `out_dir`; returns the manifest, or None while other parts are pending."""
    cfg = cfg or Config()
    if not 0 <= shard_index < num_shards:
        raise UserError(f"--shard-index must be in [0, {num_shards}), got {shard_index}")
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    index = load_index(data_dir, cfg.data, split_lists=split_lists, skip_bad=skip_bad)
    _check_audio_headers(index, cfg, skip_bad)
    out = Path(out_dir)
    _claim_output_folder(out, cfg, overwrite)
    tasks = plan_shards(index, cfg)
    plan = {"shards": [t.name for t in tasks], "genres": list(index.genres),
            "skipped": [{"path": p, "reason": r} for p, r in index.skipped]}
    atomic_write_bytes(out / "plan.json", json.dumps(plan, indent=1).encode())
    mine = [t for t in tasks if t.number % num_shards == shard_index] if num_shards > 1 else tasks
    done = {t.name for t in tasks if shard_is_done(out, t)}  # each shard is hashed once per run
    todo = [t for t in mine if t.name not in done]
    if todo:
        _run_tasks(todo, cfg, out, workers, skip_bad, progress)
    elif progress:
        print(f"{out}: all {len(mine)} shards already prepared", file=sys.stderr)
    done.update(t.name for t in todo)
    others_pending = [t for t in tasks if t.name not in done]  # parts other machines may have finished since
    return merge(out) if all(shard_is_done(out, t) for t in others_pending) else None


def _check_audio_headers(index: DatasetIndex, cfg: Config, skip_bad: bool) -> None:
    """Fail on unreadable, empty or too-short files before anything is written."""
    from gtzan_tf.data.audio import probe_audio

    for clip in index.clips:
        try:
            probe_audio(clip.path, cfg.audio)
        except BadAudioError as exc:
            if not skip_bad:
                raise UserError(f"{exc} (pass --skip-bad to continue without it)") from None


def _claim_output_folder(out: Path, cfg: Config, overwrite: bool) -> None:
    config_path = out / "config.json"
    if config_path.is_file():
        previous = Config.load(config_path)
        if previous.feature_fingerprint() != cfg.feature_fingerprint() or previous.data.clips_per_shard != cfg.data.clips_per_shard:
            if not overwrite:
                raise UserError(f"{out} holds features made with another config; use a new --out or pass --overwrite")
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".*.tmp-*"):
        stale.unlink()
    if not config_path.is_file():
        cfg.save(config_path)


def _run_tasks(todo: list[ShardTask], cfg: Config, out: Path, workers: int, skip_bad: bool, progress: bool) -> None:
    bar = tqdm(total=sum(len(t.clips) for t in todo), unit="clip", desc="prepare", disable=not progress)
    cfg_dict = cfg.to_dict()
    try:
        if workers == 1:
            for task in todo:
                build_shard(task, cfg_dict, str(out), skip_bad)
                bar.update(len(task.clips))
            return
        threads = max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(threads,)) as pool:
            futures = {pool.submit(build_shard, t, cfg_dict, str(out), skip_bad): t for t in todo}
            try:
                for future in as_completed(futures):
                    future.result()
                    bar.update(len(futures[future].clips))
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    except BaseException:
        for stale in out.glob(".*.tmp-*"):
            stale.unlink(missing_ok=True)
        raise
    finally:
        bar.close()


def merge(out_dir: str | Path) -> dict:
    """Combine the shard sidecars into `manifest.json` (written atomically, last)."""
    out = Path(out_dir)
    if not (out / "config.json").is_file() or not (out / "plan.json").is_file():
        raise UserError(f"{out} is not a prepare output folder (no config.json / plan.json)")
    cfg = Config.load(out / "config.json")
    plan = json.loads((out / "plan.json").read_text())
    splits: dict[str, dict] = {}
    total = total_sq = count = 0.0
    skipped = list(plan["skipped"])
    for name in plan["shards"]:
        sidecar, shard = out / f"{name}.json", out / f"{name}.tfrecord"
        if not sidecar.is_file() or not shard.is_file():
            raise UserError(f"{out}: shard {name} is not prepared yet; run the remaining --shard-index parts first")
        info = json.loads(sidecar.read_text())
        split = splits.setdefault(info["split"], {"clips": 0, "source_clips": 0, "segments": 0, "shards": []})
        for key in ("clips", "source_clips", "segments"):
            split[key] += info[key]
        split["shards"].append({k: info[k] for k in ("file", "sha256", "clips", "segments")})
        total, total_sq, count = total + info["sum"], total_sq + info["sum_sq"], count + info["count"]
        skipped += info["skipped"]
    if not count:
        raise UserError(f"{out}: no training segments were prepared")
    mean = total / count
    manifest = {
        "format_version": FORMAT_VERSION,
        "fingerprint": cfg.feature_fingerprint(),
        "config": cfg.to_dict(),
        "genres": plan["genres"],
        "segment_shape": list(cfg.features.segment_shape),
        "embeddings": {EMBEDDING_INPUTS[m]: MUSICNN.embedding_size for m in cfg.data.embeddings},
        "normalization": {"mean": mean, "std": float(np.sqrt(max(total_sq / count - mean**2, 1e-12)))},
        "splits": splits,
        "skipped": skipped,
    }
    atomic_write_bytes(out / MANIFEST, json.dumps(manifest, indent=1).encode())
    return manifest


def ensure_prepared(data_dir: str | Path, out_dir: str | Path, cfg: Config, **kwargs) -> dict:
    """The manifest of `out_dir`, preparing the features first if they are missing or stale."""
    manifest_path = Path(out_dir) / MANIFEST
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest["fingerprint"] == cfg.feature_fingerprint():
            return manifest
    return prepare(data_dir, out_dir, cfg, **kwargs)


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="a config.json to start from (defaults: the reference recipe)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a config value")


def config_from_args(args: argparse.Namespace) -> Config:
    cfg = Config.load(args.config) if args.config else Config()
    return cfg.with_overrides(args.set)


@cli
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gtzan_tf.prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="dataset folder in the GTZAN layout")
    parser.add_argument("--out", type=Path, required=True, help="features folder to write")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--skip-bad", action="store_true", help="skip unusable files with a warning")
    parser.add_argument("--split-lists", default="auto", help="auto (DIR/split, else gtzan8) | gtzan8 | gtzan10-filtered")
    parser.add_argument("--num-shards", type=int, default=1, help="split the work into N parts (one per machine)")
    parser.add_argument("--shard-index", type=int, default=0, help="which part this process prepares")
    parser.add_argument("--merge", action="store_true", help="only combine finished parts into the manifest")
    parser.add_argument("--overwrite", action="store_true", help="replace features made with another config")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    if args.merge:
        manifest = merge(args.out)
    else:
        if args.data is None:
            parser.error("--data is required unless --merge")
        manifest = prepare(
            args.data, args.out, config_from_args(args), workers=args.workers, skip_bad=args.skip_bad,
            split_lists=args.split_lists, num_shards=args.num_shards, shard_index=args.shard_index,
            overwrite=args.overwrite,
        )
    if manifest is None:
        print(f"part {args.shard_index} of {args.num_shards} done; the manifest is written when every part is done")
        return
    counts = ", ".join(f"{s}: {v['clips']} clips / {v['segments']} segments" for s, v in manifest["splits"].items())
    print(f"{args.out / MANIFEST}: {counts}; skipped {len(manifest['skipped'])}")


if __name__ == "__main__":
    main()
