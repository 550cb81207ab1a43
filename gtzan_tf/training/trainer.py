"""Training one model: features -> tf.data -> a registry model -> callbacks -> best weights.

A run folder holds config.json, history.csv, logs/ (TensorBoard), best.weights.h5 and run.json
(the summary); train.py then exports saved_model/ and serving/ (`gtzan_tf.export`).
`training.experiment.train` runs the seeds and folds of one train.py call on top of this.
"""
from __future__ import annotations

import contextlib
import datetime
import json
from pathlib import Path
from typing import Callable, Iterator

import keras
import numpy as np
import tensorflow as tf

from gtzan_tf.config import EMBEDDING_INPUTS, SEGMENTS, Config
from gtzan_tf.data.folds import Fold
from gtzan_tf.data.index import DatasetIndex, load_index
from gtzan_tf.data.pipeline import (
    FeatureSet, count_segments, eval_clip_dataset, load_feature_set, segment_dataset, training_batches,
)
from gtzan_tf.errors import UserError
from gtzan_tf.files import claim_folder, owned_folder, owner_kind, write_json
from gtzan_tf.models.registry import build_for, get_spec, run_inputs, segment_kind
from gtzan_tf.prepare import MANIFEST, default_features_dir, ensure_prepared
from gtzan_tf.evaluation.metrics import clip_accuracy, clip_scores, predict_clips
from gtzan_tf.models.fusion import embedding_branch_model
from gtzan_tf.training.callbacks import BACKUP, MONITORS, check_finite_loss, make_callbacks
from gtzan_tf.training.resume import keep_history, resume_epoch

FINISHED = "finished.json"  # written last: the run, its export included, is complete
EMBEDDING_HISTORY = "embedding_history.csv"  # the embedding-branch stage of --embedding-epochs
EMBEDDING_STAGE = "embedding_stage.json"  # its validation score, the bar the later epochs had to beat
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "step")
STRATEGIES = ("auto", "mirrored", "multiworker")


def validate(cfg: Config) -> None:
    """One clear line for a model or option name the registry does not know (Config checks every range)."""
    t = cfg.train
    get_spec(t.model)
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
    spec = get_spec(t.model)
    if t.freeze_backbone_epochs and not spec.has_backbone:
        raise UserError(f"--freeze-backbone-epochs needs a model with a backbone (vgg*, resnet*, musicnn*), not {t.model}")
    segment_kind(t.model, cfg.features.kind)
    if t.finetune_lr_factor != 1 and (not t.freeze_backbone_epochs or t.schedule != "constant"):
        raise UserError("--finetune-lr-factor needs --freeze-backbone-epochs and the constant schedule")
    if t.strategy == "multiworker" and (t.mixup_alpha or t.finetune_lr_factor != 1 or t.embedding_epochs):
        raise UserError("--mixup, --finetune-lr-factor and --embedding-epochs are not supported with --strategy multiworker")
    if t.embedding_epochs and (t.fusion != "gated" or EMBEDDING_INPUTS["MSD_musicnn"] not in spec.inputs
                               or SEGMENTS not in spec.inputs):
        raise UserError(f"--embedding-epochs needs a two-branch model (cnn2d_msd, resnet34_msd, musicnn_msd_fusion) "
                        f"with --fusion gated, not {t.model} with --fusion {t.fusion}")
    if t.embedding_epochs and t.refit:
        raise UserError("--refit does not run the --embedding-epochs stage: use the fold ensemble (drop --refit)")


def locate_features(cfg: Config, data_dir: Path, run_dir: Path, features_dir: Path | None,
                    skip_bad: bool = False) -> tuple[Path, DatasetIndex | None]:
    """(the features folder of a run on `data_dir`, the data's index): by default RUN_DIR/../features-<hash>,
    shared by the runs on the same data with the same feature config. Without the data, an explicit
    `features_dir` that is complete is used as it is (index None)."""
    if features_dir is not None and not data_dir.is_dir() and (features_dir / MANIFEST).is_file():
        return features_dir, None
    index = load_index(data_dir, cfg.data, skip_bad=skip_bad)
    return features_dir or default_features_dir(run_dir.resolve().parent, cfg, index), index


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


def check_run_folder(run_dir: Path, cfg: Config | None = None) -> None:
    """Refuse, before any work, an --out that is a file, someone else's folder, a finished run, or
    (given the run's `cfg`) an interrupted run started with another config."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{run_dir} is a file, not a folder; choose a folder for --out")
    if not run_dir.is_dir() or not any(run_dir.iterdir()):
        return
    if owner_kind(run_dir) != "run":
        raise UserError(f"{run_dir} is not empty and is not a train.py run folder; choose a new or empty folder for --out")
    if (run_dir / FINISHED).is_file():
        raise UserError(f"{run_dir} holds a finished run; choose a new --out, or delete it to train it again")
    if cfg is not None:
        check_same_config(run_dir, cfg)


def check_same_config(run_dir: Path, cfg: Config) -> None:
    """A run folder that holds a config.json continues only with that config: resuming it with
    another would mix two recipes' epochs, checkpoints and scores in one run."""
    saved = run_dir / "config.json"
    if not saved.is_file():
        return
    before, now = Config.load(saved).to_dict(), cfg.to_dict()
    changed = [f"{section}.{key} {before[section][key]!r} -> {value!r}"
               for section, values in now.items() for key, value in values.items() if before[section][key] != value]
    if changed:
        raise UserError(f"{run_dir} was started with another config ({', '.join(changed)}); rerun it with the same "
                        "settings, or choose another --out")


