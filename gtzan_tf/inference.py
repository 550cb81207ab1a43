"""Load a trained run and predict genres of audio files (the librosa feature path of training)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import keras
import numpy as np

from gtzan_tf.config import EMBEDDING_INPUTS, Config
from gtzan_tf.errors import UserError
from gtzan_tf.models.ensemble import ensemble_model
from gtzan_tf.models.registry import build_for, model_inputs
from gtzan_tf.musicnn.embedding import embed_clips, load_embedders


@dataclass(frozen=True)
class TrainedRun:
    """A run folder written by train.py: its config, summary and best weights (or, for a
    cross-validated run, the fold runs whose ensemble it is)."""

    root: Path
    cfg: Config
    summary: dict

    @property
    def genres(self) -> list[str]:
        return self.summary["genres"]

    @property
    def inputs(self) -> tuple[str, ...]:
        return model_inputs(self.cfg.train.model)

    @property
    def normalization(self) -> tuple[float, float]:
        return self.summary["normalization"]["mean"], self.summary["normalization"]["std"]

    @property
    def seed_runs(self) -> list["TrainedRun"]:
        """The per-seed runs of a multi-seed run, or [self]."""
        return [load_run(self.root / name) for name in self.summary.get("runs", [])] or [self]

    @property
    def members(self) -> list["TrainedRun"]:
        """The fold runs of a cross-validated (ensemble) run, or []."""
        return [load_run(self.root / name) for name in self.summary.get("members", [])]

    def best_seed(self) -> "TrainedRun":
        """The seed run with the best validation clip accuracy (self for a single run)."""
        return max(self.seed_runs, key=lambda run: run.summary["valid_clip_accuracy"])

    @cached_property
    def model(self) -> keras.Model:
        """The registry's architecture with the best weights (no download: init is scratch); for a
        cross-validated run, the ensemble of its fold models (mean of their probabilities), or the
        model refit on all training clips when it was trained with --refit."""
        if self.summary.get("refit"):
            return load_run(self.root / self.summary["refit"]).model
        if self.members:
            return ensemble_model([member.model for member in self.members], name=f"{self.cfg.train.model}_ensemble")
        model = build_for(self.cfg, len(self.genres), init="scratch")
        model.load_weights(self.root / "best.weights.h5")
        return model


def load_run(run_dir: str | Path) -> TrainedRun:
    root = Path(run_dir)
    for name in ("config.json", "run.json"):
        if not (root / name).is_file():
            raise UserError(f"{root} is not a finished run folder (no {name}); train one with train.py --out {root}")
    summary = json.loads((root / "run.json").read_text())
    if "runs" not in summary and "members" not in summary and not (root / "best.weights.h5").is_file():
        raise UserError(f"{root} has no best.weights.h5; the run did not finish an epoch")
    return TrainedRun(root, Config.load(root / "config.json"), summary)


class Predictor:
    """Genre probabilities for waveforms: features, segments, embeddings, mean over segments."""

    def __init__(self, run: TrainedRun):
        self.run = run = run.best_seed()
        self.cfg = run.cfg
        self.embedders = load_embedders(tuple(m for m, name in EMBEDDING_INPUTS.items() if name in run.inputs))

    def model_inputs(self, y: np.ndarray) -> dict[str, np.ndarray]:
        """The model's inputs for a 16 kHz mono waveform (one row per segment)."""
        from gtzan_tf.data.audio import repeat_pad
        from gtzan_tf.features.spectral import compute_features, segment

        y = repeat_pad(y, self.cfg.features.segment_samples)
        mean, std = self.run.normalization
        segments = segment(compute_features(y, self.cfg.audio.sample_rate, self.cfg.features), self.cfg.features)
        inputs = {"logmel": (segments - mean) / std}
        for name, vectors in embed_clips(self.embedders, [y], self.cfg.audio.sample_rate).items():
            inputs[name] = np.repeat(vectors, len(segments), axis=0)
        return {k: v.astype(np.float32) for k, v in inputs.items() if k in self.run.inputs}

    def segment_probabilities(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(self.run.model.predict(self.model_inputs(y), verbose=0), np.float64)

    def predict_waveform(self, y: np.ndarray) -> dict:
        segments = self.segment_probabilities(y)
        probs = segments.mean(axis=0)
        order = np.argsort(-probs)
        return {
            "genre": self.run.genres[order[0]],
            "probabilities": {self.run.genres[i]: float(probs[i]) for i in order},
            "segments": [
                {"start_s": k * self.cfg.features.segment_seconds(self.cfg.audio.sample_rate),
                 "genre": self.run.genres[int(p.argmax())], "probability": float(p.max())}
                for k, p in enumerate(segments)
            ],
        }

    def predict_file(self, path: str | Path) -> dict:
        from gtzan_tf.data.audio import load_audio

        return {"file": str(path), **self.predict_waveform(load_audio(path, self.cfg.audio))}
