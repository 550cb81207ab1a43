"""Prepare throughput (clips/s) with 1 and 2 workers, local processes and Ray actors, on a synthesised set.

    python benchmarks/prepare.py [--clips-per-genre 8] [--seconds 30] [--repeats 1] [--workers 1 2]
                                 [--runners local ray] [--features mel msd both] [--baseline CHECKOUT]
                                 [--machines 10] [--cores 16]

Each measurement runs `python -m gtzan_tf.prepare` in a fresh process into a fresh folder
(TensorFlow start-up and the musicnn weight loading and graph tracing of each worker included, as a
user sees it; with `--runner ray` also the start of a Ray instance on this machine and of its
actors). Clips counted are source clips; training and validation clips also get one augmented copy
each. Every configuration is also timed on a set of 4 clips per genre: the difference of the two
times over the difference of their clip versions (originals and augmented copies) is the marginal
cost per version, and what is left of the small run is the fixed start-up cost. `--baseline` times
another checkout of the project (e.g. a `git worktree` of an older commit; local runner only) on
the same data in the same run, alternating with this one. The last lines scale to GTZAN-8: 730
clips + one augmented copy of each of the 580 training clips = 1310 versions of 30 s, start-up +
1310 x marginal cost; and ESTIMATE a corpus of 100,000 clips of 30 s (one version each) on
`--machines` machines of `--cores` cores, one Ray actor per core, each at the per-core cost
measured here with the most Ray workers (scaled linearly to 30 s when --seconds is not 30). An
estimate: it assumes the cluster's cores are as fast as this machine's, that the work scales
linearly over cores and machines, and that the shared folder keeps up.
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
CORPUS_VERSIONS = 100_000
BOTH = "MSD_musicnn,MTT_musicnn"
SMALL_CLIPS_PER_GENRE = 4
FEATURES = {"mel": ("log-mel only", ""), "msd": ("log-mel + MSD musicnn", "MSD_musicnn"),
            "both": ("log-mel + MSD/MTT musicnn", BOTH)}


def measure(code: Path, runner: str, data: Path, embeddings: str, workers: int, scratch: Path) -> tuple[float, int, int]:
    """(seconds, source clips, clip versions) of one prepare run with the code of checkout `code`."""
    out = scratch / f"{code.name}-{runner}-w{workers}-{embeddings or 'none'}-{time.monotonic_ns()}"
    cmd = [sys.executable, "-m", "gtzan_tf.prepare", "--data", str(data), "--out", str(out),
           "--workers", str(workers), "--set", "data.validation_per_genre=1", "--set", f"data.embeddings={embeddings}"]
    if runner != "local":  # the baseline's code may predate --runner
        cmd += ["--runner", runner]
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
    p.add_argument("--runners", nargs="+", choices=("local", "ray"), default=["local", "ray"])
    p.add_argument("--features", nargs="+", choices=sorted(FEATURES), default=list(FEATURES), help="rows to time")
    p.add_argument("--baseline", type=Path, help="another checkout of gtzan-tf to time beside this one (local runner)")
    p.add_argument("--machines", type=int, default=10, help="machines of the 100k-clip estimate")
    p.add_argument("--cores", type=int, default=16, help="cores per machine of the 100k-clip estimate")
    return p


def main():
    args = build_parser().parse_args()
    # (name, checkout, runner) of every row
    codes = [(runner, ROOT, runner) for runner in args.runners]
    if args.baseline:
        codes.append(("baseline", args.baseline.resolve(), "local"))
    ours = list(args.runners)  # the rows of this checkout
    features = [FEATURES[key] for key in args.features]
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        data = generate_dataset(scratch / "gtzan", clips_per_genre=args.clips_per_genre, seconds=args.seconds, seed=0)
        small = generate_dataset(scratch / "gtzan-small", clips_per_genre=SMALL_CLIPS_PER_GENRE, seconds=args.seconds, seed=1)
        print(f"demo set: 8 genres x {args.clips_per_genre} clips x {args.seconds:g} s (and 8 x {SMALL_CLIPS_PER_GENRE} for the start-up); "
              f"median of {args.repeats}; {os.cpu_count()} CPUs")
        print(f"{'code':<10}{'features':<28}{'workers':>8}{'clips/s':>10}{'s/version':>11}{'marginal':>10}{'start-up':>10}")
        costs = {}  # (name, embeddings, workers) -> (start-up s, marginal s per version)
        for label, embeddings in features:
            for workers in args.workers:
                runs = {name: ([], []) for name, _, _ in codes}
                for _ in range(args.repeats):
                    for name, code, runner in codes:
                        for results, folder in zip(runs[name], (data, small)):
                            results.append(measure(code, runner, folder, embeddings, workers, scratch))
                medians = {}  # name -> median seconds of the large run
                for name, (large, little) in runs.items():
                    seconds, small_seconds = (statistics.median(r[0] for r in rs) for rs in (large, little))
                    medians[name] = seconds
                    (_, clips, versions), (_, _, small_versions) = large[0], little[0]
                    marginal = (seconds - small_seconds) / (versions - small_versions)
                    costs[name, embeddings, workers] = (small_seconds - marginal * small_versions, marginal)
                    print(f"{name:<10}{label:<28}{workers:>8}{clips / seconds:>10.2f}{seconds / versions:>11.3f}"
                          f"{marginal:>10.3f}{costs[name, embeddings, workers][0]:>9.1f}s")
                for name in ours:
                    if "baseline" in medians:
                        ratio = costs["baseline", embeddings, workers][1] / costs[name, embeddings, workers][1]
                        print(f"{'':<10}{label:<28}{workers:>8}   {name} / baseline speed: "
                              f"{medians['baseline'] / medians[name]:.2f}x in all, {ratio:.2f}x per clip version")
        for label, embeddings in features:
            for name in ours:
                startup, marginal = min((costs[name, embeddings, w] for w in args.workers),
                                        key=lambda cost: cost[0] + cost[1] * GTZAN8_VERSIONS)
                print(f"GTZAN-8 scale ({GTZAN8_VERSIONS} versions of 30 s, {label}, {name}, best worker count): "
                      f"about {(startup + marginal * GTZAN8_VERSIONS) / 60:.1f} min (target <= 3 min)")
            if "ray" in args.runners:
                most = max(args.workers)
                startup, marginal = costs["ray", embeddings, most]
                per_core = marginal * most * args.seconds / 30  # seconds of one core per 30-s version
                cores = args.machines * args.cores
                hours = (startup + CORPUS_VERSIONS * per_core / cores) / 3600
                print(f"ESTIMATE, {label}: {CORPUS_VERSIONS:,} clips of 30 s on {args.machines} machines x {args.cores} cores "
                      f"(one Ray actor per core at {per_core:.2f} core-s per version, as measured here with {most} Ray workers): "
                      f"about {hours:.2f} h; {CORPUS_VERSIONS * per_core / 3600:.1f} core-hours in all")


if __name__ == "__main__":
    main()
