"""The one model registry (name -> builder) used by training, evaluation and export.

Every model takes named inputs (only those it uses) and has one output, `genre`: float32 softmax
probabilities of shape (batch, n_classes).
  logmel | mfcc | chroma   (frames, bins) normalised time-frequency segment, time-major, named
                           after the feature kind (config.FEATURE_KINDS)
  musicnn                  (187, 96) raw musicnn patch, read by the musicnn models only
  msd_embedding            (753,) MSD musicnn clip embedding (config.EMBEDDING_INPUTS)
  mtt_embedding            (753,) MTT musicnn clip embedding
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import keras

from gtzan_tf.config import EMBEDDING_INPUTS, SEGMENTS, Config, FeatureConfig
from gtzan_tf.errors import UserError
from gtzan_tf.models.augment import SpecAugment
from gtzan_tf.models.backbones import BACKBONE_NAME, backbone_features
from gtzan_tf.models.blocks import BuildSettings, first_line, genre_head
from gtzan_tf.models.cnn import BASELINE, Q1, cnn1d, cnn2d
from gtzan_tf.models.fusion import embedding_mlp, get_fusion, two_branch
from gtzan_tf.models.pretrained import MUSICNN, freeze_batch_norm, musicnn_features

MSD = EMBEDDING_INPUTS["MSD_musicnn"]
MTT = EMBEDDING_INPUTS["MTT_musicnn"]
WEIGHTS_SUFFIX = ".weights.h5"


@dataclass(frozen=True)
class ModelSpec:
    """A registered model.

    builder(inputs by name, BuildSettings) returns the features that the genre head classifies;
    backbone names the KerasHub backbone table entry when the model has one (presets, freezing),
    or is "musicnn" for the pretrained musicnn port; feature_kind is the segment kind the model
    needs, when it needs one.
    """

    builder: Callable
    description: str
    inputs: tuple[str, ...]
    backbone: str | None = None
    feature_kind: str | None = None

    @property
    def has_backbone(self) -> bool:
        return self.backbone is not None


def _backbone_spec(arch_name: str, title: str) -> ModelSpec:
    return ModelSpec(
        partial(backbone_features, arch_name=arch_name),
        f"{title} (KerasHub) on the log-mel segment repeated to 3 channels, global average pool",
        (SEGMENTS,),
        backbone=arch_name,
    )


_REGISTRY = {
    "cnn1d": ModelSpec(
        partial(cnn1d, table=BASELINE),
        "1D CNN baseline: 3 x [Conv1D k7 32, BN, ReLU, MaxPool 7] over time, mel bins as channels",
        (SEGMENTS,),
    ),
    "cnn1d_q1": ModelSpec(
        partial(cnn1d, table=Q1),
        "1D CNN Q1: channels 16/32/64/128, kernels and pools 7/5/3/3 (45,784 parameters on 96 bins)",
        (SEGMENTS,),
    ),
    "mlp_msd": ModelSpec(
        partial(embedding_mlp, input_name=MSD), "MSD musicnn embedding -> Dense 32 -> BN -> ReLU", (MSD,)
    ),
    "mlp_mtt": ModelSpec(
        partial(embedding_mlp, input_name=MTT), "MTT musicnn embedding -> Dense 32 -> BN -> ReLU", (MTT,)
    ),
    "cnn2d": ModelSpec(
        cnn2d, "2D CNN: 3 x [Conv2D 7x7 32, BN, ReLU, MaxPool 7x7] on the (frames, bins, 1) segment", (SEGMENTS,)
    ),
    "cnn2d_msd": ModelSpec(
        partial(two_branch, audio_branch=cnn2d), "2D CNN branch + MSD embedding MLP branch, fused", (SEGMENTS, MSD)
    ),
    "vgg13": _backbone_spec("vgg13", "VGG13"),
    "vgg16": _backbone_spec("vgg16", "VGG16"),
    "vgg19": _backbone_spec("vgg19", "VGG19"),
    "resnet18": _backbone_spec("resnet18", "ResNet18"),
    "resnet34": _backbone_spec("resnet34", "ResNet34"),
    "resnet50": _backbone_spec("resnet50", "ResNet50"),
    "resnet101": _backbone_spec("resnet101", "ResNet101"),
    "musicnn_msd": ModelSpec(
        partial(musicnn_features, model_name="MSD_musicnn"),
        "MSD musicnn (pretrained, fine-tuned) on its own 3 s patches, max-pool features",
        (SEGMENTS,), backbone=MUSICNN, feature_kind=MUSICNN,
    ),
    "musicnn_mtt": ModelSpec(
        partial(musicnn_features, model_name="MTT_musicnn"),
        "MTT musicnn (pretrained, fine-tuned) on its own 3 s patches, max-pool features",
        (SEGMENTS,), backbone=MUSICNN, feature_kind=MUSICNN,
    ),
    "musicnn_msd_fusion": ModelSpec(
        partial(two_branch, audio_branch=partial(musicnn_features, model_name="MSD_musicnn")),
        "fine-tuned MSD musicnn branch on its patches + MSD embedding MLP branch, fused",
        (SEGMENTS, MSD), backbone=MUSICNN, feature_kind=MUSICNN,
    ),
    "resnet34_msd": ModelSpec(
        partial(two_branch, audio_branch=partial(backbone_features, arch_name="resnet34")),
        "ResNet34 branch + MSD embedding MLP branch, fused",
        (SEGMENTS, MSD),
        backbone="resnet34",
    ),
}

MODEL_NAMES = tuple(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        raise UserError(f"unknown model {name!r}: choose one of {', '.join(MODEL_NAMES)}")
    return _REGISTRY[name]


def model_inputs(name: str, feature_kind: str | None = None) -> tuple[str, ...]:
    """Names of the inputs `name` reads, in order (the segment input is named after the feature
    kind: the model's own, else `feature_kind`, else logmel); the data pipeline and the serving
    model feed exactly these."""
    kind = segment_kind(name, feature_kind)
    return tuple(kind if name_ == SEGMENTS else name_ for name_ in get_spec(name).inputs)


def segment_kind(name: str, feature_kind: str | None = None) -> str:
    """The feature kind model `name` reads: `feature_kind` (default logmel), which must be the
    model's own kind when it has one."""
    own = get_spec(name).feature_kind
    if own and feature_kind not in (None, own):
        raise UserError(f"model {name} reads {own} segments: set features.kind={own}")
    return own or feature_kind or "logmel"


def build_model(
    name: str,
    *,
    segment_shape: tuple[int, int] | None = None,
    n_classes: int = 8,
    embedding_dim: int = 753,
    dropout: float = 0.0,
    l1: float = 0.0,
    l2: float = 0.0,
    init: str = "scratch",
    fusion: str = "reference",
    feature_kind: str | None = None,
    branch_dropout: float = 0.0,
    spec_augment: dict | None = None,
) -> keras.Model:
    """Build a registered model (uncompiled).

    init: 'scratch'; for models with a KerasHub backbone also 'imagenet', a KerasHub preset name or
    handle, or a local preset folder; for every model a `.weights.h5` file saved from the same
    model (musicnn models always start from the pretrained port).
    fusion: a `FUSIONS` key, read by the two-branch models only; branch_dropout likewise.
    spec_augment: SpecAugment arguments, applied to the segment input in training (None: off).
    segment_shape: default the shape of the feature kind's default segment (logmel 125 x 96).
    """
    spec = get_spec(name)
    get_fusion(fusion)
    weights_file = init.endswith(WEIGHTS_SUFFIX)
    if weights_file and not Path(init).is_file():
        raise UserError(f"weights file not found: {init}")
    if init != "scratch" and not weights_file and spec.backbone in (None, MUSICNN):
        raise UserError(f"model {name} has no backbone to initialise from {init!r}: use 'scratch' or a .weights.h5 file")

    kind = segment_kind(name, feature_kind)
    segment_shape = segment_shape or FeatureConfig(kind=kind).segment_shape
    settings = BuildSettings(l1=l1, l2=l2, dropout=dropout, init="scratch" if weights_file else init, fusion=fusion,
                             branch_dropout=branch_dropout)
    shapes = {SEGMENTS: tuple(segment_shape), MSD: (embedding_dim,), MTT: (embedding_dim,)}
    names = dict(zip(spec.inputs, model_inputs(name, kind)))
    inputs = {role: keras.Input(shapes[role], name=names[role]) for role in spec.inputs}
    features = dict(inputs)  # builders see roles
    if spec_augment and SEGMENTS in inputs:
        features[SEGMENTS] = SpecAugment(**spec_augment, name="spec_augment")(inputs[SEGMENTS])
    outputs = genre_head(spec.builder(features, settings), n_classes, settings)
    model = keras.Model({names[role]: tensor for role, tensor in inputs.items()}, outputs, name=name)
    if weights_file:
        try:
            model.load_weights(init)
        except (ValueError, OSError, KeyError) as exc:
            raise UserError(f"cannot load {init} into {name}: {first_line(exc)}") from exc
    return model


def set_backbone_trainable(model: keras.Model, trainable: bool, optimizer: keras.optimizers.Optimizer | None = None) -> None:
    """Freeze or unfreeze the nested `backbone` layer (frozen BatchNorm runs in inference mode).

    Before the first freeze, `optimizer` (default: the compiled `model.optimizer`) is built on every
    trainable variable, backbone included, so that it can still update the backbone once unfrozen.
    Rebuild the train function afterwards (`model.make_train_function(force=True)` or recompile).
    """
    try:
        backbone = model.get_layer(BACKBONE_NAME)
    except ValueError as exc:
        raise UserError(f"model {model.name!r} has no backbone to freeze or unfreeze") from exc
    optimizer = optimizer or getattr(model, "optimizer", None)
    if not trainable and optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)
    backbone.trainable = trainable
    if getattr(backbone, "frozen_batch_norm", False):  # unfreezing set every layer trainable
        freeze_batch_norm(backbone)


def build_for(cfg: Config, n_classes: int, init: str | None = None) -> keras.Model:
    """The registry model that `cfg` describes (train, evaluate, predict and export all build this)."""
    t = cfg.train
    return build_model(
        t.model,
        segment_shape=cfg.features.segment_shape,
        n_classes=n_classes,
        dropout=t.dropout,
        l1=t.l1,
        l2=t.l2,
        init=t.init if init is None else init,
        fusion=t.fusion,
        feature_kind=cfg.features.kind,
        branch_dropout=t.branch_dropout,
        spec_augment=spec_augment_settings(cfg),
    )


def spec_augment_settings(cfg: Config) -> dict | None:
    """SpecAugment arguments from `cfg.train`, or None when it has no masks."""
    t = cfg.train
    if not (t.time_masks or t.freq_masks):
        return None
    return {"time_masks": t.time_masks, "time_mask_frames": t.time_mask_frames, "freq_masks": t.freq_masks,
            "freq_mask_bins": t.freq_mask_bins, "seed": t.seed}


def run_inputs(cfg: Config) -> tuple[str, ...]:
    """The named inputs of the model that `cfg` describes."""
    return model_inputs(cfg.train.model, cfg.features.kind)
