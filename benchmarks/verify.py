"""What verifying a features folder costs: seconds per GB of shards, as every run pays it on start.

    python benchmarks/verify.py [--clips-per-genre 8] [--seconds 30] [--repeats 5]

Prepares log-mel features of a synthesised set once, then times `FeatureSet.verify()` (every
shard's sha256 and record count against the manifest) and its two halves on their own, each the
median of `--repeats` runs with the shards in the page cache (a cold disk adds its read time).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from gtzan_tf import import_tensorflow_quietly


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips-per-genre", type=int, default=8)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--repeats", type=int, default=5)
    return p


def main() -> None:
    args = build_parser().parse_args()
    import_tensorflow_quietly()
    from gtzan_tf.config import Config
    from gtzan_tf.data.manifest import count_records, load_feature_set
    from gtzan_tf.files import sha256_file
    from gtzan_tf.prepare import prepare
    from gtzan_tf.synth import generate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        data = generate_dataset(Path(tmp) / "gtzan", clips_per_genre=args.clips_per_genre, seconds=args.seconds,
                                seed=0, progress=False)
        features = Path(tmp) / "features"
        prepare(data, features, Config().replace(data={"embeddings": ()}), progress=False)
        fs = load_feature_set(features)
        shards = [fs.root / s["file"] for split in fs.manifest["splits"].values() for s in split["shards"]]
        gigabytes = sum(path.stat().st_size for path in shards) / 1e9
        rows = {
            "verify (sha256 + record count)": fs.verify,
            "sha256 only": lambda: [sha256_file(path) for path in shards],
            "record count only": lambda: [count_records(path) for path in shards],
        }
        print(f"{len(shards)} shards, {gigabytes * 1000:.1f} MB, median of {args.repeats}\n", file=sys.stderr)
        print("| check | median s | min-max s | s per GB |")
        print("|---|---:|---:|---:|")
        for name, fn in rows.items():
            times = timed(fn, args.repeats)
            median = statistics.median(times)
            print(f"| {name} | {median:.3f} | {min(times):.3f}-{max(times):.3f} | {median / gigabytes:.2f} |")


if __name__ == "__main__":
    main()
