"""The pretrained musicnn port as a fine-tunable branch on musicnn patches (feature kind "musicnn")."""
from __future__ import annotations

import keras

from gtzan_tf.config import SEGMENTS
from gtzan_tf.models.backbones import BACKBONE_NAME
from gtzan_tf.models.blocks import BuildSettings, batch_norm
from gtzan_tf.musicnn.weights import load_musicnn

MUSICNN = "musicnn"


def musicnn_backbone(model_name: str) -> keras.Model:
    """Pretrained `model_name` from (batch, 187, 96) patches to its max_pool features (batch, 753),
    named `backbone`, with frozen batch norm (`freeze_batch_norm`)."""
    network = load_musicnn(model_name)
    backbone = keras.Model(network.input, network.output["max_pool"], name=BACKBONE_NAME)
    backbone.frozen_batch_norm = True
    freeze_batch_norm(backbone)
    return backbone


def freeze_batch_norm(model: keras.Model) -> None:
    """Batch norm layers non-trainable, so they normalise with the pretrained statistics (Keras runs
    a non-trainable BatchNormalization in inference mode) and keep their scale and shift."""
    for layer in model.layers:  # the port is flat: no nested models
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def musicnn_features(inputs, settings: BuildSettings, model_name: str):
    """musicnn patch -> pretrained `model_name` (always the pretrained start) -> max_pool (753) ->
    batch norm: the pooled features range over 0..50, and a head on them unnormalised learns
    slowly (loss 8.5 after the first epoch on real clips); standardised they are what the
    logistic-regression baseline classifies."""
    return batch_norm("musicnn_features_bn")(musicnn_backbone(model_name)(inputs[SEGMENTS]))
