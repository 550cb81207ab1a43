"""Prepare throughput (clips/s) with 1 and 2 worker processes on a synthesised demo set.

    python benchmarks/prepare.py [--clips-per-genre 8] [--seconds 30] [--repeats 1] [--workers 1 2] [--baseline CHECKOUT]

Each measurement runs `python -m gtzan_tf.prepare` in a fresh process into a fresh folder
(TensorFlow start-up and the musicnn weight loading and graph tracing of each worker included, as a
user sees it). Clips counted are source clips; training and validation clips also get one augmented
copy each. Every configuration is also timed on a set of 4 clips per genre: the difference of the two
times over the difference of their clip versions (originals and augmented copies) is the marginal
cost per version, and what is left of the small run is the fixed start-up cost. `--baseline` times
another checkout of the project (e.g. a `git worktree` of an older commit) on the same data in the
same run, alternating with this one. The last lines scale to GTZAN-8: 730 clips + one augmented copy
of each of the 580 training clips = 1310 versions of 30 s, start-up + 1310 x marginal cost.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gtzan_tf.synth import generate_dataset

ROOT = Path(__file__).resolve().parents[1]
GTZAN8_VERSIONS = 730 + 580
BOTH = "MSD_musicnn,MTT_musicnn"
SMALL_CLIPS_PER_GENRE = 4
FEATURES = (("log-mel only", ""), ("log-mel + MSD musicnn", "MSD_musicnn"), ("log-mel + MSD/MTT musicnn", BOTH))


def measure(code: Path, data: Path, embeddings: str, workers: int, scratch: Path) -> tuple[float, int, int]:
    """(seconds, source clips, clip versions) of one prepare run with the code of checkout `code`."""
    out = scratch / f"{code.name}-w{workers}-{embeddings or 'none'}-{time.monotonic_ns()}"
    cmd = [sys.executable, "-m", "gtzan_tf.prepare", "--data", str(data), "--out", str(out),
           "--workers", str(workers), "--set", "data.validation_per_genre=1", "--set", f"data.embeddings={embeddings}"]
    env = {**os.environ, "PYTHONPATH": str(code)}
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=code, env=env)
    seconds = time.perf_counter() - start
    splits = json.loads((out / "manifest.json").read_text())["splits"].values()
    return seconds, sum(s["source_clips"] for s in splits), sum(s["clips"] for s in splits)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips-per-genre", type=int, default=8)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to time")
    p.add_argument("--baseline", type=Path, help="another checkout of gtzan-tf to time beside this one")
    return p


def main():
    args = build_parser().parse_args()
    codes = {"this": ROOT, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        data = generate_dataset(scratch / "gtzan", clips_per_genre=args.clips_per_genre, seconds=args.seconds, seed=0)
        small = generate_dataset(scratch / "gtzan-small", clips_per_genre=SMALL_CLIPS_PER_GENRE, seconds=args.seconds, seed=1)
        print(f"demo set: 8 genres x {args.clips_per_genre} clips x {args.seconds:g} s (and 8 x {SMALL_CLIPS_PER_GENRE} for the start-up); "
              f"median of {args.repeats}")
        print(f"{'code':<10}{'features':<28}{'workers':>8}{'clips/s':>10}{'s/version':>11}{'marginal':>10}{'start-up':>10}")
        costs = {}  # (code, embeddings, workers) -> (start-up s, marginal s per version)
        for label, embeddings in FEATURES:
            for workers in args.workers:
                runs = {name: ([], []) for name in codes}
                for _ in range(args.repeats):
                    for name, code in codes.items():
                        for results, folder in zip(runs[name], (data, small)):
                            results.append(measure(code, folder, embeddings, workers, scratch))
                medians = {}  # code -> median seconds of the large run
                for name, (large, little) in runs.items():
                    seconds, small_seconds = (statistics.median(r[0] for r in rs) for rs in (large, little))
                    medians[name] = seconds
                    (_, clips, versions), (_, _, small_versions) = large[0], little[0]
                    marginal = (seconds - small_seconds) / (versions - small_versions)
                    costs[name, embeddings, workers] = (small_seconds - marginal * small_versions, marginal)
                    print(f"{name:<10}{label:<28}{workers:>8}{clips / seconds:>10.2f}{seconds / versions:>11.3f}"
                          f"{marginal:>10.3f}{costs[name, embeddings, workers][0]:>9.1f}s")
                if "baseline" in codes:
                    ratio = costs["baseline", embeddings, workers][1] / costs["this", embeddings, workers][1]
                    print(f"{'':<10}{label:<28}{workers:>8}   this / baseline speed: "
                          f"{medians['baseline'] / medians['this']:.2f}x in all, "
                          f"{ratio:.2f}x per clip version")
        for label, embeddings in FEATURES[1:]:
            startup, marginal = min((costs["this", embeddings, w] for w in args.workers),
                                    key=lambda cost: cost[0] + cost[1] * GTZAN8_VERSIONS)
            print(f"GTZAN-8 scale ({GTZAN8_VERSIONS} versions of 30 s, {label}, best worker count): "
                  f"about {(startup + marginal * GTZAN8_VERSIONS) / 60:.1f} min (target <= 3 min)")

if __name__ == "__main__":
    main()
