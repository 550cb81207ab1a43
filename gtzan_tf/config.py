"""The one source of truth for every audio, feature, segment, augmentation and training parameter.

Defaults reproduce the reference recipe (16 kHz mono, n_fft 1024, hop 512, 96 mels, 125-frame
segments of 4 s, one augmented copy per training clip). Every output folder gets a copy of the
config it was made with (`config.json`), and `Config.from_dict` reads it back.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gtzan_tf.errors import UserError
from gtzan_tf.files import write_json
from gtzan_tf.musicnn.params import PARAMS as MUSICNN  # a leaf module of constants (no imports)

# Model input names, defined here only. The time-frequency segments (role SEGMENTS) are fed under
# the name of their feature kind; each musicnn model's clip embedding under EMBEDDING_INPUTS[model].
# Kind "musicnn": the segments are musicnn's own 3 s patches (16 kHz, log-compressed mel), fed raw
# (not standardised), as the pretrained network expects them.
FEATURE_KINDS = ("logmel", "mfcc", "chroma", "musicnn")
RAW_KINDS = ("musicnn",)
SEGMENTS = "segments"
EMBEDDING_INPUTS = {"MSD_musicnn": "msd_embedding", "MTT_musicnn": "mtt_embedding"}
EMBEDDING_MODELS = tuple(EMBEDDING_INPUTS)


@dataclass(frozen=True)
class AudioConfig:
    """Decoding: every clip becomes mono float32 at `sample_rate`."""

    sample_rate: int = 16000
    min_seconds: float = 1.0
    resample_type: str = "soxr_hq"


@dataclass(frozen=True)
class FeatureConfig:
    """Time-frequency features and their segmentation into fixed-length segments."""

    kind: str = "logmel"
    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 96
    n_mfcc: int = 20
    n_chroma: int = 12
    top_db: float = 80.0
    segment_frames: int = 125
    max_segments: int | None = None

    @property
    def n_bins(self) -> int:
        """Feature bins per frame for the selected kind."""
        return {"logmel": self.n_mels, "mfcc": self.n_mfcc, "chroma": self.n_chroma, "musicnn": MUSICNN.n_mels}[self.kind]

    @property
    def segment_shape(self) -> tuple[int, int]:
        """(frames, bins) of one segment (musicnn: its fixed 187 x 96 patch)."""
        return MUSICNN.patch_shape if self.kind == "musicnn" else (self.segment_frames, self.n_bins)

    @property
    def segment_samples(self) -> int:
        """Fewest waveform samples that give one whole segment (centred STFT)."""
        return (self.segment_frames - 1) * self.hop_length

    def segment_seconds(self, sample_rate: int) -> float:
        if self.kind == "musicnn":
            return MUSICNN.patch_frames * MUSICNN.hop_length / MUSICNN.sample_rate
        return self.segment_frames * self.hop_length / sample_rate


@dataclass(frozen=True)
class AugmentConfig:
    """Offline waveform augmentation (audiomentations), applied to `splits` only, never to test."""

    copies: int = 1
    seed: int = 0
    splits: tuple[str, ...] = ("train", "valid")
    noise_std: float = 0.0025
    noise_p: float = 1.0
    shift_max_samples: int = 8000
    shift_p: float = 1.0
    stretch_min_rate: float = 0.8
    stretch_max_rate: float = 1.1
    stretch_p: float = 1.0
    pitch_semitones: float = 2.0
    pitch_p: float = 0.3
    gain_db: float = 6.0
    gain_p: float = 0.5


@dataclass(frozen=True)
class DataConfig:
    """Dataset index: validation hold-out and the clip embeddings stored with each record."""

    validation_per_genre: int = 5
    split_seed: int = 0
    embeddings: tuple[str, ...] = EMBEDDING_MODELS
    clips_per_shard: int = 16


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (train.py flags map onto these fields)."""

    model: str = "resnet34_msd"
    epochs: int = 100
    batch_size: int = 32
    eval_batch_size: int = 16
    learning_rate: float = 1e-4
    schedule: str = "constant"
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    l1: float = 0.0
    l2: float = 0.0
    dropout: float = 0.0
    label_smoothing: float = 0.0
    seed: int = 0
    seeds: int = 1
    init: str = "scratch"
    fusion: str = "reference"
    freeze_backbone_epochs: int = 0
    finetune_lr_factor: float = 1.0  # learning rate x this once the backbone is unfrozen
    # Small-data regularisation, active in training only; zeros reproduce the reference recipe.
    time_masks: int = 0  # SpecAugment masks on the segment input, each up to the width below
    time_mask_frames: int = 20
    freq_masks: int = 0
    freq_mask_bins: int = 12
    mixup_alpha: float = 0.0  # mixup of segment batches (inputs and labels), Beta(alpha, alpha)
    branch_dropout: float = 0.0  # two-branch models: drop the whole spectrogram branch of a sample
    early_stopping_patience: int = 20
    reduce_lr_patience: int = 8
    shuffle_buffer: int = 2048
    mixed_precision: bool | None = None
    jit: bool = False
    strategy: str = "auto"


