"""What batching several clips into one frontend call would save: musicnn's cost per clip at 1 to 8 clips a call.

    python benchmarks/frontend_batch.py [--seconds 30] [--clips 1 2 4 8] [--repeats 5]

prepare runs the frontend once per clip version; each call already sends the clip's 3 s musicnn
patches through each network as one batch. This times each musicnn network (the frontend's main
cost) on the patches of 1, 2, 4 and 8 clips in one call, beside the whole frontend per clip (log-mel
and both embeddings), and prints the share of the frontend that batching would save and whether the
batched outputs equal the unbatched ones. Medians of `--repeats`, this machine's CPU threads.
"""
from __future__ import annotations

import argparse
import statistics
import time

from gtzan_tf import import_tensorflow_quietly


def median_seconds(fn, repeats: int) -> float:
    fn()  # trace and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=30.0, help="clip length")
    p.add_argument("--clips", type=int, nargs="+", default=[1, 2, 4, 8], help="clips per call to time")
    p.add_argument("--repeats", type=int, default=5)
    return p


def main() -> None:
    args = build_parser().parse_args()
    import_tensorflow_quietly()
    import numpy as np
    import tensorflow as tf

    from gtzan_tf.config import EMBEDDING_INPUTS, Config
    from gtzan_tf.features.frontend import frontend_function
    from gtzan_tf.musicnn.embedding import MusicnnEmbedding

    cfg = Config().replace(data={"embeddings": tuple(EMBEDDING_INPUTS)})
    rate = cfg.audio.sample_rate
    clip = (np.random.default_rng(0).standard_normal(int(args.seconds * rate)) * 0.1).astype("float32")
    frontend = frontend_function(cfg)
    per_clip = median_seconds(lambda: {k: v.numpy() for k, v in frontend(clip).items()}, args.repeats)
    print(f"whole frontend (log-mel + {' + '.join(EMBEDDING_INPUTS)}), one {args.seconds:g} s clip: "
          f"{per_clip:.3f} s\n")

    print("| network | clips per call | s per call | s per clip | vs 1 clip a call | max abs difference |")
    print("|---|---:|---:|---:|---:|---:|")
    saved = {}
    for model in EMBEDDING_INPUTS:
        embedding = MusicnnEmbedding(model, rate)
        patches = embedding.patches(embedding.resample(clip[np.newaxis]))[0]
        network = tf.function(lambda batch, net=embedding.network: net(batch, training=False))
        alone = network(patches).numpy()
        single = None
        for clips in args.clips:
            batch = tf.concat([patches] * clips, 0)
            seconds = median_seconds(lambda: network(batch).numpy(), args.repeats)
            single = single or seconds
            difference = np.abs(network(batch).numpy()[: len(alone)] - alone).max()
            saved[model] = single - seconds / clips
            print(f"| {model} ({patches.shape[0]} patches a clip) | {clips} | {seconds:.3f} | {seconds / clips:.3f} | "
                  f"{single / (seconds / clips):.2f}x | {difference:.1e} |")
    parts = ", ".join(f"{model} {seconds:+.3f} s" for model, seconds in saved.items())
    print(f"\n{args.clips[-1]} clips a call instead of one: {parts} saved per clip, together "
          f"{sum(saved.values()) / per_clip:+.0%} of the whole frontend's time per clip.")


if __name__ == "__main__":
    main()
