"""Clip-embedding MLP and the two-branch (log-mel branch + embedding branch) fusion."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from keras import layers

from gtzan_tf.errors import UserError
from gtzan_tf.models.blocks import BuildSettings, dense_bn_relu

EMBEDDING_HIDDEN = 32


@dataclass(frozen=True)
class Fusion:
    """Projection widths of each branch before concatenation; None concatenates a branch unprojected.

    The log-mel branch projects with Dense -> BN -> ReLU, the embedding branch (after its
    753 -> 32 -> BN -> ReLU MLP) with Dense -> ReLU.
    """

    audio_width: int | None
    embedding_width: int | None


FUSIONS = {
    # The reference: 8 + 8 concatenated, then 16 -> n_classes.
    "reference": Fusion(audio_width=8, embedding_width=8),
    # Pooled log-mel features (512 for ResNet34) next to the 32-d embedding projection.
    "wide": Fusion(audio_width=None, embedding_width=None),
}


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
    return layers.Concatenate(name="fusion")([audio, embedding])
