"""Load a trained run, and predict genres of audio files through its exported serving model."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import keras
import numpy as np

from gtzan_tf.config import Config
from gtzan_tf.errors import UserError
from gtzan_tf.models.ensemble import ensemble_model
from gtzan_tf.models.registry import build_for, run_inputs

SILENCE_RMS = 1e-4  # about -80 dBFS: below it a clip is silent or nearly so


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
        return run_inputs(self.cfg)

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
        weights = self.root / "best.weights.h5"
        try:
            model.load_weights(weights)
        except (OSError, ValueError):
            raise UserError(f"{weights} is damaged or incomplete; train the run again") from None
        return model


def load_run(run_dir: str | Path) -> TrainedRun:
    root = Path(run_dir)
    for name in ("config.json", "run.json"):
        if not (root / name).is_file():
            raise UserError(f"{root} is not a finished run folder (no {name}); train one with train.py --out {root}")
    try:
        summary = json.loads((root / "run.json").read_text())
        cfg = Config.load(root / "config.json")
    except ValueError:
        raise UserError(f"{root}: run.json or config.json is damaged or incomplete; train the run again") from None
    needed = {"genres", "runs"} if isinstance(summary, dict) and "runs" in summary else {"genres", "normalization"}
    if not isinstance(summary, dict) or not needed <= summary.keys():
        raise UserError(f"{root / 'run.json'} is damaged or incomplete; train the run again")
    if "runs" not in summary and "members" not in summary and not (root / "best.weights.h5").is_file():
        raise UserError(f"{root} has no best.weights.h5; the run did not finish an epoch")
    return TrainedRun(root, cfg, summary)


class Predictor:
    """Genre probabilities for waveforms at the run's sample rate, from its `serving/` SavedModel
    (the training frontend composed with the classifier), for the best seed of a multi-seed run."""

    def __init__(self, run: TrainedRun):
        import tensorflow as tf

        self.run = run = run.best_seed()
        self.cfg = run.cfg
        serving = run.root / "serving"
        if not (serving / "saved_model.pb").is_file():
            raise UserError(f"{run.root} has no serving/ export; write it with `python -m gtzan_tf.export {run.root}`")
        try:
            self._serve = tf.saved_model.load(str(serving)).signatures["serving_default"]
        except Exception:  # TensorFlow reports a damaged SavedModel with many error types
            raise UserError(f"{serving} is damaged or incomplete; export it again with "
                            f"`python -m gtzan_tf.export {run.root}`") from None

    def serve(self, y: np.ndarray) -> dict[str, np.ndarray]:
        """The serving model's outputs for a mono waveform at the run's sample rate."""
        out = self._serve(waveform=np.asarray(y, np.float32))
        return {name: value.numpy() for name, value in out.items()}

    def predict_waveform(self, y: np.ndarray) -> dict:
        """The clip's genre probabilities (best first), each segment's (`predict.py --segments`'s
        timeline), and `silent`: whether the audio is too quiet for its genre to mean anything."""
        out = self.serve(y)
        probs, segments = out["probabilities"], out["segment_probabilities"]
        order = np.argsort(-probs)
        return {
            "genre": self.run.genres[order[0]],
            "probabilities": {self.run.genres[i]: float(probs[i]) for i in order},
            "segments": [
                {"start_s": k * self.cfg.features.segment_seconds(self.cfg.audio.sample_rate),
                 "genre": self.run.genres[int(p.argmax())], "probability": float(p.max()),
                 "probabilities": dict(zip(self.run.genres, map(float, p)))}
                for k, p in enumerate(segments)
            ],
            "silent": float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) < SILENCE_RMS,
        }

    def predict_file(self, path: str | Path) -> dict:
        """The prediction for one file."""
        from gtzan_tf.data.audio import load_audio

        return {"file": str(path), **self.predict_waveform(load_audio(path, self.cfg.audio))}
