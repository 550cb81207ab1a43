"""K-fold cross-validated training: K models, each validated on its own fold, and their ensemble.

The training clips are prepared once, all of them in "train" (no validation hold-out) and
augmented; each fold selects its training and validation clips by source_id in the tf.data
pipeline, so the K folds share one features folder and validate on original clips only.

A run folder holds `folds.json` (source clip -> fold), `fold-0/` ... `fold-{K-1}/` (ordinary
runs) and run.json: the out-of-fold validation accuracy (every training clip scored once, by the
model that did not train on it), the ensemble's test accuracy (mean of the K members'
probabilities) and the per-fold mean and std of both.

With `refit`, `refit/` then holds one model trained on every training clip for the median of the
folds' best epochs (no validation left to choose by); it becomes the run's model, and run.json
keeps the ensemble's test accuracy beside it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import keras
import numpy as np

from gtzan_tf.config import Config
from gtzan_tf.data.folds import assign_folds, make_folds
from gtzan_tf.data.pipeline import FeatureSet, clip_table, eval_clip_dataset, segment_dataset
from gtzan_tf.evaluation.metrics import ClipPredictions, aggregate_clips, predict_clips
from gtzan_tf.models.ensemble import ensemble_model
from gtzan_tf.files import write_json
from gtzan_tf.models.registry import build_for, run_inputs
from gtzan_tf.training.callbacks import FreezeBackbone
from gtzan_tf.training.trainer import compile_model, make_strategy, run_identity, score_test_clips, train_one


def cross_validation_config(cfg: Config) -> Config:
    """The config of a cross-validated run: no validation hold-out, the folds validate instead."""
    return cfg.replace(data={"validation_fraction": 0.0, "validation_per_genre": 0})


def fold_seed(cfg: Config) -> int:
    """Folds are drawn with data.split_seed + train.seed: every seed of --seeds splits differently
    (repeated cross-validation), and one seed always splits the same way."""
    return cfg.data.split_seed + cfg.train.seed


def source_genres(fs: FeatureSet) -> dict[str, str]:
    """source clip id -> genre of every training clip (augmented versions share their source's)."""
    return {row["source_id"]: row["genre"] for row in clip_table(fs, "train")}


def train_folds(cfg: Config, fs: FeatureSet, run_dir: Path, verbose: int = 1,
                on_fold: Callable[[dict], None] | None = None) -> dict:
    """Train the `cfg.train.folds` fold runs of one seed in `run_dir/fold-K` and score their ensemble;
    `on_fold(fold summary)` runs after each fold (a tuner reports it to its pruner there)."""
    k = cfg.train.folds
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(run_dir / "config.json")
    assignment = assign_folds(source_genres(fs), k, fold_seed(cfg))
    write_json(run_dir / "folds.json", assignment)
    runs = []
    for fold in make_folds(assignment, k):  # a rerun keeps the folds that finished
        fold_dir = run_dir / f"fold-{fold.index}"
        finished = fold_dir / "run.json"
        runs.append(json.loads(finished.read_text()) if finished.is_file() else train_one(cfg, fs, fold_dir, verbose, fold))
        if on_fold:
            on_fold(runs[-1])
    members = fold_members(cfg, len(fs.genres), run_dir)
    valid_clips = np.array([r["valid_clips"] for r in runs])
    valid = np.array([r["valid_clip_accuracy"] for r in runs])
    per_fold_test = np.array([r["test_clip_accuracy"] for r in runs])
    summary = {
        **run_identity(cfg, fs),
        "folds": k,
        "members": [f"fold-{i}" for i in range(k)],
        "best_epochs": [r["best_epoch"] for r in runs],
        "valid_clip_accuracy": float(valid @ valid_clips / valid_clips.sum()),
        "valid_clip_loss": float(np.array([r["valid_clip_loss"] for r in runs]) @ valid_clips / valid_clips.sum()),
        "test_clip_accuracy": score_test_clips(ensemble_model(members), fs, run_inputs(cfg)),
        "fold_valid_clip_accuracy_mean": float(valid.mean()),
        "fold_valid_clip_accuracy_std": float(valid.std(ddof=1)),
        "fold_test_clip_accuracy_mean": float(per_fold_test.mean()),
        "fold_test_clip_accuracy_std": float(per_fold_test.std(ddof=1)),
    }
    if cfg.train.refit:
        epochs = max(1, int(np.median(summary["best_epochs"])))
        refit = train_refit(cfg.replace(train={"epochs": epochs}), fs, run_dir / "refit", verbose)
        summary.update(refit="refit", refit_epochs=epochs, ensemble_test_clip_accuracy=summary["test_clip_accuracy"],
                       test_clip_accuracy=refit["test_clip_accuracy"])
    write_json(run_dir / "run.json", summary)
    return summary


def train_refit(cfg: Config, fs: FeatureSet, run_dir: Path, verbose: int = 1) -> dict:
    """One model on all training clips for `cfg.train.epochs` epochs, keeping the last weights."""
    t = cfg.train
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(run_dir / "config.json")
    keras.utils.set_random_seed(t.seed)
    inputs = run_inputs(cfg)
    strategy = make_strategy(t.strategy)
    global_batch = t.batch_size * strategy.num_replicas_in_sync
    train_ds = segment_dataset(fs, "train", inputs, global_batch, seed=t.seed, shuffle_buffer=t.shuffle_buffer)
    with strategy.scope():
        model = compile_model(cfg, len(fs.genres), int(np.ceil(fs.count("train") / global_batch)))
    callbacks = [keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
                 keras.callbacks.BackupAndRestore(str(run_dir / "backup"))]
    if t.freeze_backbone_epochs:
        callbacks.insert(0, FreezeBackbone(t.freeze_backbone_epochs, t.finetune_lr_factor))
    model.fit(train_ds, epochs=t.epochs, callbacks=callbacks, verbose=verbose, shuffle=False)
    model.save_weights(run_dir / "best.weights.h5")
    summary = {
        **run_identity(cfg, fs),
        "epochs_run": t.epochs,
        "test_clip_accuracy": score_test_clips(model, fs, inputs),
    }
    write_json(run_dir / "run.json", summary)
    return summary


def fold_members(cfg: Config, n_classes: int, run_dir: Path) -> list[keras.Model]:
    """The K fold models of a cross-validated run folder, each with its best weights."""
    members = []
    for i in range(cfg.train.folds):
        member = build_for(cfg, n_classes, init="scratch")
        member.load_weights(run_dir / f"fold-{i}" / "best.weights.h5")
        members.append(member)
    return members


def out_of_fold_predictions(fs: FeatureSet, run_dir: Path) -> ClipPredictions:
    """Every training clip of a cross-validated run folder scored once, by the fold model that did
    not train on it (the original clips, sorted by clip id): the clip-level out-of-fold predictions
    behind run.json's valid_clip_accuracy."""
    cfg = Config.load(run_dir / "config.json")
    folds = make_folds(json.loads((run_dir / "folds.json").read_text()), cfg.train.folds)
    parts = []
    for member, fold in zip(fold_members(cfg, len(fs.genres), run_dir), folds):
        if fold.valid:
            probs, labels, clip_ids = predict_clips(member, eval_clip_dataset(fs, "train", run_inputs(cfg), fold.valid))
            parts.append(aggregate_clips(probs, clip_ids, labels))
    ids = np.concatenate([p.clip_ids for p in parts])
    order = np.argsort(ids)
    return ClipPredictions(clip_ids=ids[order], labels=np.concatenate([p.labels for p in parts])[order],
                           mean_probs=np.concatenate([p.mean_probs for p in parts])[order],
                           vote=np.concatenate([p.vote for p in parts])[order])
