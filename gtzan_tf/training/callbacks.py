"""Keras callbacks: clip-level validation accuracy and staged fine-tuning."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from gtzan_tf.evaluation.metrics import aggregate_clips
from gtzan_tf.models.registry import set_backbone_trainable


def predict_clips(model: keras.Model, clips: tf.data.Dataset, batch_size: int = 64):
    """Segment probabilities of every clip: (probs (N, C), labels (N,), clip ids (N,))."""
    inputs, labels, clip_ids = {}, [], []
    for features, label, clip_id in clips.as_numpy_iterator():
        for name, value in features.items():
            inputs.setdefault(name, []).append(value)
        n = len(next(iter(features.values())))
        labels.append(np.full(n, label))
        clip_ids.append(np.full(n, clip_id.decode(), dtype=object))
    batch = {name: np.concatenate(values) for name, values in inputs.items()}
    probs = model.predict(batch, batch_size=batch_size, verbose=0)
    return np.asarray(probs, np.float32), np.concatenate(labels), np.concatenate(clip_ids)


def clip_accuracy(probs: np.ndarray, labels: np.ndarray, clip_ids: np.ndarray) -> float:
    """Accuracy of the clip prediction = argmax of the mean segment probability."""
    clips = aggregate_clips(probs, clip_ids, labels)
    return float(np.mean(clips.predictions == clips.labels))


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
    """Keeps the pretrained backbone frozen for the first `epochs` epochs, then fine-tunes it."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs

    def on_epoch_begin(self, epoch, logs=None):
        frozen = epoch < self.epochs
        if self.model.get_layer("backbone").trainable == frozen:
            set_backbone_trainable(self.model, not frozen)
            self.model.make_train_function(force=True)