def claim_run_folder(run_dir: Path) -> None:
    """Make `run_dir` a run folder (the caller holds the lock of the run it belongs to: `owned_run_folder`)."""
    check_run_folder(run_dir)
    claim_folder(run_dir, "run", "--out")


@contextlib.contextmanager
def owned_run_folder(run_dir: Path, finish: Callable[[Path], object] | None, cfg: Config) -> Iterator[None]:
    """The run folder of `cfg`, locked for the block (one train.py per run folder); after the block,
    `finish(run_dir)` (train.py's export) and then FINISHED, written last: a run is finished only
    when everything is written, and a rerun finds what an interruption left undone."""
    with owned_folder(run_dir, "run", "--out"):
        check_run_folder(run_dir, cfg)  # again under the lock: another process may have written it meanwhile
        yield
        if finish is not None:
            finish(run_dir)
        write_json(run_dir / FINISHED, {"finished": datetime.datetime.now(datetime.timezone.utc).isoformat()})


def prepare_features(cfg: Config, index: DatasetIndex | None, features_dir: Path, workers: int,
                     skip_bad: bool = False) -> FeatureSet:
    """The verified features of the data `index` in `features_dir`, prepared where missing; with no
    index (no data folder), the complete `features_dir` as it is, if it has the config's features."""
    if index is not None:
        return ensure_prepared(index, features_dir, cfg, workers=workers, skip_bad=skip_bad)
    fs = load_feature_set(features_dir)
    if fs.fingerprint != cfg.feature_fingerprint():
        raise UserError(f"{features_dir} holds features made with another config, and there is no data folder to "
                        "prepare them again from; pass --data")
    return fs


def train_one(cfg: Config, fs: FeatureSet, run_dir: Path, verbose: int = 1, fold: Fold | None = None) -> dict:
    """One seeded training run in `run_dir`; resumes from its backup if one is there.

    With a `fold`, it trains on that fold's training clips and validates on its held-out originals.
    """
    t = cfg.train
    claim_run_folder(run_dir)
    cfg.save(run_dir / "config.json")
    first_epoch = resume_epoch(run_dir / BACKUP)
    keep_history(run_dir / "history.csv", first_epoch)
    keras.utils.set_random_seed(t.seed)
    inputs = run_inputs(cfg)
    strategy = make_strategy(t.strategy)
    global_batch = t.batch_size * strategy.num_replicas_in_sync
    train_sources, valid_split, valid_sources = (None, "valid", None) if fold is None else (fold.train, "train", fold.valid)

    def datasets(names: tuple[str, ...], epochs: range) -> tuple[tf.data.Dataset, tf.data.Dataset]:
        """(training batches of `epochs`, validation batches) of the inputs `names`."""
        train = training_batches(fs, names, global_batch, seed=t.seed, epochs=epochs, shuffle_buffer=t.shuffle_buffer,
                                 sources=train_sources, mixup_alpha=t.mixup_alpha)
        return train, segment_dataset(fs, valid_split, names, t.eval_batch_size, shuffle=False, sources=valid_sources,
                                      originals_only=fold is not None)

    train_ds, val_ds = datasets(inputs, range(first_epoch, t.epochs))
    val_clips = eval_clip_dataset(fs, valid_split, inputs, sources=valid_sources)
    steps_per_epoch = int(np.ceil(count_segments(fs, "train", train_sources) / global_batch))
    with strategy.scope():
        model = compile_model(cfg, len(fs.genres), steps_per_epoch)
    callbacks = make_callbacks(cfg, run_dir, val_clips, first_epoch)
    if t.embedding_epochs and not first_epoch:
        with strategy.scope():
            train_embedding_branch(cfg, model, run_dir, callbacks, val_clips, datasets, steps_per_epoch, verbose)
    history = model.fit(train_ds, validation_data=val_ds, epochs=t.epochs, initial_epoch=first_epoch,
                        steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=verbose, shuffle=False)
    check_finite_loss(history.history.get("loss", []), run_dir, first_epoch)
    model.load_weights(run_dir / "best.weights.h5")
    return finish_run(cfg, fs, model, run_dir, fold)


