"""Keras callbacks: clip-level validation accuracy and staged fine-tuning."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from gtzan_tf.evaluation.metrics import clip_accuracy, predict_clips
from gtzan_tf.models.registry import set_backbone_trainable


class ClipAccuracy(keras.callbacks.Callback):
    """Adds `val_clip_accuracy` (segments aggregated per clip) to the epoch logs.

    Must come before the callbacks that monitor it (checkpoint, early stopping, CSV logger).
    """

    def __init__(self, clips: tf.data.Dataset):
        super().__init__()
        self.clips = clips

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["val_clip_accuracy"] = clip_accuracy(*predict_clips(self.model, self.clips))


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
