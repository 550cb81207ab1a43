"""Prepare throughput (clips/s) with 1 and 2 worker processes on a synthesised demo set.

    python benchmarks/prepare.py [--clips-per-genre 8] [--seconds 20] [--repeats 1]

Each measurement runs `python -m gtzan_tf.prepare` in a fresh process into a fresh folder
(TensorFlow start-up and the musicnn weight loading of each worker included, as a user sees it). Clips counted are source clips;
training and validation clips also get one augmented copy each.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gtzan_tf.synth import generate_dataset


def measure(data: Path, embeddings: str, workers: int, repeats: int, scratch: Path) -> float:
    times = []
    for r in range(repeats):
        out = scratch / f"w{workers}-{r}-{embeddings or 'none'}"
        cmd = [sys.executable, "-m", "gtzan_tf.prepare", "--data", str(data), "--out", str(out),
               "--workers", str(workers), "--set", "data.validation_per_genre=2", "--set", f"data.embeddings={embeddings}"]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    manifest = json.loads((out / "manifest.json").read_text())
    n_clips = sum(split["source_clips"] for split in manifest["splits"].values())
    return n_clips / statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips-per-genre", type=int, default=8)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        data = generate_dataset(scratch / "gtzan", clips_per_genre=args.clips_per_genre, seconds=args.seconds, seed=0)
        print(f"demo set: 8 genres x {args.clips_per_genre} clips x {args.seconds:g} s; median of {args.repeats}")
        print(f"{'features':<28}{'workers':>8}{'clips/s':>10}")
        for label, embeddings in (("log-mel only", ""), ("log-mel + MSD/MTT musicnn", "MSD_musicnn,MTT_musicnn")):
            rates = {w: measure(data, embeddings, w, args.repeats, scratch) for w in (1, 2)}
            for w, rate in rates.items():
                print(f"{label:<28}{w:>8}{rate:>10.2f}")
            print(f"{label:<28}{'2 vs 1':>8}{rates[2] / rates[1]:>9.2f}x")


if __name__ == "__main__":
    main()
