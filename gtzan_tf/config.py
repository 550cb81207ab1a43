"""The one source of truth for every audio, feature, segment, augmentation and training parameter.

Defaults reproduce the reference recipe (16 kHz mono, n_fft 1024, hop 512, 96 mels, 125-frame
segments of 4 s, one augmented copy per training clip). Every output folder gets a copy of the
config it was made with (`config.json`), and `Config.from_dict` reads it back.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gtzan_tf.errors import UserError
from gtzan_tf.files import write_json

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
class MusicnnParams:
    """Signal processing and patching of the original musicnn 0.1.0 (configuration.py)."""

    sample_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 96
    patch_frames: int = 187  # 3 s: librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1
    embedding_size: int = 753  # 561 front-end + 3 x 64 mid-end channels, pooled over time
    log_scale: float = 10000.0  # spectrogram = log10(log_scale * mel + 1)

    @property
    def patch_shape(self) -> tuple[int, int]:
        """(frames, mels) of one network input."""
        return (self.patch_frames, self.n_mels)


MUSICNN = MusicnnParams()


class Section:
    """A config section: its fields are type-checked, then `check_ranges` runs (both at construction)."""

    def __post_init__(self):
        name = SECTION_NAMES[type(self)]
        for f in dataclasses.fields(self):
            _check_type(f"{name}.{f.name}", getattr(self, f.name), typing.get_type_hints(type(self))[f.name])
        for key, ok, rule in self.check_ranges():
            if not ok:
                raise UserError(f"{name}.{key} must be {rule}, got {getattr(self, key)!r}")

    def check_ranges(self) -> list[tuple[str, bool, str]]:
        """(field, whether its value is allowed, the rule in words) for every constrained field."""
        return []


def _positive(value) -> bool:
    return math.isfinite(value) and value > 0


def _fraction(value, closed: bool = True) -> bool:
    return math.isfinite(value) and 0 <= value and (value <= 1 if closed else value < 1)


def _at_least(value, low) -> bool:
    return math.isfinite(value) and value >= low


TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null"}


def _type_options(hint: Any) -> tuple:
    """The types a field accepts: `int | None` -> (int, NoneType)."""
    return typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)


def _type_words(options: tuple) -> str:
    return " or ".join("a list of names" if typing.get_origin(o) is tuple else TYPE_WORDS[o] for o in options)


def _check_type(key: str, value: Any, hint: Any) -> None:
    """One clear line when `value` (from --set or a config.json) is not of the field's type."""
    options = _type_options(hint)
    for option in options:
        if option is type(None) and value is None:
            return
        if typing.get_origin(option) is tuple and isinstance(value, tuple) and all(isinstance(v, str) for v in value):
            return
        if option is bool and isinstance(value, bool):
            return
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return
        if option is str and isinstance(value, str):
            return
    shown = list(value) if isinstance(value, tuple) else value  # as written in JSON
    raise UserError(f"{key} must be {_type_words(options)}, got {shown!r}")


@dataclass(frozen=True)
class AudioConfig(Section):
    """Decoding: every clip becomes mono float32 at `sample_rate`."""

    sample_rate: int = 16000
    min_seconds: float = 1.0
    resample_type: str = "soxr_hq"

    def check_ranges(self):
        return [("sample_rate", 1000 <= self.sample_rate <= 192000, "in 1000..192000 Hz"),
                ("min_seconds", _positive(self.min_seconds), "a finite number > 0")]


