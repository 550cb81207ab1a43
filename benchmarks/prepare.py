"""Prepare throughput (clips/s) with 1 and 2 worker processes on a synthesised demo set.

    python benchmarks/prepare.py [--clips-per-genre 8] [--seconds 30] [--repeats 1] [--workers 1 2] [--baseline CHECKOUT]

Each measurement runs `python -m gtzan_tf.prepare` in a fresh process into a fresh folder
(TensorFlow start-up and the musicnn weight loading of each worker included, as a user sees it).
Clips counted are source clips; training and validation clips also get one augmented copy each.
`--baseline` times another checkout of the project (e.g. a `git worktree` of an older commit) on
the same data in the same run, alternating with this one. The last line scales the measured time
per clip version (original or augmented copy) to GTZAN-8: 730 clips + one augmented copy of each
of the 580 training clips = 1310 versions of 30 s.
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


def measure(code: Path, data: Path, embeddings: str, workers: int, scratch: Path) -> tuple[float, int, int]:
    """(seconds, source clips, clip versions) of one prepare run with the code of checkout `code`."""
    out = scratch / f"{code.name}-w{workers}-{embeddings or 'none'}-{time.monotonic_ns()}"
    cmd = [sys.executable, "-m", "gtzan_tf.prepare", "--data", str(data), "--out", str(out),
           "--workers", str(workers), "--set", "data.validation_per_genre=2", "--set", f"data.embeddings={embeddings}"]
    env = {**os.environ, "PYTHONPATH": str(code)}
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=code, env=env)
    seconds = time.perf_counter() - start
    splits = json.loads((out / "manifest.json").read_text())["splits"].values()
    return seconds, sum(s["source_clips"] for s in splits), sum(s["clips"] for s in splits)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips-per-genre", type=int, default=8)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to time")
    p.add_argument("--baseline", type=Path, help="another checkout of gtzan-tf to time beside this one")
    args = p.parse_args()
    codes = {"this": ROOT, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        data = generate_dataset(scratch / "gtzan", clips_per_genre=args.clips_per_genre, seconds=args.seconds, seed=0)
        print(f"demo set: 8 genres x {args.clips_per_genre} clips x {args.seconds:g} s; median of {args.repeats}")
        print(f"{'code':<10}{'features':<28}{'workers':>8}{'clips/s':>10}{'s/version':>11}")
        per_version = {}
        for label, embeddings in (("log-mel only", ""), ("log-mel + MSD/MTT musicnn", BOTH)):
            for workers in args.workers:
                runs = {name: [] for name in codes}
                for _ in range(args.repeats):
                    for name, code in codes.items():
                        runs[name].append(measure(code, data, embeddings, workers, scratch))
                for name, results in runs.items():
                    seconds = statistics.median(r[0] for r in results)
                    _, clips, versions = results[0]
                    per_version[name, embeddings, workers] = seconds / versions
                    print(f"{name:<10}{label:<28}{workers:>8}{clips / seconds:>10.2f}{seconds / versions:>11.3f}")
                if "baseline" in codes:
                    ratio = per_version["baseline", embeddings, workers] / per_version["this", embeddings, workers]
                    print(f"{'':<10}{label:<28}{workers:>8}   this / baseline speed: {ratio:.2f}x")
        best = min(per_version["this", BOTH, w] for w in args.workers)
        print(f"GTZAN-8 scale ({GTZAN8_VERSIONS} versions of 30 s, both embeddings, best worker count): "
              f"about {best * GTZAN8_VERSIONS / 60:.1f} min (target <= 3 min)")


if __name__ == "__main__":
    main()
