"""Two local workers against one process: training steps/s of `train.py --strategy multiworker`.

    python benchmarks/multiworker.py [--model cnn1d] [--batch-size 32] [--epochs 4]

All runs take the same global batch on the same synthesised data: the single-machine path
(`model.fit`) and a one-worker cluster, each one process on all cores with `--batch-size B`, then two
workers on 127.0.0.1 with `--batch-size B/2` and half the cores each. Steps/s come from the chief's per-epoch `ms/step` (Keras' progress
line: the epoch's steps plus the chief's validation), median over the epochs after the first
(which traces). On one machine two workers share its cores, so they are not expected to be faster.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from gtzan_tf.config import Config
from gtzan_tf.prepare import prepare
from gtzan_tf.synth import generate_dataset
from gtzan_tf.training.multiworker import local_tf_configs

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ["--set", "data.validation_per_genre=2", "--set", "data.embeddings="]
MS_PER_STEP = re.compile(r"^(\d+)/\1 - .* - (\d+)ms/step", re.MULTILINE)
# (row name, processes, --strategy)
RUNS = (("1 process, model.fit", 1, "auto"), ("1 process, multi-worker loop", 1, "multiworker"),
        ("2 local workers", 2, "multiworker"))


def run(workers: int, strategy: str, args, data: Path, features: Path, out: Path) -> tuple[int, list[float]]:
    """Steps per epoch and the chief's ms/step of every epoch after the first."""
    tf_configs = local_tf_configs(workers)
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    cmd = [sys.executable, "train.py", "--strategy", strategy, "--model", args.model, "--data", str(data),
           "--features", str(features), "--out", str(out), "--epochs", str(args.epochs),
           "--batch-size", str(args.batch_size // workers), "--patience", str(args.epochs), "--quiet", *SETTINGS]
    procs = []
    for index in range(workers):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_NUM_INTRAOP_THREADS": threads, "OMP_NUM_THREADS": threads}
        if strategy == "multiworker":
            env["TF_CONFIG"] = tf_configs[index]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      text=True))
    outputs = [p.communicate(timeout=1800)[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"a worker failed:\n{outputs}")
    epochs = MS_PER_STEP.findall(outputs[0])
    return int(epochs[0][0]), [float(ms) for _, ms in epochs[1:]]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="cnn1d")
    p.add_argument("--batch-size", type=int, default=32, help="global batch (even)")
    p.add_argument("--epochs", type=int, default=4)
    return p


def main():
    args = build_parser().parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = generate_dataset(Path(tmp) / "gtzan", clips_per_genre=10, seconds=30.0, seed=0, progress=False)
        features = Path(tmp) / "features"
        prepare(data, features, Config().replace(data={"validation_per_genre": 2, "embeddings": ()}), progress=False)
        rows = []
        for k, (name, workers, strategy) in enumerate(RUNS):
            steps, ms = run(workers, strategy, args, data, features, Path(tmp) / f"run{k}")
            rows.append((name, workers, steps, statistics.median(ms)))
    print(f"model {args.model}, global batch {args.batch_size}, {os.cpu_count()} CPU cores, epochs 2-{args.epochs}")
    print("| run | batch per replica | steps/epoch | ms/step | steps/s | segments/s |")
    print("| --- | ----------------: | ----------: | ------: | ------: | ---------: |")
    for name, workers, steps, ms in rows:
        print(f"| {name} | {args.batch_size // workers} | {steps} | {ms:.0f} | {1000 / ms:.2f} | "
              f"{args.batch_size * 1000 / ms:.1f} |")


if __name__ == "__main__":
    main()
