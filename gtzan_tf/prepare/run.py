"""The driver: plan the shards, claim the output folder, run the workers, merge the manifest."""
from __future__ import annotations

import json
import os
import re
import shutil
import warnings
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gtzan_tf.config import EMBEDDING_INPUTS, Config
from gtzan_tf.data.index import DatasetIndex, load_index
from gtzan_tf.data.manifest import MANIFEST, read_manifest, write_manifest
from gtzan_tf.errors import BadAudioError, UserError
from gtzan_tf.files import claim_folder, clear_owned, remove_temporaries, write_json
from gtzan_tf.musicnn.params import PARAMS as MUSICNN
from gtzan_tf.prepare.plan import ShardTask, plan_shards
from gtzan_tf.prepare.worker import build_shard, init_worker, shard_is_done

PREPARE_FILES = ("config.json", "plan.json", MANIFEST)
SHARD_FILE = re.compile(r"(train|valid|test)-\d{5}\.(tfrecord|json)")


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
    existed = out.exists()
    fresh = not existed or out.is_dir() and not any(out.iterdir())
    claimed = False
    try:
        _claim_output_folder(out, cfg, overwrite)
        claimed = True
        tasks = plan_shards(index, cfg)
        plan = {"shards": [t.name for t in tasks], "genres": list(index.genres),
                "skipped": [{"path": p, "reason": r} for p, r in index.skipped]}
        write_json(out / "plan.json", plan, indent=1)
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
    except (UserError, OSError):
        if fresh and out.is_dir():  # a refused first run leaves the folder as it was; a resumed one keeps its finished shards
            shutil.rmtree(out, ignore_errors=True)
            if existed:
                out.mkdir()
        elif claimed:
            remove_temporaries(out)
        raise


def _check_audio_headers(index: DatasetIndex, cfg: Config, skip_bad: bool) -> None:
    """Fail on unreadable, empty or too-short files before anything is written."""
    from gtzan_tf.data.audio import probe_audio

    for clip in index.clips:
        try:
            probe_audio(clip.path, cfg.audio)
        except BadAudioError as exc:
            if not skip_bad:
                raise UserError(f"{exc} (pass --skip-bad to continue without it)") from None


def is_prepare_output(path: Path) -> bool:
    """Whether `path` in a features folder is a file prepare writes (what --overwrite may delete)."""
    return path.is_file() and (path.name in PREPARE_FILES or SHARD_FILE.fullmatch(path.name) is not None)


def _claim_output_folder(out: Path, cfg: Config, overwrite: bool) -> None:
    """Use `out` if it is new, empty or a features folder prepare made; with another config, only --overwrite
    clears it, and then only of the files prepare wrote."""
    config_path = out / "config.json"
    if claim_folder(out, "features", "--out") and config_path.is_file():
        previous = Config.load(config_path)
        if previous.feature_fingerprint() != cfg.feature_fingerprint() or previous.data.clips_per_shard != cfg.data.clips_per_shard:
            if not overwrite:
                raise UserError(f"{out} holds features made with another config; use a new --out or pass --overwrite")
            clear_owned(out, is_prepare_output)
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
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=init_worker, initargs=(threads,)) as pool:
            futures = {pool.submit(build_shard, t, cfg_dict, str(out), skip_bad): t for t in todo}
            try:
                for future in as_completed(futures):
                    future.result()
                    bar.update(len(futures[future].clips))
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    except BaseException:
        remove_temporaries(out)
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
        for entry in info["skipped"]:
            warnings.warn(f"skipped {entry['reason']}", stacklevel=2)
    if not count:
        raise UserError(f"{out}: no training segments were prepared")
    mean = total / count
    std = float(np.sqrt(max(total_sq / count - mean**2, 1e-12)))
    embeddings = {EMBEDDING_INPUTS[m]: MUSICNN.embedding_size for m in cfg.data.embeddings}
    return write_manifest(out, cfg, plan["genres"], embeddings, splits, (mean, std), skipped)


def ensure_prepared(data_dir: str | Path, out_dir: str | Path, cfg: Config, **kwargs) -> dict:
    """The manifest of `out_dir`, preparing the features first if they are missing or stale."""
    fs = read_manifest(out_dir)
    if fs is not None and fs.fingerprint == cfg.feature_fingerprint():
        return fs.manifest
    return prepare(data_dir, out_dir, cfg, **kwargs)
