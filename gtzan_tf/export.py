"""Export a run: `python -m gtzan_tf.export RUN_DIR`.

Writes two SavedModels:
- `RUN_DIR/saved_model/`: the Keras classifier itself (`model.export()`): standardised segment
  features (+ clip embeddings) in, segment probabilities out.
- `RUN_DIR/serving/`: self-contained. Its one signature takes a mono float32 waveform of any
  length at the run's `audio.sample_rate` and returns the genre probabilities and labels. It is
  the training frontend (`features.frontend.ClipFrontend`: repeat-pad, log-mel/MFCC/chroma,
  segments, musicnn embeddings) composed with the classifier, so any TensorFlow runtime
  (TF Serving, tf.saved_model.load) computes what training saw, without this package.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import keras
import tensorflow as tf

from gtzan_tf.config import EMBEDDING_INPUTS, Config
from gtzan_tf.errors import cli, tensorflow_io_errors
from gtzan_tf.files import folder_lock, replace_dir
from gtzan_tf.features.frontend import ClipFrontend, classifier_inputs
from gtzan_tf.features.layers import Standardize
from gtzan_tf.inference import load_run
from gtzan_tf.models.registry import run_inputs


class GenreServing(tf.Module):
    """waveform (samples,) at `cfg.audio.sample_rate` -> {"probabilities": (C,), "genres": (C,),
    "segment_probabilities": (segments, C)}: ClipFrontend -> classifier_inputs -> classifier."""

    def __init__(self, cfg: Config, classifier: keras.Model, genres: list[str], normalization: tuple[float, float]):
        super().__init__(name="genre_serving")
        self.input_names = run_inputs(cfg)
        self.segment_input = cfg.features.kind
        embeddings = tuple(model for model, name in EMBEDDING_INPUTS.items() if name in self.input_names)
        self.frontend = ClipFrontend(cfg, embeddings)
        self.standardize = Standardize(*normalization)
        self.classifier = classifier
        self.genres = tf.constant(genres)
        self.sample_rate = tf.constant(cfg.audio.sample_rate)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="waveform")])
    def serve(self, waveform):
        inputs = classifier_inputs(self.frontend(waveform), self.segment_input, self.input_names, self.standardize)
        # Plain graph ops, not one XLA cluster: the classifier's segment branch runs while musicnn does.
        segment_probs = tf.cast(self.classifier(inputs, training=False), tf.float32)
        return {
            "probabilities": tf.reduce_mean(segment_probs, axis=0),
            "genres": self.genres,
            "segment_probabilities": segment_probs,
        }


def export_run(run_dir: str | Path, model: keras.Model | None = None) -> None:
    """Write RUN_DIR/saved_model and RUN_DIR/serving (replacing older exports atomically)."""
    run = load_run(run_dir)
    model = model or run.model
    with tensorflow_io_errors(run.root / "saved_model"):
        replace_dir(run.root / "saved_model", lambda tmp: model.export(str(tmp), format="tf_saved_model", verbose=False))
    module = GenreServing(run.cfg, model, run.genres, run.normalization)
    with tensorflow_io_errors(run.root / "serving"):
        replace_dir(run.root / "serving",
                    lambda tmp: tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.serve}))


def export_trained(run_dir: str | Path) -> list[Path]:
    """Export every seed run of a finished train.py run (the run itself when it has one seed)."""
    exported = []
    for seed_run in load_run(run_dir).seed_runs:
        export_run(seed_run.root)
        exported.append(seed_run.root)
    return exported


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, metavar="RUN_DIR")
    return p


@cli
def main(argv=None):
    args = build_parser().parse_args(argv)
    with folder_lock(args.run):
        export_run(args.run)
    print(f"exported {args.run / 'saved_model'} and {args.run / 'serving'}")


if __name__ == "__main__":
    main()
