"""Keras 3 functional ports of the musicnn and vgg taggers of musicnn 0.1.0 (its models.py).

The architectures are tables fed to two builders. Layers are created in the order the TF1 code
created them, and `CheckpointScopes` records, for each Keras variable, the checkpoint variable
TF1 named for it (per layer type, in creation order: conv2d, conv2d_1, ...), so weights.py copies
them by name. Inputs are log-compressed mel patches (batch, 187, 96); batch norm runs in
inference mode with epsilon 1e-3; dropout (identity at inference) is left out. The musicnn
front-end branches are fused blocks, computed in a faster but equivalent way (see FrontendBlock).
"""
from __future__ import annotations

import collections

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from gtzan_tf.musicnn.params import PARAMS

BN_EPSILON = 1e-3
# Front-end filters that cannot move their output by more than this on an input are not convolved.
DEAD_FILTER_TOLERANCE = 1e-7
NUM_TAGS = 50

# musicnn front-end: convolutions over the (time, mel) image, each max-pooled over mels.
# Timbral: kernels 7 frames by int(0.4 * 96) and int(0.7 * 96) mels, 204 (1.6 * 128) filters.
TIMBRAL_BRANCHES = (("timbral_74", 38), ("timbral_77", 67))
TIMBRAL_FRAMES, TIMBRAL_FILTERS = 7, 204
# Temporal: kernels 128/64/32 frames by 1 mel, 51 (1.6 * 32) filters; computed over blocks of
# 17 frames (187 = 11 * 17, so the blocks tile a patch exactly).
TEMPORAL_BRANCHES = (("temporal_128", 128), ("temporal_64", 64), ("temporal_32", 32))
TEMPORAL_FILTERS, TEMPORAL_BLOCK = 51, 17
# musicnn mid-end: 1-D convolutions over time on all front-end channels; dense (residual) from cnn2.
MUSICNN_MIDEND = ("cnn1", "cnn2", "cnn3")
MIDEND_FILTERS, MIDEND_KERNEL = 64, 7
BACKEND_UNITS = 200

# vgg: blocks of 3x3 'same' convolution (TF1 scope "<i>CNN"), ReLU, batch norm, max pooling.
VGG_FILTERS = 128
VGG_BLOCKS = (  # (output name, pool size, pool strides)
    ("pool1", (4, 1), (2, 2)),
    ("pool2", (2, 2), (2, 2)),
    ("pool3", (2, 2), (2, 2)),
    ("pool4", (2, 2), (2, 2)),
    ("pool5", (4, 4), (4, 4)),
)

MUSICNN_OUTPUTS = ("taggram", "timbral", "temporal", "cnn1", "cnn2", "cnn3", "mean_pool", "max_pool", "penultimate")
VGG_OUTPUTS = ("taggram",) + tuple(name for name, _, _ in VGG_BLOCKS)
MODEL_OUTPUTS = {
    "MSD_musicnn": MUSICNN_OUTPUTS,
    "MTT_musicnn": MUSICNN_OUTPUTS,
    "MSD_vgg": VGG_OUTPUTS,
    "MTT_vgg": VGG_OUTPUTS,
}
MODEL_NAMES = tuple(MODEL_OUTPUTS)


def _same_padding(kernel: int) -> tuple[int, int]:
    """TF's 'same' padding (before, after) for an odd or even kernel."""
    return (kernel - 1) // 2, kernel - 1 - (kernel - 1) // 2


