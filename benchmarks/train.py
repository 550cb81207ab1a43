"""Training speed on this machine: resnet34_msd (log-mel segments) and musicnn_msd fine-tuning
(every layer trainable, musicnn patches), in one run, and whether the input pipeline keeps up.

    python benchmarks/train.py [--batch-size 32] [--steps 12] [--models resnet34_msd musicnn_msd]

Prints, per model, segments (or patches)/s and the median step time when batches come from the
tf.data pipeline over the prepared TFRecord shards against the median step time on the same
batches held in memory as tensors (target ratio <= 1.05: the pipeline must never be the
bottleneck), and the forward FLOPs per segment (TensorFlow's graph profiler, training mode), from
which docs/speed.md estimates GPU fine-tuning costs.
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
from gtzan_tf.models.registry import build_model, get_spec, model_inputs, set_backbone_trainable
from gtzan_tf.prepare import prepare
from gtzan_tf.synth import generate_dataset


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


def forward_flops(model: keras.Model, inputs: dict) -> float:
    """FLOPs of one training-mode forward pass on `inputs` (one segment each)."""
    spec = {name: tf.TensorSpec(x.shape, x.dtype) for name, x in inputs.items()}
    graph = tf.function(lambda x: model(x, training=True)).get_concrete_function(spec).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return float(tf.compat.v1.profiler.profile(graph, options=options).total_float_ops)


def benchmark(name: str, data: Path, root: Path, batch_size: int, steps: int) -> dict:
    kind = get_spec(name).feature_kind or "logmel"
    cfg = Config().replace(features={"kind": kind}, data={"validation_per_genre": 2, "embeddings": ("MSD_musicnn",)})
    prepare(data, root / f"features-{kind}", cfg, progress=False)
    fs = load_feature_set(root / f"features-{kind}")
    inputs = model_inputs(name, kind)
    model = build_model(name, segment_shape=fs.segment_shape, n_classes=len(fs.genres), feature_kind=kind)
    if get_spec(name).has_backbone:
        set_backbone_trainable(model, True)  # fine-tuning: every layer trains (batch norm as the model says)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    pipeline = segment_dataset(fs, "train", inputs, batch_size, seed=0).repeat()
    batches = list(pipeline.take(steps))
    in_memory = tf.data.Dataset.from_tensor_slices(
        ({k: tf.stack([b[0][k] for b in batches]) for k in inputs}, tf.stack([b[1] for b in batches]))
    ).repeat()
    median_step(model, in_memory, 3)  # trace once before timing either
    rows = []
    for _ in range(3):  # interleave the two measurements so machine load affects both alike
        rows.append((median_step(model, pipeline, steps), median_step(model, in_memory, steps)))
    one = {k: v[:1] for k, v in batches[0][0].items()}
    return {"model": name, "segment": fs.segment_shape, "pipe": statistics.median(r[0] for r in rows),
            "mem": statistics.median(r[1] for r in rows), "flops": forward_flops(model, one)}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--models", nargs="+", default=["resnet34_msd", "musicnn_msd"])
    return p


def main():
    args = build_parser().parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = generate_dataset(Path(tmp) / "gtzan", clips_per_genre=8, seconds=12.0, seed=0, progress=False)
        results = [benchmark(name, data, Path(tmp), args.batch_size, args.steps) for name in args.models]
    threads = tf.config.threading.get_intra_op_parallelism_threads() or "default"
    print(f"batch {args.batch_size}, CPU threads {threads}")
    print("| model | segment | tf.data step (ms) | segments/s | in-memory step (ms) | segments/s | ratio | forward GFLOPs/segment |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        b = args.batch_size
        print(f"| {r['model']} | {r['segment'][0]}x{r['segment'][1]} | {r['pipe'] * 1000:.1f} | {b / r['pipe']:.1f} | "
              f"{r['mem'] * 1000:.1f} | {b / r['mem']:.1f} | {r['pipe'] / r['mem']:.3f} | {r['flops'] / 1e9:.2f} |")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
