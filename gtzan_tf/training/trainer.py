"""Training: features -> tf.data -> a registry model -> callbacks -> best weights and exports.

A run folder holds config.json, history.csv, logs/ (TensorBoard), best.weights.h5 and run.json
(the summary); train.py then exports saved_model/ and serving/ (`gtzan_tf.export`).
With `seeds > 1` every seed gets its own `seed-K/` run folder and run.json reports mean and std.
With `folds > 1` a run (or every seed run) is a cross-validated ensemble (`gtzan_tf.training.folds`).
"""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from gtzan_tf.config import Config
from gtzan_tf.data.folds import Fold
from gtzan_tf.data.pipeline import FeatureSet, count_segments, eval_clip_dataset, load_feature_set, segment_dataset
from gtzan_tf.errors import UserError
from gtzan_tf.models.registry import build_for, get_spec, model_inputs
from gtzan_tf.prepare import MANIFEST, ensure_prepared
from gtzan_tf.utils import write_json
from gtzan_tf.evaluation.metrics import clip_accuracy, predict_clips
from gtzan_tf.training.callbacks import ClipMetrics, FreezeBackbone

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "step")
STRATEGIES = ("auto", "mirrored", "multiworker")
# train.monitor -> (epoch-log key that ModelCheckpoint and EarlyStopping watch, mode); see ClipMetrics.
MONITORS = {"val_clip_loss": ("val_clip_loss", "min"), "val_clip_accuracy": ("val_clip_rank", "max")}
# The multi-worker loop keeps its own rule: the best weights by val_clip_accuracy.
MULTIWORKER_SELECTION = ("val_clip_accuracy", "max")
# Learning-rate reduction on a val_loss plateau (constant schedule only); the multi-worker loop applies the same.
REDUCE_LR_FACTOR = 0.5
REDUCE_LR_MIN_DELTA = 1e-4