class FrontendBlock(layers.Layer):
    """One musicnn front-end branch: convolution, ReLU, inference batch norm, max over mels.

    Computed in a cheaper order with the same result: batch norm is a per-channel map
    x * scale + shift and ReLU is monotone, so with s = sign(scale) per channel
        max_mels BN(ReLU(z)) = BN(ReLU(s * max_mels(s * z))),
    exactly (float rounding is monotone, negation exact); s * z is the convolution with
    sign-flipped kernel and bias, and one reduction replaces batch norm over the whole map. The
    bias is added after the max, which it commutes with (again because rounding is monotone).

    Dead filters are not convolved. On input x, a filter's output can differ from its bias-only
    value BN(ReLU(bias)) by at most |scale| * sum|kernel| * max|x| (ReLU and max are 1-Lipschitz);
    filters for which that bound is below DEAD_FILTER_TOLERANCE get that constant. Training left
    many pretrained filters dead (kernels decayed to about 1e-30): on music, 497 of MSD musicnn's
    561 front-end filters and 234 of MTT musicnn's.
    That shortcut is for inference (and a frozen block) only: a trainable block in training
    convolves every filter, and inference re-derives the dead filters from the current weights.
    Weights: Conv2D's kernel (frames, mels, 1, filters) and bias (trainable), BatchNormalization's
    gamma, beta, moving_mean and moving_variance (frozen: batch norm always uses its statistics).
    Subclasses compute the convolution.
    """

    pool_axis: int  # mel axis of the convolution's output

    def __init__(self, filters: int, kernel_size: tuple[int, int], epsilon: float = BN_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.epsilon = filters, tuple(kernel_size), epsilon

    def build(self, input_shape):
        def weight(name, shape, initializer="zeros", trainable=False):
            return self.add_weight(shape=shape, name=name, initializer=initializer, trainable=trainable)

        self.kernel = weight("kernel", (*self.kernel_size, 1, self.filters), "glorot_uniform", trainable=True)
        self.bias = weight("bias", (self.filters,), trainable=True)
        self.gamma = weight("gamma", (self.filters,), "ones")
        self.beta = weight("beta", (self.filters,))
        self.moving_mean = weight("moving_mean", (self.filters,))
        self.moving_variance = weight("moving_variance", (self.filters,), "ones")

    def convolve(self, x, kernel):
        """Convolution of x with kernel (frames, mels, n), no bias; mel axis `pool_axis`."""
        raise NotImplementedError

    def call(self, x, training=False):
        scale = self.gamma * tf.math.rsqrt(self.moving_variance + self.epsilon)
        kernel = tf.reshape(self.kernel, (*self.kernel_size, self.filters))
        if training and self.trainable:  # every filter, so that gradients reach them all
            sign = tf.where(scale < 0, -1.0, 1.0)
            peak = tf.reduce_max(self.convolve(x, kernel * sign), axis=self.pool_axis)
            return tf.nn.relu(sign * peak + self.bias) * scale + (self.beta - self.moving_mean * scale)
        reach = tf.abs(scale) * tf.reduce_sum(tf.abs(kernel), axis=(0, 1)) * tf.reduce_max(tf.abs(x))
        # The filter of largest reach is always convolved: oneDNN rejects a convolution with no filters.
        live = (reach > DEAD_FILTER_TOLERANCE) | (tf.range(self.filters) == tf.argmax(reach, output_type=tf.int32))
        live_index = tf.where(live)[:, 0]
        sign = tf.where(tf.gather(scale, live_index) < 0, -1.0, 1.0)
        peak = tf.reduce_max(self.convolve(x, tf.gather(kernel, live_index, axis=-1) * sign), axis=self.pool_axis)
        live_pooled = tf.nn.relu(sign * peak + tf.gather(self.bias, live_index))
        # Every filter's place in [live filters..., all filters' bias-only values...].
        position = tf.where(live, tf.cumsum(tf.cast(live, tf.int32), exclusive=True),
                            tf.size(live_index, out_type=tf.int32) + tf.range(self.filters))
        dead_pooled = tf.broadcast_to(tf.nn.relu(self.bias), tf.concat([tf.shape(peak)[:-1], [self.filters]], 0))
        pooled = tf.gather(tf.concat([live_pooled, dead_pooled], axis=-1), position, axis=-1)
        return pooled * scale + (self.beta - self.moving_mean * scale)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="gtzan_tf")
class TimbralBlock(FrontendBlock):
    """Front-end branch with a (frames, mels) kernel on the (batch, time, mels, 1) image, 'same' in
    time and 'valid' in mels -> (batch, time, filters).

    The convolution takes the `frames` time-shifted copies of the image as input channels and a
    (1, mels) kernel: the same sums, which oneDNN runs faster than a one-channel convolution.
    """

    pool_axis = 2

    def convolve(self, image, kernel):
        frames, time = self.kernel_size[0], image.shape[1]
        padded = tf.pad(image, [[0, 0], _same_padding(frames), [0, 0], [0, 0]])
        shifted = tf.concat([padded[:, i:i + time] for i in range(frames)], axis=-1)  # (batch, time, mels, frames)
        return tf.nn.conv2d(shifted, tf.transpose(kernel, (1, 0, 2))[tf.newaxis], 1, "VALID")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], self.filters)


