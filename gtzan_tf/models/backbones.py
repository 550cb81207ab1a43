"""KerasHub ResNet and VGG backbones on a log-mel segment, from our depth tables or from a preset.

The (frames, bins) segment is repeated to a (frames, bins, 3) image, as the reference did for its
ImageNet models. Backbones take any input size (image_shape (None, None, 3)), presets included.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import keras_hub
from keras import layers

from gtzan_tf.errors import UserError
from gtzan_tf.config import SEGMENTS
from gtzan_tf.models.blocks import BuildSettings, first_line
from gtzan_tf.models.cnn import add_channel

BACKBONE_NAME = "backbone"
IMAGE_SHAPE = (None, None, 3)
IMAGENET = "imagenet"


@dataclass(frozen=True)
class BackboneArch:
    """A KerasHub backbone class, the constructor arguments that fix its depth, and its ImageNet preset."""

    cls: type
    config: dict[str, Any]
    imagenet_preset: str
    min_side: int = 1  # smallest input height/width it can reduce without an empty feature map

    def build(self) -> keras_hub.models.Backbone:
        return self.cls(**self.config, image_shape=IMAGE_SHAPE, name=BACKBONE_NAME)


def _resnet(blocks: list[int], block_type: str, imagenet_preset: str) -> BackboneArch:
    config = dict(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 128, 256, 512],
        stackwise_num_blocks=blocks,
        stackwise_num_strides=[1, 2, 2, 2],
        block_type=block_type,
    )
    return BackboneArch(keras_hub.models.ResNetBackbone, config, imagenet_preset)


def _vgg(repeats: list[int], imagenet_preset: str) -> BackboneArch:
    config = dict(stackwise_num_repeats=repeats, stackwise_num_filters=[64, 128, 256, 512, 512])
    return BackboneArch(keras_hub.models.VGGBackbone, config, imagenet_preset, min_side=2 ** len(repeats))


# KerasHub has no plain ResNet34 ImageNet preset; resnet_vd_34 has the same stages with a ResNet-D stem.
BACKBONES = {
    "vgg13": _vgg([2, 2, 2, 2, 2], "vgg_13_imagenet"),
    "vgg16": _vgg([2, 2, 3, 3, 3], "vgg_16_imagenet"),
    "vgg19": _vgg([2, 2, 4, 4, 4], "vgg_19_imagenet"),
    "resnet18": _resnet([2, 2, 2, 2], "basic_block", "resnet_18_imagenet"),
    "resnet34": _resnet([3, 4, 6, 3], "basic_block", "resnet_vd_34_imagenet"),
    "resnet50": _resnet([3, 4, 6, 3], "bottleneck_block", "resnet_50_imagenet"),
    "resnet101": _resnet([3, 4, 23, 3], "bottleneck_block", "resnet_101_imagenet"),
}


def _depth(config: dict[str, Any]) -> tuple:
    """What a preset must share with our table: blocks per stage and block kind (v2/vd variants allowed)."""
    if "stackwise_num_repeats" in config:
        return (tuple(config["stackwise_num_repeats"]),)
    return tuple(config["stackwise_num_blocks"]), config["block_type"].removesuffix("_vd")


def _preset_source(arch: BackboneArch, init: str) -> str:
    if init == IMAGENET:
        return arch.imagenet_preset
    if init in arch.cls.presets or "://" in init or Path(init).is_dir():
        return init
    raise UserError(
        f"init {init!r} is not 'scratch', '{IMAGENET}', a .weights.h5 file, an existing preset folder "
        f"or a KerasHub {arch.cls.__name__} preset ({', '.join(arch.cls.presets)})"
    )


def load_backbone(arch_name: str, init: str) -> keras_hub.models.Backbone:
    """The backbone named `backbone`: random weights for init 'scratch', else from a preset."""
    arch = BACKBONES[arch_name]
    if init == "scratch":
        return arch.build()
    source = _preset_source(arch, init)
    try:
        backbone = arch.cls.from_preset(
            source, image_shape=IMAGE_SHAPE, name=BACKBONE_NAME, dtype=keras.config.dtype_policy().name
        )
    except (ValueError, OSError, ImportError) as exc:
        raise UserError(f"cannot load preset {init!r} as a {arch_name} backbone: {first_line(exc)}") from exc
    if _depth(backbone.get_config()) != _depth(arch.config):
        raise UserError(
            f"preset {init!r} does not fit {arch_name}: it has {_depth(backbone.get_config())}, "
            f"{arch_name} needs {_depth(arch.config)}"
        )
    return backbone


def spectrogram_image(segment):
    """(frames, bins) -> (frames, bins, 3), the spectrogram repeated on the three colour channels."""
    single = add_channel(segment)
    return layers.Concatenate(name="to_rgb")([single, single, single])


def backbone_features(inputs, settings: BuildSettings, arch_name: str):
    """Log-mel segment -> 3-channel image -> backbone -> global average pool."""
    segment = inputs[SEGMENTS]
    min_side = BACKBONES[arch_name].min_side
    if min(segment.shape[1:]) < min_side:
        raise UserError(f"{arch_name} needs segments of at least {min_side} frames and bins, got {segment.shape[1:]}")
    features = load_backbone(arch_name, settings.init)(spectrogram_image(segment))
    return layers.GlobalAveragePooling2D(name="backbone_gap")(features)

