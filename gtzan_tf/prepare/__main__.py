"""`python -m gtzan_tf.prepare`: the command line of gtzan_tf.prepare."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import gtzan_tf.prepare as package
from gtzan_tf.config import Config
from gtzan_tf.errors import UserError, cli
from gtzan_tf.prepare import MANIFEST, prepare
from gtzan_tf.prepare.ray_runner import RayOptions, parse_options
from gtzan_tf.prepare.run import RUNNERS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gtzan_tf.prepare", description=package.__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="dataset folder in the GTZAN layout")
    parser.add_argument("--out", type=Path, required=True, help="features folder to write (with --runner ray on a "
                        "cluster: a shared folder every node sees at this path)")
    parser.add_argument("--runner", choices=RUNNERS, default="local",
                        help="local: processes of this machine; ray: actors of a Ray cluster (or of a local Ray)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="processes (local) or Ray actors (ray) that build shards")
    parser.add_argument("--ray-address", help="the Ray cluster to join (auto, HOST:6379, ray://HOST:10001); "
                        "default: start Ray on this machine")
    parser.add_argument("--ray-init", action="append", default=[], metavar="KEY=VALUE",
                        help="a keyword for ray.init (e.g. num_cpus=8, runtime_env={...}); repeatable")
    parser.add_argument("--ray-actor", action="append", default=[], metavar="KEY=VALUE",
                        help="a resource of each actor (num_cpus=1, the default, is also its TensorFlow threads; "
                        "num_gpus=1, memory=...); repeatable")
    parser.add_argument("--skip-bad", action="store_true", help="skip unusable files with a warning")
    parser.add_argument("--split-lists", default="auto", help="auto (DIR/split, else gtzan8) | gtzan8 | gtzan10-filtered")
    parser.add_argument("--overwrite", action="store_true", help="replace features made with another config")
    parser.add_argument("--config", type=Path, help="a config.json to start from (defaults: the reference recipe)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a config value")
    return parser


@cli
def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.runner != "ray" and (args.ray_address or args.ray_init or args.ray_actor):
        raise UserError("--ray-address, --ray-init and --ray-actor go with --runner ray")
    cfg = (Config.load(args.config) if args.config else Config()).with_overrides(args.set)
    ray_options = RayOptions(args.ray_address, parse_options(args.ray_init, "--ray-init"),
                             parse_options(args.ray_actor, "--ray-actor"))
    manifest = prepare(
        args.data, args.out, cfg, workers=args.workers, skip_bad=args.skip_bad, split_lists=args.split_lists,
        runner=args.runner, ray_options=ray_options, overwrite=args.overwrite,
    )
    counts = ", ".join(f"{s}: {v['clips']} clips / {v['segments']} segments" for s, v in manifest["splits"].items())
    print(f"{args.out / MANIFEST}: {counts}; skipped {len(manifest['skipped'])}")


if __name__ == "__main__":
    main()
