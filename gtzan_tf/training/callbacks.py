"""Keras callbacks: clip-level validation scores and staged fine-tuning."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from gtzan_tf.evaluation.metrics import clip_scores, predict_clips
from gtzan_tf.models.registry import set_backbone_trainable


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
    """Keeps the pretrained backbone frozen for the first `epochs` epochs, then fine-tunes it."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs

    def on_epoch_begin(self, epoch, logs=None):
        frozen = epoch < self.epochs
        if self.model.get_layer("backbone").trainable == frozen:
            set_backbone_trainable(self.model, not frozen)
            self.model.make_train_function(force=True)
