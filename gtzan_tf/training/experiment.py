"""One train.py run: its seeds, each a single model or K folds and their ensemble, in one run folder.

With `seeds > 1` every seed gets its own `seed-K/` run folder and run.json reports mean and std.
With `folds > 1` a run (or every seed run) is a cross-validated ensemble (`training.folds`).
"""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Callable

import keras
import numpy as np

from gtzan_tf.config import Config
from gtzan_tf.data.pipeline import FeatureSet
from gtzan_tf.errors import UserError
from gtzan_tf.files import write_json
from gtzan_tf.training.folds import cross_validation_config, train_folds
from gtzan_tf.training.trainer import (
    check_run_folder, locate_features, owned_run_folder, prepare_features, train_one, use_mixed_precision, validate,
)


def train(cfg: Config, data_dir: Path, run_dir: Path, features_dir: Path | None = None,
          workers: int = 1, verbose: int = 1, skip_bad: bool = False,
          finish: Callable[[Path], object] | None = None, on_fold: Callable[[dict], None] | None = None) -> dict:
    """Train `cfg.train.seeds` runs; returns the summary written to RUN_DIR/run.json (`on_fold`: see
    `train_folds`).

    The run folder is locked for the whole run; `finish(run_dir)` (train.py: the export) runs
    last, then finished.json. Rerun on an interrupted run, it resumes the training, or, when only
    `finish` was cut short, runs that alone.
    """
    validate(cfg)
    if cfg.train.strategy == "multiworker":
        raise UserError("model.fit does not run under MultiWorkerMirroredStrategy (keras-team/keras#20585): "
                        "train with gtzan_tf.training.multiworker.train_multiworker, as train.py does")
    if cfg.train.folds > 1:
        cfg = cross_validation_config(cfg)
    run_dir = Path(run_dir)
    check_run_folder(run_dir, cfg)
    features_dir, index = locate_features(cfg, Path(data_dir), run_dir, features_dir and Path(features_dir), skip_bad)
    fs = prepare_features(cfg, index, features_dir, workers, skip_bad)
    with owned_run_folder(run_dir, finish, cfg):
        trained = run_dir / "run.json"
        if trained.is_file():  # an earlier call trained it and was stopped before `finish` was done
            return json.loads(trained.read_text())
        cfg.save(run_dir / "config.json")
        # One policy for every seed and fold of the run; float32 again afterwards (export, evaluation).
        keras.mixed_precision.set_global_policy("mixed_float16" if use_mixed_precision(cfg) else "float32")
        try:
            summary = train_seeds(cfg, fs, run_dir, verbose, on_fold)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        write_json(run_dir / "run.json", summary)
    return summary


def train_seeds(cfg: Config, fs: FeatureSet, run_dir: Path, verbose: int,
                on_fold: Callable[[dict], None] | None = None) -> dict:
    """`cfg.train.seeds` runs (each cross-validated with --folds), in seed-k/ when there are several."""
    train_seed = partial(train_folds, on_fold=on_fold) if cfg.train.folds > 1 else train_one
    if cfg.train.seeds == 1:
        return train_seed(cfg, fs, run_dir, verbose)
    runs = []
    for k in range(cfg.train.seeds):
        seed_cfg = cfg.replace(train={"seed": cfg.train.seed + k, "seeds": 1})
        seed_dir = run_dir / f"seed-{k}"
        finished = seed_dir / "run.json"
        runs.append(json.loads(finished.read_text()) if finished.is_file() else train_seed(seed_cfg, fs, seed_dir, verbose))
    return summarize_runs(cfg, fs, runs)


def summarize_runs(cfg: Config, fs: FeatureSet, runs: list[dict]) -> dict:
    keys = ("valid_clip_accuracy", "valid_clip_loss", "test_clip_accuracy")
    return {
        "model": cfg.train.model,
        "genres": fs.genres,
        "seeds": [r["seed"] for r in runs],
        "runs": [f"seed-{k}" for k in range(len(runs))],
        **{f"{k}_mean": float(np.mean([r[k] for r in runs])) for k in keys},
        **{f"{k}_std": float(np.std([r[k] for r in runs], ddof=1)) for k in keys},
    }
