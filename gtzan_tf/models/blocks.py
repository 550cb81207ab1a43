"""Small building blocks shared by every architecture: regularised layers and the genre head."""
from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

OUTPUT_NAME = "genre"
HEAD_LAYERS = ("head_dropout", "logits", OUTPUT_NAME)  # genre_head's layers, in order (dropout optional)


@dataclass(frozen=True)
class BuildSettings:
    """Options every builder receives.

    l1/l2 regularise the kernels of the Dense/Conv layers we create (not KerasHub backbone layers);
    dropout comes before the final Dense; init is read by backbone builders, fusion and
    branch_dropout by two-branch builders only.
    """

    l1: float = 0.0
    l2: float = 0.0
    dropout: float = 0.0
    init: str = "scratch"
    fusion: str = "reference"
    branch_dropout: float = 0.0

    def regularizer(self) -> keras.regularizers.Regularizer | None:
        return keras.regularizers.L1L2(l1=self.l1, l2=self.l2) if self.l1 or self.l2 else None

    def dense(self, units: int, name: str) -> layers.Dense:
        return layers.Dense(units, kernel_regularizer=self.regularizer(), name=name)


def batch_norm(name: str) -> layers.BatchNormalization:
    """BatchNormalization with PyTorch's running-average momentum and epsilon, as the reference."""
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


def dense_bn_relu(x, units: int, settings: BuildSettings, name: str):
    """Dense -> BN -> ReLU."""
    x = settings.dense(units, f"{name}_dense")(x)
    x = batch_norm(f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def genre_head(features, n_classes: int, settings: BuildSettings):
    """Dropout -> Dense -> softmax, the softmax in float32 even under a mixed-precision policy."""
    if settings.dropout:
        features = layers.Dropout(settings.dropout, name=HEAD_LAYERS[0])(features)
    logits = settings.dense(n_classes, HEAD_LAYERS[1])(features)
    return layers.Activation("softmax", dtype="float32", name=HEAD_LAYERS[2])(logits)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, for one-line UserErrors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