def validate(cfg: Config) -> None:
    """One clear line for every bad training setting, before any work is done."""
    t = cfg.train
    get_spec(t.model)
    if t.learning_rate <= 0:
        raise UserError(f"--lr must be positive, got {t.learning_rate}")
    if t.epochs < 1 or t.batch_size < 1 or t.seeds < 1 or t.folds < 1:
        raise UserError("--epochs, --batch-size, --seeds and --folds must be at least 1")
    if t.monitor not in MONITORS:
        raise UserError(f"unknown monitor {t.monitor!r}: choose one of {', '.join(MONITORS)}")
    if t.refit and t.folds < 2:
        raise UserError("--refit trains for the epoch count that cross-validation picked: add --folds K")
    if t.folds > 1 and t.strategy == "multiworker":
        raise UserError("--folds does not combine with --strategy multiworker; train the folds on one machine")
    if t.optimizer not in OPTIMIZERS:
        raise UserError(f"unknown optimizer {t.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
    if t.strategy not in STRATEGIES:
        raise UserError(f"unknown strategy {t.strategy!r}: choose one of {', '.join(STRATEGIES)}")
    if t.schedule not in SCHEDULES:
        raise UserError(f"unknown schedule {t.schedule!r}: choose one of {', '.join(SCHEDULES)}")
    if t.freeze_backbone_epochs and not get_spec(t.model).has_backbone:
        raise UserError(f"--freeze-backbone-epochs needs a model with a backbone (vgg*, resnet*), not {t.model}")
    if not 0 <= t.dropout < 1 or not 0 <= t.label_smoothing < 1 or min(t.l1, t.l2, t.weight_decay) < 0:
        raise UserError("dropout and label smoothing must be in [0, 1); l1, l2 and weight decay non-negative")


def default_features_dir(run_dir: Path, cfg: Config) -> Path:
    """Features are shared by every run with the same feature config: RUN_DIR/../features-<hash>."""
    return run_dir.resolve().parent / f"features-{cfg.feature_fingerprint()}"


def make_strategy(name: str) -> tf.distribute.Strategy:
    """MirroredStrategy over several local GPUs (or when asked), else the default strategy."""
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def make_optimizer(cfg: Config, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    t = cfg.train
    lr: float | keras.optimizers.schedules.LearningRateSchedule = t.learning_rate
    if t.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(t.learning_rate, decay_steps=t.epochs * steps_per_epoch)
    elif t.schedule == "step":
        lr = keras.optimizers.schedules.ExponentialDecay(
            t.learning_rate, decay_steps=max(1, t.epochs // 3) * steps_per_epoch, decay_rate=0.1, staircase=True
        )
    if t.optimizer == "adam":
        return keras.optimizers.Adam(lr)
    if t.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=t.weight_decay)
    if t.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=t.momentum, nesterov=True)
    return keras.optimizers.RMSprop(lr, momentum=t.momentum)


def use_mixed_precision(cfg: Config) -> bool:
    if cfg.train.mixed_precision is not None:
        return cfg.train.mixed_precision
    return bool(tf.config.list_physical_devices("GPU"))


def train(cfg: Config, data_dir: Path, run_dir: Path, features_dir: Path | None = None,
          workers: int = 1, verbose: int = 1) -> dict:
    """Train `cfg.train.seeds` runs; returns the summary written to RUN_DIR/run.json."""
    validate(cfg)
    if cfg.train.strategy == "multiworker":
        from gtzan_tf.training.multiworker import train_multiworker

        return train_multiworker(cfg, data_dir, run_dir, features_dir, workers, verbose)
    if cfg.train.folds > 1:
        from gtzan_tf.training.folds import cross_validation_config, train_folds

        cfg = cross_validation_config(cfg)
    run_dir = Path(run_dir)
    features_dir = Path(features_dir) if features_dir else default_features_dir(run_dir, cfg)
    prepare_features(cfg, Path(data_dir), features_dir, workers)
    fs = load_feature_set(features_dir)
    if use_mixed_precision(cfg):
        keras.mixed_precision.set_global_policy("mixed_float16")
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(run_dir / "config.json")
    train_seed = train_folds if cfg.train.folds > 1 else train_one
    if cfg.train.seeds == 1:
        summary = train_seed(cfg, fs, run_dir, verbose)
    else:
        runs = []
        for k in range(cfg.train.seeds):
            seed_cfg = cfg.replace(train={"seed": cfg.train.seed + k, "seeds": 1})
            runs.append(train_seed(seed_cfg, fs, run_dir / f"seed-{k}", verbose))
        summary = summarize_runs(cfg, fs, runs)
    write_json(run_dir / "run.json", summary)
    return summary


def prepare_features(cfg: Config, data_dir: Path, features_dir: Path, workers: int) -> None:
    """Prepare what `features_dir` lacks from `data_dir` (a missing data folder is fine once it is complete)."""
    if not data_dir.is_dir() and not (features_dir / MANIFEST).is_file():
        raise UserError(f"data folder {data_dir} does not exist; generate a demo set with `python -m gtzan_tf.synth --out {data_dir}`")
    ensure_prepared(data_dir, features_dir, cfg, workers=workers)


def train_one(cfg: Config, fs: FeatureSet, run_dir: Path, verbose: int = 1, fold: Fold | None = None) -> dict:
    """One seeded training run in `run_dir`; resumes from its backup if one is there.

    With a `fold`, it trains on that fold's training clips and validates on its held-out originals.
    """
    t = cfg.train
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(run_dir / "config.json")
    keras.utils.set_random_seed(t.seed)
    inputs = model_inputs(t.model)
    strategy = make_strategy(t.strategy)
    global_batch = t.batch_size * strategy.num_replicas_in_sync
    train_sources, valid_split, valid_sources = (None, "valid", None) if fold is None else (fold.train, "train", fold.valid)
    train_ds = segment_dataset(fs, "train", inputs, global_batch, seed=t.seed, shuffle_buffer=t.shuffle_buffer,
                               sources=train_sources)
    val_ds = segment_dataset(fs, valid_split, inputs, t.eval_batch_size, shuffle=False, sources=valid_sources,
                             originals_only=fold is not None)
    val_clips = eval_clip_dataset(fs, valid_split, inputs, sources=valid_sources)
    steps_per_epoch = int(np.ceil(count_segments(fs, "train", train_sources) / global_batch))
    monitor, mode = MONITORS[t.monitor]
    with strategy.scope():
        model = compile_model(cfg, len(fs.genres), steps_per_epoch)
    callbacks = [
        ClipMetrics(val_clips),
        keras.callbacks.ModelCheckpoint(
            str(run_dir / "best.weights.h5"), monitor=monitor, mode=mode, save_best_only=True, save_weights_only=True,
        ),
        keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=t.early_stopping_patience),
        keras.callbacks.TensorBoard(str(run_dir / "logs")),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
    ]
    if t.schedule == "constant":  # a schedule owns the learning rate; plateau reduction only without one
        callbacks.insert(3, keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=REDUCE_LR_FACTOR, min_delta=REDUCE_LR_MIN_DELTA, patience=t.reduce_lr_patience))
    if t.freeze_backbone_epochs:
        callbacks.insert(0, FreezeBackbone(t.freeze_backbone_epochs))
    model.fit(train_ds, validation_data=val_ds, epochs=t.epochs, callbacks=callbacks, verbose=verbose, shuffle=False)
    model.load_weights(run_dir / "best.weights.h5")
    return finish_run(cfg, fs, model, run_dir, fold)