@keras.saving.register_keras_serializable(package="gtzan_tf")
class TemporalBlock(FrontendBlock):
    """Front-end branch with a (frames, 1) kernel, 'same' padding, on the (batch, time, mels)
    image -> (batch, time, filters).

    The convolution is one matmul: each mel band is cut into blocks of `block` frames, and a
    block-Toeplitz (polyphase) kernel maps the blocks a window covers to a whole block of outputs;
    several times faster on CPU than a one-channel Conv2D.
    """

    pool_axis = 1

    def __init__(self, filters: int, kernel_size: tuple[int, int], block: int, **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        self.block = block
        frames = self.kernel_size[0]
        self.taps = (block - 1 + frames - 1) // block + 1  # input blocks one output block depends on
        lag = np.arange(self.taps * block)[:, None] - np.arange(block)[None, :]  # input - output frame
        self._lag = np.clip(lag, 0, frames - 1)
        self._lag_valid = ((lag >= 0) & (lag < frames)).astype("float32")[..., None]

    def convolve(self, image, kernel):
        _, time, mels = image.shape
        batch, frames, filters = tf.shape(image)[0], self.kernel_size[0], tf.shape(kernel)[-1]
        n_blocks = -(-time // self.block)
        pad_before = _same_padding(frames)[0]
        pad_after = (n_blocks + self.taps - 1) * self.block - time - pad_before
        bands = tf.pad(tf.transpose(image, (0, 2, 1)), [[0, 0], [0, 0], [pad_before, pad_after]])
        blocks = tf.reshape(bands, (-1, n_blocks + self.taps - 1, self.block))  # (batch * mels, blocks, block)
        windows = tf.concat([blocks[:, tap:tap + n_blocks] for tap in range(self.taps)], axis=-1)
        # Polyphase kernel (taps * block, block * filters): input frame i of a window to output frame j.
        polyphase = tf.gather(kernel[:, 0], self._lag) * self._lag_valid
        polyphase = tf.reshape(polyphase, (self.taps * self.block, self.block * filters))
        out = tf.matmul(tf.reshape(windows, (-1, self.taps * self.block)), polyphase)
        out = tf.reshape(out, (batch, mels, n_blocks * self.block, filters))  # mel axis 1
        return out[:, :, :time] if n_blocks * self.block != time else out

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], self.filters)

    def get_config(self):
        return {**super().get_config(), "block": self.block}


class CheckpointScopes(dict):
    """Keras layer name -> {variable name: TF1 checkpoint variable}. TF1 named its layers per type
    in creation order (conv2d, conv2d_1, ...); `add` numbers layers created in that same order."""

    TF1_VARIABLES = {"conv2d": ("kernel", "bias"), "dense": ("kernel", "bias"),
                     "batch_normalization": ("gamma", "beta", "moving_mean", "moving_variance")}
    TF1_LAYERS = {layers.Conv1D: ("conv2d",), layers.Conv2D: ("conv2d",), layers.Dense: ("dense",),
                  layers.BatchNormalization: ("batch_normalization",),
                  TimbralBlock: ("conv2d", "batch_normalization"), TemporalBlock: ("conv2d", "batch_normalization")}

    def __init__(self):
        super().__init__()
        self._counts = collections.Counter()

    def add(self, layer: keras.layers.Layer, scope: str | None = None) -> keras.layers.Layer:
        """Record `layer` (created now, in TF1 order) under `scope` or the TF1 default names."""
        self[layer.name] = {}
        for kind in self.TF1_LAYERS[type(layer)]:
            count = self._counts[kind]
            self._counts[kind] += scope is None
            name = scope or (kind if count == 0 else f"{kind}_{count}")
            self[layer.name] |= {var: f"{name}/{var}" for var in self.TF1_VARIABLES[kind]}
        return layer


def _batch_norm(scopes: CheckpointScopes, name: str) -> layers.BatchNormalization:
    return scopes.add(layers.BatchNormalization(epsilon=BN_EPSILON, name=name))


