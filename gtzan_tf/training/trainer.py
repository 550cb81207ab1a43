"""Training: features -> tf.data -> a registry model -> callbacks -> best weights and exports.

A run folder holds config.json, history.csv, logs/ (TensorBoard), best.weights.h5 and run.json
(the summary); train.py then exports saved_model/ and serving/ (`gtzan_tf.export`).
With `seeds > 1` every seed gets its own `seed-K/` run folder and run.json reports mean and std.
"""
from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from gtzan_tf.config import Config
from gtzan_tf.data.pipeline import FeatureSet, eval_clip_dataset, load_feature_set, segment_dataset, training_batches
from gtzan_tf.errors import UserError
from gtzan_tf.files import claim_folder, owner_kind
from gtzan_tf.models.registry import build_for, get_spec, run_inputs, segment_kind
from gtzan_tf.prepare import MANIFEST, ensure_prepared
from gtzan_tf.files import write_json
from gtzan_tf.evaluation.metrics import clip_accuracy, predict_clips
from gtzan_tf.training.callbacks import BACKUP, check_finite_loss, make_callbacks
from gtzan_tf.training.resume import keep_history, resume_epoch

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "step")
STRATEGIES = ("auto", "mirrored", "multiworker")


def validate(cfg: Config) -> None:
    """One clear line for a model or option name the registry does not know (Config checks every range)."""
    t = cfg.train
    get_spec(t.model)
    if t.optimizer not in OPTIMIZERS:
        raise UserError(f"unknown optimizer {t.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
    if t.strategy not in STRATEGIES:
        raise UserError(f"unknown strategy {t.strategy!r}: choose one of {', '.join(STRATEGIES)}")
    if t.schedule not in SCHEDULES:
        raise UserError(f"unknown schedule {t.schedule!r}: choose one of {', '.join(SCHEDULES)}")
    spec = get_spec(t.model)
    if t.freeze_backbone_epochs and not spec.has_backbone:
        raise UserError(f"--freeze-backbone-epochs needs a model with a backbone (vgg*, resnet*, musicnn*), not {t.model}")
    segment_kind(t.model, cfg.features.kind)
    if t.finetune_lr_factor != 1 and (not t.freeze_backbone_epochs or t.schedule != "constant"):
        raise UserError("--finetune-lr-factor needs --freeze-backbone-epochs and the constant schedule")
    if t.strategy == "multiworker" and (t.mixup_alpha or t.finetune_lr_factor != 1):
        raise UserError("--mixup and --finetune-lr-factor are not supported with --strategy multiworker")


def default_features_dir(run_dir: Path, cfg: Config) -> Path:
    """Features are shared by every run with the same feature config: RUN_DIR/../features-<hash>."""
    return run_dir.resolve().parent / f"features-{cfg.feature_fingerprint()}"


def make_strategy(name: str) -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy from TF_CONFIG when asked; MirroredStrategy over several local GPUs
    (or when asked); else the default strategy."""
    if name == "multiworker":  # before anything else touches the TensorFlow runtime, as TensorFlow requires
        return tf.distribute.MultiWorkerMirroredStrategy()
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
          workers: int = 1, verbose: int = 1, skip_bad: bool = False) -> dict:
    """Train `cfg.train.seeds` runs; returns the summary written to RUN_DIR/run.json."""
    validate(cfg)
    if cfg.train.strategy == "multiworker":
        raise UserError("model.fit does not run under MultiWorkerMirroredStrategy (keras-team/keras#20585): "
                        "train with gtzan_tf.training.multiworker.train_multiworker, as train.py does")
    run_dir = Path(run_dir)
    check_run_folder(run_dir)
    features_dir = Path(features_dir) if features_dir else default_features_dir(run_dir, cfg)
    prepare_features(cfg, Path(data_dir), features_dir, workers, skip_bad)
    fs = load_feature_set(features_dir)
    if use_mixed_precision(cfg):
        keras.mixed_precision.set_global_policy("mixed_float16")
    claim_run_folder(run_dir)
    cfg.save(run_dir / "config.json")
    if cfg.train.seeds == 1:
        summary = train_one(cfg, fs, run_dir, verbose)
    else:
        runs = []
        for k in range(cfg.train.seeds):
            seed_cfg = cfg.replace(train={"seed": cfg.train.seed + k, "seeds": 1})
            seed_dir = run_dir / f"seed-{k}"
            finished = seed_dir / "run.json"
            runs.append(json.loads(finished.read_text()) if finished.is_file() else train_one(seed_cfg, fs, seed_dir, verbose))
        summary = summarize_runs(cfg, fs, runs)
    write_json(run_dir / "run.json", summary)
    return summary


def check_run_folder(run_dir: Path) -> None:
    """Refuse, before any work, an --out that is a file, someone else's folder, or a finished run."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{run_dir} is a file, not a folder; choose a folder for --out")
    if not run_dir.is_dir() or not any(run_dir.iterdir()):
        return
    if owner_kind(run_dir) != "run":
        raise UserError(f"{run_dir} is not empty and is not a train.py run folder; choose a new or empty folder for --out")
    if (run_dir / "run.json").is_file():
        raise UserError(f"{run_dir} holds a finished run; choose a new --out, or delete it to train it again")
    resume_epoch(run_dir / "backup")


def claim_run_folder(run_dir: Path) -> None:
    check_run_folder(run_dir)
    claim_folder(run_dir, "run", "--out")


def prepare_features(cfg: Config, data_dir: Path, features_dir: Path, workers: int, skip_bad: bool = False) -> None:
    """Prepare what `features_dir` lacks from `data_dir` (a missing data folder is fine once it is complete)."""
    if not data_dir.is_dir() and not (features_dir / MANIFEST).is_file():
        raise UserError(f"data folder {data_dir} does not exist; generate a demo set with `python -m gtzan_tf.synth --out {data_dir}`")
    ensure_prepared(data_dir, features_dir, cfg, workers=workers, skip_bad=skip_bad)


def train_one(cfg: Config, fs: FeatureSet, run_dir: Path, verbose: int = 1) -> dict:
    """One seeded training run in `run_dir`; resumes from its backup if one is there."""
    t = cfg.train
    claim_run_folder(run_dir)
    cfg.save(run_dir / "config.json")
    first_epoch = resume_epoch(run_dir / BACKUP)
    keep_history(run_dir / "history.csv", first_epoch)
    keras.utils.set_random_seed(t.seed)
    inputs = run_inputs(cfg)
    strategy = make_strategy(t.strategy)
    global_batch = t.batch_size * strategy.num_replicas_in_sync
    train_ds = training_batches(fs, inputs, global_batch, seed=t.seed, epochs=range(first_epoch, t.epochs),
                                shuffle_buffer=t.shuffle_buffer, mixup_alpha=t.mixup_alpha)
    val_ds = segment_dataset(fs, "valid", inputs, t.eval_batch_size, shuffle=False)
    val_clips = eval_clip_dataset(fs, "valid", inputs)
    steps_per_epoch = int(np.ceil(fs.count("train") / global_batch))
    with strategy.scope():
        model = build_for(cfg, len(fs.genres))
        model.compile(
            optimizer=make_optimizer(cfg, steps_per_epoch),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=t.label_smoothing),
            metrics=["accuracy"],
            jit_compile=t.jit,
        )
    callbacks = make_callbacks(cfg, run_dir, val_clips, first_epoch)
    history = model.fit(train_ds, validation_data=val_ds, epochs=t.epochs, initial_epoch=first_epoch,
                        steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=verbose)
    check_finite_loss(history.history.get("loss", []), run_dir, first_epoch)
    model.load_weights(run_dir / "best.weights.h5")
    return finish_run(cfg, fs, model, run_dir)


def finish_run(cfg: Config, fs: FeatureSet, model: keras.Model, run_dir: Path) -> dict:
    """Score the best weights and write run.json (train.py exports the SavedModels)."""
    inputs = run_inputs(cfg)
    scores = {
        f"{split}_clip_accuracy": clip_accuracy(*predict_clips(model, eval_clip_dataset(fs, split, inputs)))
        for split in ("valid", "test")
    }
    history = _read_history(run_dir / "history.csv")
    summary = {
        "model": cfg.train.model,
        "seed": cfg.train.seed,
        "genres": fs.genres,
        "inputs": list(inputs),
        "features_dir": str(fs.root.resolve()),
        "normalization": dict(zip(("mean", "std"), fs.normalization)),
        "epochs_run": len(history),
        "best_epoch": int(np.argmax([row["val_clip_accuracy"] for row in history])) + 1 if history else None,
        **scores,
    }
    keras.mixed_precision.set_global_policy("float32")
    write_json(run_dir / "run.json", summary)
    return summary


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
