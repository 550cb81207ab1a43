"""Clip-embedding MLP and the two-branch (log-mel branch + embedding branch) fusion."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
from keras import layers

from gtzan_tf.errors import UserError
from gtzan_tf.models.blocks import HEAD_LAYERS, BuildSettings, dense_bn_relu

EMBEDDING_HIDDEN = 32
FUSION_LAYER = "fusion"


@dataclass(frozen=True)
class Fusion:
    """Projection widths of each branch before concatenation; None concatenates a branch unprojected.

    The log-mel branch projects with Dense -> BN -> ReLU, the embedding branch (after its
    753 -> 32 -> BN -> ReLU MLP) with Dense -> ReLU.
    """

    audio_width: int | None
    embedding_width: int | None
    gated: bool = False  # added, not concatenated: embedding + AudioGate(audio), see two_branch


FUSIONS = {
    # The reference: 8 + 8 concatenated, then 16 -> n_classes.
    "reference": Fusion(audio_width=8, embedding_width=8),
    # Pooled log-mel features (512 for ResNet34) next to the 32-d embedding projection.
    "wide": Fusion(audio_width=None, embedding_width=None),
    # The embedding MLP's 32 features + gate x the audio branch projected to 32; the gate starts at 0.
    "gated": Fusion(audio_width=EMBEDDING_HIDDEN, embedding_width=None, gated=True),
}


@keras.saving.register_keras_serializable(package="gtzan_tf")
class AudioGate(layers.Layer):
    """x -> g * x with one trainable scalar g, 0 at initialisation (ReZero, Bachlechner et al. 2020):
    a gated two-branch model starts as its embedding branch exactly, and the audio branch enters
    only as far as training finds it useful."""

    def build(self, input_shape):
        self.gate = self.add_weight(shape=(), initializer="zeros", name="gate")

    def call(self, x):
        return x * keras.ops.cast(self.gate, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


def get_fusion(name: str) -> Fusion:
    if name not in FUSIONS:
        raise UserError(f"unknown fusion {name!r}: choose one of {', '.join(FUSIONS)}")
    return FUSIONS[name]


def embedding_mlp(inputs, settings: BuildSettings, input_name: str):
    """Embedding -> Dense 32 -> BN -> ReLU."""
    return dense_bn_relu(inputs[input_name], EMBEDDING_HIDDEN, settings, name=input_name.removesuffix("_embedding"))


def two_branch(inputs, settings: BuildSettings, audio_branch: Callable, embedding_input: str = "msd_embedding"):
    """`audio_branch` features and the embedding MLP, each projected as `settings.fusion` says, concatenated.

    With `settings.branch_dropout` p, training drops a sample's whole (projected) audio branch with
    probability p (Dropout with one noise value per sample), so the head must also classify from
    the embedding alone and cannot lean on a branch that memorises small training sets.
    With a gated fusion the branches are added, the audio one through an `AudioGate` at 0, so the
    untrained model is its embedding branch (`embedding_branch_model`).
    """
    fusion = get_fusion(settings.fusion)
    audio = audio_branch(inputs, settings)
    if fusion.audio_width:
        audio = dense_bn_relu(audio, fusion.audio_width, settings, name="audio_proj")
    if settings.branch_dropout:
        audio = layers.Dropout(settings.branch_dropout, noise_shape=(None, 1), name="branch_dropout")(audio)
    embedding = embedding_mlp(inputs, settings, embedding_input)
    if fusion.embedding_width:
        embedding = settings.dense(fusion.embedding_width, "embedding_proj_dense")(embedding)
        embedding = layers.ReLU(name="embedding_proj_relu")(embedding)
    if fusion.gated:
        return layers.Add(name=FUSION_LAYER)([embedding, AudioGate(name="audio_gate")(audio)])
    return layers.Concatenate(name=FUSION_LAYER)([audio, embedding])


def embedding_branch_model(model: keras.Model, embedding_input: str = "msd_embedding") -> keras.Model:
    """The embedding branch of a gated two-branch `model` with its genre head, as a model of the
    embedding input alone, sharing `model`'s layers: training it trains them in `model`, and while
    the gate is 0 the two give the same probabilities."""
    if not any(isinstance(layer, AudioGate) for layer in model.layers):
        raise UserError(f"model {model.name} has no gated fusion: train it with --fusion gated")
    x = model.get_layer(FUSION_LAYER).input[0]
    present = {layer.name for layer in model.layers}
    for name in HEAD_LAYERS:
        if name in present:
            x = model.get_layer(name)(x)
    return keras.Model({embedding_input: model.input[embedding_input]}, x, name=f"{model.name}_embedding_branch")