@dataclass(frozen=True)
class FeatureConfig(Section):
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

    def frames(self, samples: int) -> int:
        """Frames of the centred STFT of `samples` waveform samples (the inverse of `segment_samples`)."""
        return 1 + samples // self.hop_length

    def segment_seconds(self, sample_rate: int) -> float:
        if self.kind == "musicnn":
            return MUSICNN.patch_frames * MUSICNN.hop_length / MUSICNN.sample_rate
        return self.segment_frames * self.hop_length / sample_rate

    def check_ranges(self):
        at_least_1 = "an integer >= 1"
        return [("kind", self.kind in FEATURE_KINDS, f"one of {', '.join(FEATURE_KINDS)}"),
                ("n_fft", self.n_fft >= 16, "an integer >= 16"),
                ("hop_length", self.hop_length >= 1, at_least_1),
                ("n_mels", 1 <= self.n_mels <= self.n_fft // 2 + 1, f"in 1..{self.n_fft // 2 + 1} (n_fft / 2 + 1)"),
                ("n_mfcc", 1 <= self.n_mfcc <= self.n_mels, f"in 1..{self.n_mels} (n_mels)"),
                ("n_chroma", self.n_chroma >= 1, at_least_1),
                ("top_db", _positive(self.top_db), "a finite number > 0"),
                ("segment_frames", self.segment_frames >= 1, at_least_1),
                ("max_segments", self.max_segments is None or self.max_segments >= 1, "null or an integer >= 1")]


@dataclass(frozen=True)
class AugmentConfig(Section):
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

    def check_ranges(self):
        probability = "a probability in [0, 1]"
        return [("copies", self.copies >= 0, "an integer >= 0"),
                ("splits", "test" not in self.splits, "train and/or valid only: augmentation must never touch the test split"),
                *((key, _fraction(getattr(self, key)), probability) for key in ("noise_p", "shift_p", "stretch_p", "pitch_p", "gain_p")),
                *((key, _at_least(getattr(self, key), 0), "a finite number >= 0")
                  for key in ("noise_std", "shift_max_samples", "pitch_semitones", "gain_db")),
                ("stretch_min_rate", _positive(self.stretch_min_rate), "a finite number > 0"),
                ("stretch_max_rate", _at_least(self.stretch_max_rate, self.stretch_min_rate), "a finite number >= stretch_min_rate")]


@dataclass(frozen=True)
class DataConfig(Section):
    """Dataset index: validation hold-out and the clip embeddings stored with each record.

    The hold-out takes `validation_fraction` of every genre's training clips (rounded), at least
    `validation_per_genre`, at most half of them, so a genre with few clips still trains.
    """

    validation_fraction: float = 0.07
    validation_per_genre: int = 1
    split_seed: int = 0
    embeddings: tuple[str, ...] = EMBEDDING_MODELS
    clips_per_shard: int = 16

    def check_ranges(self):
        unknown = sorted(set(self.embeddings) - set(EMBEDDING_MODELS))
        return [("validation_fraction", _fraction(self.validation_fraction, closed=False), "in [0, 1)"),
                ("validation_per_genre", self.validation_per_genre >= 0, "an integer >= 0"),
                ("embeddings", not unknown, f"a list from {', '.join(EMBEDDING_MODELS)}"),
                ("clips_per_shard", self.clips_per_shard >= 1, "an integer >= 1")]


@dataclass(frozen=True)
class TrainConfig(Section):
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
    folds: int = 1
    refit: bool = False
    monitor: str = "val_clip_loss"
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
    # Gated two-branch models: train the embedding branch alone for up to N epochs first (0: off).
    embedding_epochs: int = 0
    early_stopping_patience: int = 20
    reduce_lr_patience: int = 8
    shuffle_buffer: int = 2048
    mixed_precision: bool | None = None
    jit: bool = False
    strategy: str = "auto"
    # --strategy multiworker: how long a worker waits for every worker of TF_CONFIG to start.
    worker_timeout_seconds: float = 300.0

    def check_ranges(self):
        at_least_1, at_least_0 = "an integer >= 1", "an integer >= 0"
        return [("epochs", self.epochs >= 1, at_least_1),
                ("batch_size", self.batch_size >= 1, at_least_1),
                ("eval_batch_size", self.eval_batch_size >= 1, at_least_1),
                ("seeds", self.seeds >= 1, at_least_1),
                ("folds", self.folds >= 1, at_least_1),
                ("learning_rate", _positive(self.learning_rate), "a finite number > 0"),
                ("momentum", _fraction(self.momentum, closed=False), "in [0, 1)"),
                ("dropout", _fraction(self.dropout, closed=False), "in [0, 1)"),
                ("label_smoothing", _fraction(self.label_smoothing, closed=False), "in [0, 1)"),
                *((key, _at_least(getattr(self, key), 0), "a finite number >= 0") for key in ("weight_decay", "l1", "l2")),
                *((key, getattr(self, key) >= 0, at_least_0)
                  for key in ("freeze_backbone_epochs", "early_stopping_patience", "reduce_lr_patience",
                              "time_masks", "freq_masks", "embedding_epochs")),
                *((key, getattr(self, key) >= 1, at_least_1) for key in ("time_mask_frames", "freq_mask_bins")),
                ("finetune_lr_factor", _positive(self.finetune_lr_factor) and self.finetune_lr_factor <= 1,
                 "in (0, 1]"),
                ("mixup_alpha", _at_least(self.mixup_alpha, 0), "a finite number >= 0"),
                ("branch_dropout", _fraction(self.branch_dropout, closed=False), "in [0, 1)"),
                ("shuffle_buffer", self.shuffle_buffer >= 1, at_least_1),
                ("worker_timeout_seconds", _positive(self.worker_timeout_seconds), "a finite number > 0")]


SECTIONS = {
    "audio": AudioConfig,
    "features": FeatureConfig,
    "augment": AugmentConfig,
    "data": DataConfig,
    "train": TrainConfig,
}
SECTION_NAMES = {cls: name for name, cls in SECTIONS.items()}


@dataclass(frozen=True)
class Config:
    audio: AudioConfig = field(default_factory=AudioConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "Config":
        """The config of a JSON object of sections; one line for anything else (unknown section or key,
        a section that is not an object, a value of the wrong type or out of range)."""
        if not isinstance(data, dict):
            raise UserError(f"a config is a JSON object of sections ({', '.join(SECTIONS)}), got {_json_kind(data)}")
        unknown = sorted(set(data) - set(SECTIONS))
        if unknown:
            raise UserError(f"unknown config section {unknown[0]!r}: the sections are {', '.join(SECTIONS)}")
        sections = {}
        for name, section_cls in SECTIONS.items():
            values = data.get(name, {})
            if not isinstance(values, dict):
                raise UserError(f"config section {name!r} must be an object of settings, got {_json_kind(values)}")
            known = {f.name for f in dataclasses.fields(section_cls)}
            for key in values:
                if key not in known:
                    raise UserError(f"unknown config key {name}.{key}")
            sections[name] = section_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
        return cls(**sections)

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        """A config.json; one line naming the file for text that is not JSON or not a config."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise UserError(f"{path} is not a config: not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise UserError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        try:
            return cls.from_dict(data)
        except UserError as exc:
            raise UserError(f"{path}: {exc}") from None

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
            if section not in data:
                raise UserError(f"unknown config section {section!r} in --set {item}: the sections are {', '.join(SECTIONS)}")
            if name not in data[section]:
                raise UserError(f"unknown config key {key!r}")
            data[section][name] = _parse_value(key, raw, typing.get_type_hints(SECTIONS[section])[name])
        return Config.from_dict(data)

    def feature_fingerprint(self) -> str:
        """Hash of everything that changes prepared features (not training settings)."""
        payload = {k: v for k, v in self.to_dict().items() if k != "train"}
        payload["data"] = {k: v for k, v in payload["data"].items() if k != "clips_per_shard"}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PageConfig:
    """The model page (`python -m gtzan_tf.app`): where it listens and what one request may cost.
    Not part of a run's Config: the same run can be served with other limits."""

    host: str = "127.0.0.1"  # this machine only; 0.0.0.0 (e.g. in Docker) to serve others
    port: int = 7860
    max_minutes: float = 10.0  # a longer song is analysed from its start to here
    max_upload_mb: int = 100  # about 10 minutes of CD-quality WAV
    concurrency: int = 1  # requests analysed at once, all by the one model in memory
    queue_size: int = 64  # requests waiting beyond this are turned away


def _json_kind(value: Any) -> str:
    """What a JSON value is, in words: `a list`, `a string`, ..."""
    return {**TYPE_WORDS, dict: "an object", list: "a list"}.get(type(value), type(value).__name__)


def _parse_value(key: str, raw: str, hint: Any) -> Any:
    """A --set value as the field's type: true/false (any case), null or none for an optional field,
    a comma-separated list for a list of names, else an integer, number or string."""
    options = _type_options(hint)
    word = raw.strip().lower()
    if type(None) in options and word in ("null", "none"):
        return None
    if bool in options and word in ("true", "false"):
        return word == "true"
    if any(typing.get_origin(o) is tuple for o in options):
        return tuple(x for x in raw.split(",") if x)
    for option in (int, float, str):
        if option in options:
            try:
                return option(raw)
            except ValueError:
                pass
    raise UserError(f"bad value {raw!r} for {key}: expected {_type_words(options)}")
