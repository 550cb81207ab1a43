"""Plain CNNs on a log-mel segment: 1D (mel bins as channels, convolution over time) and 2D."""
from __future__ import annotations

from dataclasses import dataclass

from keras import layers

from gtzan_tf.config import SEGMENTS
from gtzan_tf.models.blocks import BuildSettings, batch_norm


@dataclass(frozen=True)
class ConvLayer:
    """One [Conv k, BN, ReLU, MaxPool p] stage."""

    filters: int
    kernel: int
    pool: int


BASELINE = (ConvLayer(32, 7, 7),) * 3
Q1 = (ConvLayer(16, 7, 7), ConvLayer(32, 5, 5), ConvLayer(64, 3, 3), ConvLayer(128, 3, 3))

_LAYERS = {
    1: (layers.Conv1D, layers.MaxPooling1D, layers.GlobalAveragePooling1D),
    2: (layers.Conv2D, layers.MaxPooling2D, layers.GlobalAveragePooling2D),
}


def conv_features(x, table: tuple[ConvLayer, ...], rank: int, settings: BuildSettings, prefix: str = "conv"):
    """Stack of `table` stages ('same' padding, pool stride = pool size), then global average pool."""
    conv, pool, global_pool = _LAYERS[rank]
    for index, stage in enumerate(table, start=1):
        name = f"{prefix}{index}"
        x = conv(stage.filters, stage.kernel, padding="same", kernel_regularizer=settings.regularizer(),
                 name=f"{name}_conv")(x)
        x = batch_norm(f"{name}_bn")(x)
        x = layers.ReLU(name=f"{name}_relu")(x)
        x = pool(stage.pool, padding="same", name=f"{name}_pool")(x)
    return global_pool(name=f"{prefix}_gap")(x)


def cnn1d(inputs, settings: BuildSettings, table: tuple[ConvLayer, ...]):
    """1D CNN: the (frames, bins) segment is a sequence over time with the bins as channels."""
    return conv_features(inputs[SEGMENTS], table, 1, settings)


def cnn2d(inputs, settings: BuildSettings, table: tuple[ConvLayer, ...] = BASELINE):
    """2D CNN on the segment as a one-channel (frames, bins, 1) image."""
    return conv_features(add_channel(inputs[SEGMENTS]), table, 2, settings)


def add_channel(segment):
    """(frames, bins) -> (frames, bins, 1)."""
    return layers.Reshape((*segment.shape[1:], 1), name="add_channel")(segment)