def compile_model(cfg: Config, n_classes: int, steps_per_epoch: int) -> keras.Model:
    """The registry model of `cfg`, compiled with its optimizer and loss (call under the strategy's scope)."""
    model = build_for(cfg, n_classes)
    model.compile(
        optimizer=make_optimizer(cfg, steps_per_epoch),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.train.label_smoothing),
        metrics=["accuracy"],
        jit_compile=cfg.train.jit,
    )
    return model


def finish_run(cfg: Config, fs: FeatureSet, model: keras.Model, run_dir: Path, fold: Fold | None = None) -> dict:
    """Score the best weights and write run.json (train.py exports the SavedModels)."""
    inputs = model_inputs(cfg.train.model)
    valid = eval_clip_dataset(fs, "valid", inputs) if fold is None else eval_clip_dataset(fs, "train", inputs, fold.valid)
    scores = {
        f"{split}_clip_accuracy": clip_accuracy(*predict_clips(model, clips))
        for split, clips in (("valid", valid), ("test", eval_clip_dataset(fs, "test", inputs)))
    }
    history = _read_history(run_dir / "history.csv")
    monitor, mode = MULTIWORKER_SELECTION if cfg.train.strategy == "multiworker" else MONITORS[cfg.train.monitor]
    best = np.argmin if mode == "min" else np.argmax
    summary = {
        **run_identity(cfg, fs),
        "epochs_run": len(history),
        "best_epoch": int(best([row[monitor] for row in history])) + 1 if history else None,
        **scores,
    }
    if fold is not None:
        summary.update(fold=fold.index, valid_clips=len(fold.valid))
    keras.mixed_precision.set_global_policy("float32")
    write_json(run_dir / "run.json", summary)
    return summary


def run_identity(cfg: Config, fs: FeatureSet) -> dict:
    """What every run.json says about its model and features (load_run and the export read it)."""
    return {
        "model": cfg.train.model,
        "seed": cfg.train.seed,
        "genres": fs.genres,
        "inputs": list(model_inputs(cfg.train.model)),
        "features_dir": str(fs.root.resolve()),
        "normalization": dict(zip(("mean", "std"), fs.normalization)),
    }


def summarize_runs(cfg: Config, fs: FeatureSet, runs: list[dict]) -> dict:
    keys = ("valid_clip_accuracy", "test_clip_accuracy")
    return {
        "model": cfg.train.model,
        "genres": fs.genres,
        "seeds": [r["seed"] for r in runs],
        "runs": [f"seed-{k}" for k in range(len(runs))],
        **{f"{k}_mean": float(np.mean([r[k] for r in runs])) for k in keys},
        **{f"{k}_std": float(np.std([r[k] for r in runs], ddof=1)) for k in keys},
    }


def _read_history(path: Path) -> list[dict]:
    import pandas as pd

    if not path.is_file():
        return []
    frame = pd.read_csv(path)
    return frame.drop_duplicates("epoch", keep="last").to_dict("records")