SECTIONS = {
    "audio": AudioConfig,
    "features": FeatureConfig,
    "augment": AugmentConfig,
    "data": DataConfig,
    "train": TrainConfig,
}


@dataclass(frozen=True)
class Config:
    audio: AudioConfig = field(default_factory=AudioConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        if self.features.kind not in FEATURE_KINDS:
            raise UserError(f"unknown feature kind {self.features.kind!r}: choose one of {', '.join(FEATURE_KINDS)}")
        unknown = set(self.data.embeddings) - set(EMBEDDING_MODELS)
        if unknown:
            raise UserError(f"unknown embedding model(s) {sorted(unknown)}: choose from {', '.join(EMBEDDING_MODELS)}")
        if "test" in self.augment.splits:
            raise UserError("augmentation must never touch the test split: remove 'test' from augment.splits")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Config":
        sections = {}
        for name, section_cls in SECTIONS.items():
            values = dict(data.get(name, {}))
            known = {f.name: f for f in dataclasses.fields(section_cls)}
            for key, value in values.items():
                if key not in known:
                    raise UserError(f"unknown config key {name}.{key}")
                if isinstance(value, list):
                    values[key] = tuple(value)
            sections[name] = section_cls(**values)
        return cls(**sections)

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_dict())

    def replace(self, **sections: dict[str, Any]) -> "Config":
        """A copy with some fields changed, e.g. `cfg.replace(train={"epochs": 3})`."""
        changed = {
            name: dataclasses.replace(getattr(self, name), **values) for name, values in sections.items()
        }
        return dataclasses.replace(self, **changed)

    def with_overrides(self, assignments: list[str]) -> "Config":
        """Apply `section.key=value` strings from the command line (`--set features.n_mels=128`)."""
        data = self.to_dict()
        for item in assignments:
            if "=" not in item or "." not in item.split("=", 1)[0]:
                raise UserError(f"bad --set {item!r}: expected section.key=value, e.g. features.n_mels=128")
            key, raw = item.split("=", 1)
            section, name = key.split(".", 1)
            if section not in data or name not in data[section]:
                raise UserError(f"unknown config key {key!r}")
            data[section][name] = _parse_value(raw, data[section][name])
        return Config.from_dict(data)

    def feature_fingerprint(self) -> str:
        """Hash of everything that changes prepared features (not training settings)."""
        payload = {k: v for k, v in self.to_dict().items() if k != "train"}
        payload["data"] = {k: v for k, v in payload["data"].items() if k != "clips_per_shard"}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _parse_value(raw: str, current: Any) -> Any:
    if isinstance(current, bool) or current is None and raw.lower() in ("true", "false"):
        return raw.lower() in ("1", "true", "yes", "on")
    if isinstance(current, (tuple, list)):
        return tuple(x for x in raw.split(",") if x)
    if current is None and raw.lower() == "none":
        return None
    try:
        return type(current)(raw) if current is not None else json.loads(raw)
    except ValueError as exc:
        raise UserError(f"bad value {raw!r} for a {type(current).__name__} setting") from exc
