"""SpecAugment (Park et al. 2019) as a Keras layer: time and frequency masks, in training only."""
from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="gtzan_tf")
class SpecAugment(keras.layers.Layer):
    """(batch, frames, bins) -> the same with `time_masks` bands of up to `time_mask_frames` frames
    and `freq_masks` bands of up to `freq_mask_bins` bins set to zero, independently per example
    (zero: the training mean of a standardised log-mel, silence in a musicnn patch).
    The identity at inference."""

    def __init__(self, time_masks: int = 1, time_mask_frames: int = 20, freq_masks: int = 1,
                 freq_mask_bins: int = 12, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.time_masks, self.time_mask_frames = time_masks, time_mask_frames
        self.freq_masks, self.freq_mask_bins = freq_masks, freq_mask_bins
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _keep(self, batch, size: int, masks: int, width: int):
        """(batch, size) float mask: 0 inside `masks` random bands of width 0..width, else 1."""
        position = ops.arange(size)[None, :]
        keep = ops.ones((batch, size))
        for _ in range(masks):
            w = keras.random.randint((batch, 1), 0, min(width, size) + 1, seed=self.seed_generator)
            start = ops.floor(keras.random.uniform((batch, 1), seed=self.seed_generator)
                              * ops.cast(size - w + 1, "float32"))
            start = ops.cast(start, "int32")
            inside = ops.logical_and(position >= start, position < start + w)
            keep = keep * (1.0 - ops.cast(inside, "float32"))
        return keep

    def call(self, x, training=False):
        if not training:
            return x
        batch, frames, bins = ops.shape(x)[0], x.shape[1], x.shape[2]
        time = self._keep(batch, frames, self.time_masks, self.time_mask_frames)
        freq = self._keep(batch, bins, self.freq_masks, self.freq_mask_bins)
        return x * ops.cast(time[:, :, None] * freq[:, None, :], x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "time_masks": self.time_masks, "time_mask_frames": self.time_mask_frames,
                "freq_masks": self.freq_masks, "freq_mask_bins": self.freq_mask_bins, "seed": self.seed}