def _normalized_input(scopes: CheckpointScopes):
    patches = keras.Input(PARAMS.patch_shape, name="log_mel")
    image = layers.Reshape((*PARAMS.patch_shape, 1), name="add_channel")(patches)
    return patches, _batch_norm(scopes, "input_bn")(image)


def _frontend(image, scopes: CheckpointScopes) -> tuple:
    """Timbral and temporal features, (batch, time, 408) and (batch, time, 153)."""
    timbral = [scopes.add(TimbralBlock(TIMBRAL_FILTERS, (TIMBRAL_FRAMES, mels), name=branch))(image)
               for branch, mels in TIMBRAL_BRANCHES]
    mel_image = layers.Reshape(PARAMS.patch_shape, name="drop_channel")(image)
    temporal = [scopes.add(TemporalBlock(TEMPORAL_FILTERS, (frames, 1), TEMPORAL_BLOCK, name=branch))(mel_image)
                for branch, frames in TEMPORAL_BRANCHES]
    return layers.Concatenate(name="timbral")(timbral), layers.Concatenate(name="temporal")(temporal)


def build_musicnn(name: str) -> tuple[keras.Model, CheckpointScopes]:
    """musicnn: musically motivated front-end, dense mid-end, temporal pooling back-end."""
    scopes = CheckpointScopes()
    patches, image = _normalized_input(scopes)
    timbral, temporal = _frontend(image, scopes)
    frontend = layers.Concatenate(name="frontend")([timbral, temporal])  # (batch, time, 561)

    midend = [frontend]
    for i, block in enumerate(MUSICNN_MIDEND):
        y = scopes.add(layers.Conv1D(MIDEND_FILTERS, MIDEND_KERNEL, padding="same", activation="relu",
                                     name=f"{block}_conv"))(midend[-1])
        y = _batch_norm(scopes, f"{block}_bn" if i else block)(y)
        midend.append(layers.Add(name=block)([y, midend[-1]]) if i else y)
    features = layers.Concatenate(name="midend")(midend)  # (batch, time, 753)

    max_pool = layers.GlobalMaxPooling1D(name="max_pool")(features)
    mean_pool = layers.GlobalAveragePooling1D(name="mean_pool")(features)
    # The original stacks (753, 2) and flattens: [max0, mean0, max1, mean1, ...].
    pooled = layers.Flatten(name="interleaved_pool")(ops.stack([max_pool, mean_pool], axis=-1))
    x = _batch_norm(scopes, "pool_bn")(pooled)
    x = scopes.add(layers.Dense(BACKEND_UNITS, activation="relu", name="penultimate_dense"))(x)
    penultimate = _batch_norm(scopes, "penultimate")(x)
    logits = scopes.add(layers.Dense(NUM_TAGS, name="logits"))(penultimate)
    taggram = layers.Activation("sigmoid", name="taggram")(logits)

    outputs = dict(zip(MUSICNN_OUTPUTS, (taggram, timbral, temporal, *midend[1:], mean_pool, max_pool, penultimate)))
    return keras.Model(patches, outputs, name=name), scopes


def build_vgg(name: str) -> tuple[keras.Model, CheckpointScopes]:
    """vgg: five blocks of 3x3 convolution and max pooling, then a dense tagger."""
    scopes = CheckpointScopes()
    patches, x = _normalized_input(scopes)
    outputs = {}
    for i, (pool, pool_size, strides) in enumerate(VGG_BLOCKS, start=1):
        conv = layers.Conv2D(VGG_FILTERS, 3, padding="same", activation="relu", name=f"conv{i}")
        x = scopes.add(conv, scope=f"{i}CNN")(x)
        x = _batch_norm(scopes, f"conv{i}_bn")(x)
        x = outputs[pool] = layers.MaxPooling2D(pool_size, strides, name=pool)(x)
    logits = scopes.add(layers.Dense(NUM_TAGS, name="logits"))(layers.Flatten(name="flatten")(x))
    taggram = layers.Activation("sigmoid", name="taggram")(logits)
    return keras.Model(patches, {"taggram": taggram, **outputs}, name=name), scopes


def build_network(name: str) -> tuple[keras.Model, CheckpointScopes]:
    """Uninitialised network `name` (one of MODEL_NAMES) and its checkpoint scopes."""
    return build_vgg(name) if name.endswith("_vgg") else build_musicnn(name)
