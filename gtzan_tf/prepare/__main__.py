"""`python -m gtzan_tf.prepare`: the command line of gtzan_tf.prepare."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import gtzan_tf.prepare as package
from gtzan_tf.config import Config
from gtzan_tf.errors import cli
from gtzan_tf.prepare import MANIFEST, merge, prepare


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gtzan_tf.prepare", description=package.__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="dataset folder in the GTZAN layout")
    parser.add_argument("--out", type=Path, required=True, help="features folder to write")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--skip-bad", action="store_true", help="skip unusable files with a warning")
    parser.add_argument("--split-lists", default="auto", help="auto (DIR/split, else gtzan8) | gtzan8 | gtzan10-filtered")
    parser.add_argument("--num-shards", type=int, default=1, help="split the work into N parts (one per machine)")
    parser.add_argument("--shard-index", type=int, default=0, help="which part this process prepares")
    parser.add_argument("--merge", action="store_true", help="only combine finished parts into the manifest")
    parser.add_argument("--overwrite", action="store_true", help="replace features made with another config")
    parser.add_argument("--config", type=Path, help="a config.json to start from (defaults: the reference recipe)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a config value")
    return parser


@cli
def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.merge:
        manifest = merge(args.out)
    else:
        if args.data is None:
            parser.error("--data is required unless --merge")
        cfg = (Config.load(args.config) if args.config else Config()).with_overrides(args.set)
        manifest = prepare(
            args.data, args.out, cfg, workers=args.workers, skip_bad=args.skip_bad,
            split_lists=args.split_lists, num_shards=args.num_shards, shard_index=args.shard_index,
            overwrite=args.overwrite,
        )
    if manifest is None:
        print(f"part {args.shard_index} of {args.num_shards} done; the manifest is written when every part is done")
        return
    counts = ", ".join(f"{s}: {v['clips']} clips / {v['segments']} segments" for s, v in manifest["splits"].items())
    print(f"{args.out / MANIFEST}: {counts}; skipped {len(manifest['skipped'])}")


if __name__ == "__main__":
    main()