def train_embedding_branch(cfg: Config, model: keras.Model, run_dir: Path, callbacks: list, val_clips: tf.data.Dataset,
                           datasets: Callable, steps_per_epoch: int, verbose: int) -> None:
    """The first stage of a gated two-branch run (--embedding-epochs N): the embedding branch and
    the head alone (`embedding_branch_model`, no audio computed) for up to N epochs on the same
    training segments (`datasets(input names, epochs)`, as the run's), keeping its best epoch by
    val_loss (Keras EarlyStopping with restore_best_weights); history in embedding_history.csv.
    The audio gate is still 0, so `model` is then that branch exactly: its weights become
    best.weights.h5 and its validation score the ModelCheckpoint's bar, so the run ends on a model
    no worse on validation than its embedding branch alone (run.json: best_epoch 0 when no later
    epoch beat it)."""
    t = cfg.train
    branch = compile_for(cfg, embedding_branch_model(model), steps_per_epoch)
    train, valid = datasets(tuple(branch.input), range(t.embedding_epochs))
    branch.fit(train, validation_data=valid, epochs=t.embedding_epochs, steps_per_epoch=steps_per_epoch,
               verbose=verbose, shuffle=False, callbacks=[
                   keras.callbacks.EarlyStopping(monitor="val_loss", patience=t.early_stopping_patience,
                                                 restore_best_weights=True),
                   keras.callbacks.CSVLogger(str(run_dir / EMBEDDING_HISTORY))])
    monitor, _ = MONITORS[t.monitor]
    score = clip_scores(*predict_clips(model, val_clips))[monitor.removeprefix("val_")]
    model.optimizer.build(model.trainable_variables)  # saved as ModelCheckpoint will save it, slots and all
    model.save_weights(run_dir / "best.weights.h5")
    checkpoint = next(cb for cb in callbacks if isinstance(cb, keras.callbacks.ModelCheckpoint))
    checkpoint.best = score
    write_json(run_dir / EMBEDDING_STAGE, {"monitor": monitor, "value": score})


def compile_model(cfg: Config, n_classes: int, steps_per_epoch: int) -> keras.Model:
    """The registry model of `cfg`, compiled with its optimizer and loss (call under the strategy's scope)."""
    return compile_for(cfg, build_for(cfg, n_classes), steps_per_epoch)


def compile_for(cfg: Config, model: keras.Model, steps_per_epoch: int) -> keras.Model:
    """`model` compiled as `cfg` trains: its optimizer, the (label-smoothed) loss, accuracy, --jit."""
    model.compile(
        optimizer=make_optimizer(cfg, steps_per_epoch),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.train.label_smoothing),
        metrics=["accuracy"],
        jit_compile=cfg.train.jit,
    )
    return model


def finish_run(cfg: Config, fs: FeatureSet, model: keras.Model, run_dir: Path, fold: Fold | None = None) -> dict:
    """Score the best weights and write run.json (train.py exports the SavedModels)."""
    inputs = run_inputs(cfg)
    valid = eval_clip_dataset(fs, "valid", inputs) if fold is None else eval_clip_dataset(fs, "train", inputs, fold.valid)
    valid_scores = clip_scores(*predict_clips(model, valid))
    scores = {"valid_clip_accuracy": valid_scores["clip_accuracy"], "valid_clip_loss": valid_scores["clip_loss"],
              "test_clip_accuracy": score_test_clips(model, fs, inputs)}
    history = _read_history(run_dir / "history.csv")
    monitor, mode = MONITORS[cfg.train.monitor]
    values = [row[monitor] for row in history]
    best = np.argmin if mode == "min" else np.argmax
    summary = {
        **run_identity(cfg, fs),
        "epochs_run": len(history),
        "best_epoch": int(best(values)) + 1 if history else None,
        **scores,
    }
    stage = run_dir / EMBEDDING_STAGE
    if stage.is_file():  # --embedding-epochs: epoch 0 is the embedding branch, kept unless beaten
        bar = json.loads(stage.read_text())["value"]
        beaten = [v < bar if mode == "min" else v > bar for v in values]
        summary["embedding_stage"] = {monitor: bar, "kept": not any(beaten)}
        if not any(beaten):
            summary["best_epoch"] = 0
    if fold is not None:
        summary.update(fold=fold.index, valid_clips=len(fold.valid))
    write_json(run_dir / "run.json", summary)
    return summary


def score_test_clips(model: keras.Model, fs: FeatureSet, inputs: tuple[str, ...]) -> float:
    """`model`'s clip accuracy on the test split; NaN when the dataset lists no test clips (every
    clip cross-validated: the out-of-fold scores are then the only ones)."""
    if not fs.has("test"):
        return float("nan")
    return clip_accuracy(*predict_clips(model, eval_clip_dataset(fs, "test", inputs)))


def run_identity(cfg: Config, fs: FeatureSet) -> dict:
    """What every run.json says about its model and features (load_run and the export read it)."""
    return {
        "model": cfg.train.model,
        "seed": cfg.train.seed,
        "genres": fs.genres,
        "inputs": list(run_inputs(cfg)),
        "features_dir": str(fs.root.resolve()),
        "data_fingerprint": fs.data_fingerprint,
        "normalization": dict(zip(("mean", "std"), fs.normalization)),
    }


def _read_history(path: Path) -> list[dict]:
    import pandas as pd

    if not path.is_file():
        return []
    frame = pd.read_csv(path)
    return frame.drop_duplicates("epoch", keep="last").to_dict("records")
