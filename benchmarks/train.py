"""Training speed of resnet34_msd on this machine, and whether the input pipeline keeps up.

    python benchmarks/train.py [--batch-size 32] [--steps 12]

Prints segments/s, and the median step time when batches come from the tf.data pipeline over the
prepared TFRecord shards against the median step time on the same batches held in memory as
tensors (target ratio <= 1.05: the pipeline must never be the bottleneck).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import gtzan_tf  # noqa: F401  before TensorFlow: turns oneDNN on, as the entry points do
import keras
import numpy as np
import tensorflow as tf

from gtzan_tf.config import Config
from gtzan_tf.data.pipeline import load_feature_set, segment_dataset
from gtzan_tf.models.registry import build_model, model_inputs
from gtzan_tf.prepare import prepare
from gtzan_tf.synth import generate_dataset

MODEL = "resnet34_msd"


class StepTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self.start)


def median_step(model, data, steps: int) -> float:
    timer = StepTimer()
    model.fit(data, epochs=1, steps_per_epoch=steps, callbacks=[timer], verbose=0)
    return statistics.median(timer.times[2:])  # the first steps include tracing


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=12)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = generate_dataset(Path(tmp) / "gtzan", clips_per_genre=8, seconds=12.0, seed=0, progress=False)
        cfg = Config().replace(data={"validation_per_genre": 2, "embeddings": ("MSD_musicnn",)})
        prepare(data, Path(tmp) / "features", cfg, progress=False)
        fs = load_feature_set(Path(tmp) / "features")
        inputs = model_inputs(MODEL)
        model = build_model(MODEL, segment_shape=fs.segment_shape, n_classes=len(fs.genres))
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        pipeline = segment_dataset(fs, "train", inputs, args.batch_size, seed=0).repeat()
        batches = list(pipeline.take(args.steps))
        in_memory = tf.data.Dataset.from_tensor_slices(
            ({k: tf.stack([b[0][k] for b in batches]) for k in inputs}, tf.stack([b[1] for b in batches]))
        ).repeat()
        median_step(model, in_memory, 3)  # trace once before timing either
        rows = []
        for _ in range(3):  # interleave the two measurements so machine load affects both alike
            rows.append((median_step(model, pipeline, args.steps), median_step(model, in_memory, args.steps)))
        pipe = statistics.median(r[0] for r in rows)
        mem = statistics.median(r[1] for r in rows)
        print(f"model {MODEL}, batch {args.batch_size}, segment {fs.segment_shape}, CPU threads {tf.config.threading.get_intra_op_parallelism_threads() or 'default'}")
        print(f"median step, tf.data pipeline : {pipe * 1000:8.1f} ms  ({args.batch_size / pipe:6.1f} segments/s)")
        print(f"median step, in-memory tensors: {mem * 1000:8.1f} ms  ({args.batch_size / mem:6.1f} segments/s)")
        print(f"pipeline / in-memory ratio    : {pipe / mem:8.3f}  (target <= 1.05)")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
