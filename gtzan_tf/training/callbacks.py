"""Keras callbacks: the end-of-epoch policy and run-folder writers both training paths use,
clip-level validation scores and staged fine-tuning."""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from gtzan_tf.config import Config
from gtzan_tf.errors import UserError
from gtzan_tf.evaluation.metrics import clip_scores, predict_clips
from gtzan_tf.models.registry import set_backbone_trainable
from gtzan_tf.training.resume import CallbackState

# Learning-rate reduction on a val_loss plateau (constant schedule only).
REDUCE_LR_FACTOR = 0.5
REDUCE_LR_MIN_DELTA = 1e-4
BACKUP = "backup"
# train.monitor -> (epoch-log key that ModelCheckpoint and EarlyStopping watch, mode); see ClipMetrics.
MONITORS = {"val_clip_loss": ("val_clip_loss", "min"), "val_clip_accuracy": ("val_clip_rank", "max")}


def make_callbacks(cfg: Config, run_dir: Path, val_clips: tf.data.Dataset | None,
                   first_epoch: int = 0) -> list[keras.callbacks.Callback]:
    """The callbacks of a training run writing into `run_dir`, in the order they must run.

    Best weights (best.weights.h5) and early stopping on `train.monitor`, learning-rate reduction
    on val_loss, TensorBoard logs, history.csv, a stop on a NaN loss, and the resumable backup:
    BackupAndRestore (model, optimizer, epoch) with CallbackState (the other callbacks' state,
    restored when the run resumes at `first_epoch` > 0). DiskRoom comes first: no checkpoint write
    starts without room for it. With `val_clips`, ClipMetrics first adds
    the clip-level scores to the epoch logs; without, the caller's logs already carry them.
    """
    t = cfg.train
    monitor, mode = MONITORS[t.monitor]
    callbacks = [
        keras.callbacks.ModelCheckpoint(
            str(run_dir / "best.weights.h5"), monitor=monitor, mode=mode, save_best_only=True, save_weights_only=True,
        ),
        keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=t.early_stopping_patience),
        keras.callbacks.TensorBoard(str(run_dir / "logs")),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        keras.callbacks.TerminateOnNaN(),
    ]
    if t.schedule == "constant":  # a schedule owns the learning rate; plateau reduction only without one
        callbacks.insert(2, keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=REDUCE_LR_FACTOR, min_delta=REDUCE_LR_MIN_DELTA, patience=t.reduce_lr_patience))
    if val_clips is not None:
        callbacks.insert(0, ClipMetrics(val_clips))
    if t.freeze_backbone_epochs:
        callbacks.insert(0, FreezeBackbone(t.freeze_backbone_epochs, t.finetune_lr_factor))
    backup = run_dir / BACKUP
    return [DiskRoom(run_dir)] + callbacks + [CallbackState(backup, callbacks, first_epoch),
                                              keras.callbacks.BackupAndRestore(str(backup), double_checkpoint=True)]


def check_finite_loss(losses, run_dir: Path, first_epoch: int) -> None:
    """One clear error when TerminateOnNaN stopped the run (its last loss is NaN or infinite)."""
    if not np.all(np.isfinite(losses)):
        raise UserError(f"training diverged in {run_dir}: the loss became NaN or infinite at epoch "
                        f"{first_epoch + len(losses)}; lower the learning rate (--lr)")


class DiskRoom(keras.callbacks.Callback):
    """Stops the run with one OSError naming `folder` when the disk lacks room for an epoch's
    checkpoints (best weights, the backup and its previous copy, optimizer state included).

    A weights file that fills the disk halfway cannot be recovered in-process (h5py then fails on
    every later close and can crash the interpreter), so that write is never started; the run resumes
    from its last backup once there is room.
    """

    MARGIN = 2**20

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = Path(folder)

    def on_train_begin(self, logs=None):
        self._check()

    def on_epoch_end(self, epoch, logs=None):
        self._check()

    def _check(self) -> None:
        variables = list(self.model.weights) + list(getattr(self.model.optimizer, "variables", []))
        state = sum(np.prod(v.shape, dtype=np.int64) * np.dtype(v.dtype).itemsize for v in variables)
        needed, free = 3 * int(state) + self.MARGIN, shutil.disk_usage(self.folder).free
        if free < needed:
            raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} for this epoch's checkpoints "
                                        f"({needed / 1e6:.1f} MB needed, {free / 1e6:.1f} MB free)", str(self.folder))


class ClipMetrics(keras.callbacks.Callback):
    """Adds `val_clip_accuracy`, `val_clip_loss` and `val_clip_rank` (segments aggregated per clip,
    `clip_scores`) to the epoch logs.

    Must come before the callbacks that monitor them (checkpoint, early stopping, CSV logger).
    """

    def __init__(self, clips: tf.data.Dataset):
        super().__init__()
        self.clips = clips

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            scores = clip_scores(*predict_clips(self.model, self.clips))
            logs.update({f"val_{name}": value for name, value in scores.items()})


class FreezeBackbone(keras.callbacks.Callback):
    """Keeps the pretrained backbone frozen for the first `epochs` epochs (the head learns first),
    then fine-tunes the whole network with the learning rate multiplied by `lr_factor`."""

    def __init__(self, epochs: int, lr_factor: float = 1.0):
        super().__init__()
        self.epochs, self.lr_factor = epochs, lr_factor

    def on_epoch_begin(self, epoch, logs=None):
        frozen = epoch < self.epochs
        if self.model.get_layer("backbone").trainable == frozen:
            set_backbone_trainable(self.model, not frozen)
            if not frozen and self.lr_factor != 1.0:
                optimizer = self.model.optimizer
                optimizer.learning_rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate)) * self.lr_factor
            self.model.make_train_function(force=True)
