"""The driver: plan the shards, claim the output folder, build the shards (local processes or Ray), merge the manifest."""
from __future__ import annotations

import hashlib
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
from gtzan_tf.data.manifest import MANIFEST, FeatureSet, read_manifest, write_manifest
from gtzan_tf.errors import BadAudioError, UserError
from gtzan_tf.files import clear_owned, owned_folder, remove_temporaries, write_json
from gtzan_tf.musicnn.params import PARAMS as MUSICNN
from gtzan_tf.prepare.plan import ShardTask, plan_shards
from gtzan_tf.prepare.ray_runner import RayOptions, build_shards_on_ray
from gtzan_tf.prepare.worker import build_shard, init_worker, shard_is_done

PREPARE_FILES = ("config.json", "plan.json", MANIFEST)
RUNNERS = ("local", "ray")
SHARD_FILE = re.compile(r"(train|valid|test)-\d{5}\.(tfrecord|json)")


def prepare(
    data_dir: str | Path,
    out_dir: str | Path,
    cfg: Config | None = None,
    *,
    workers: int = 1,
    skip_bad: bool = False,
    split_lists: str = "auto",
    runner: str = "local",
    ray_options: RayOptions | None = None,
    overwrite: bool = False,
    progress: bool = True,
    index: DatasetIndex | None = None,
) -> dict:
    """Prepare features into `out_dir`; returns the manifest.

    `runner` "local" builds the shards in `workers` processes of this machine, "ray" in `workers`
    Ray actors (`ray_options`: the cluster to join and each actor's resources; gtzan_tf.prepare.ray_runner).
    `index`, when the caller has read the dataset already, stands for `data_dir` and `split_lists`.
    """
    cfg = cfg or Config()
    if runner not in RUNNERS:
        raise UserError(f"--runner must be one of {', '.join(RUNNERS)}, got {runner!r}")
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    index = index or load_index(data_dir, cfg.data, split_lists=split_lists, skip_bad=skip_bad)
    _check_audio_headers(index, cfg, skip_bad)
    data = data_identity(index)
    out = Path(out_dir)
    existed = out.is_dir()
    with owned_folder(out, "features", "--out") as ours:
        try:
            _check_previous_output(out, cfg, data, overwrite)
            tasks = plan_shards(index, cfg)
            plan = {"data": data, "shards": [t.name for t in tasks], "genres": list(index.genres),
                    "skipped": [{"path": p, "reason": r} for p, r in index.skipped]}
            write_json(out / "plan.json", plan, indent=1)
            todo = [t for t in tasks if not shard_is_done(out, t)]
            if todo:
                _run_tasks(todo, cfg, out, workers, skip_bad, progress, runner, ray_options or RayOptions())
            elif progress:
                print(f"{out}: all {len(tasks)} shards already prepared", file=sys.stderr)
            return merge(out)
        except (UserError, OSError):
            if not ours:  # a refused first run leaves the folder as it was; a resumed one keeps its shards
                shutil.rmtree(out, ignore_errors=True)
                if existed:
                    out.mkdir()
            else:
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


def default_features_dir(parent: Path, cfg: Config, index: DatasetIndex) -> Path:
    """PARENT/features-<hash of the feature config and of the data's identity>: one folder per
    dataset (and version of it) and feature config."""
    key = hashlib.sha256(f"{cfg.feature_fingerprint()}:{index.fingerprint()}".encode()).hexdigest()[:16]
    return Path(parent) / f"features-{key}"


def data_identity(index: DatasetIndex) -> dict:
    """What the manifest records of the data: its fingerprint and folder."""
    return {"fingerprint": index.fingerprint(), "root": str(index.root.resolve())}


def _check_previous_output(out: Path, cfg: Config, data: dict, overwrite: bool) -> None:
    """Go on in a features folder made with this config from this data; one made with another config or
    from other data only --overwrite clears, and then only of the files prepare wrote."""
    config_path, plan_path = out / "config.json", out / "plan.json"
    if config_path.is_file():
        previous = Config.load(config_path)
        other_config = (previous.feature_fingerprint() != cfg.feature_fingerprint()
                        or previous.data.clips_per_shard != cfg.data.clips_per_shard)
        previous_data = _read_json(plan_path).get("data", {}) if plan_path.is_file() else data
        if other_config or previous_data.get("fingerprint") != data["fingerprint"]:
            if not overwrite:
                made = "with another config" if other_config else f"from other data ({previous_data.get('root', 'unknown')})"
                raise UserError(f"{out} holds features made {made}; use a new --out or pass --overwrite")
            clear_owned(out, is_prepare_output)
    if not config_path.is_file():
        cfg.save(config_path)


def _run_tasks(todo: list[ShardTask], cfg: Config, out: Path, workers: int, skip_bad: bool, progress: bool,
               runner: str, ray_options: RayOptions) -> None:
    bar = tqdm(total=sum(len(t.clips) for t in todo), unit="clip", desc="prepare", disable=not progress)
    cfg_dict = cfg.to_dict()
    try:
        if runner == "ray":
            for task in build_shards_on_ray(todo, cfg_dict, out, workers, skip_bad, ray_options):
                bar.update(len(task.clips))
            return
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
            raise UserError(f"{out}: shard {name} is not prepared yet; run prepare again to finish it")
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
    return write_manifest(out, cfg, plan["data"], plan["genres"], embeddings, splits, (mean, std), skipped)


def _read_json(path: Path) -> dict:
    try:
        found = json.loads(path.read_text())
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def ensure_prepared(index: DatasetIndex, out_dir: str | Path, cfg: Config, **kwargs) -> FeatureSet:
    """The verified features of the data `index` in `out_dir`, prepared first if they are missing
    or were made with another config; features of other data are refused."""
    fs = read_manifest(out_dir)
    if fs is None or fs.fingerprint != cfg.feature_fingerprint():
        prepare(index.root, out_dir, cfg, index=index, **kwargs)
        fs = read_manifest(out_dir)
    fs.check_data(index.fingerprint(), index.root)
    fs.verify()
    return fs
