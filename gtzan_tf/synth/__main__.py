"""`python -m gtzan_tf.synth`: write a synthetic, genre-distinguishable music dataset in the GTZAN layout."""
from __future__ import annotations

import argparse
from pathlib import Path

from gtzan_tf.data.index import GTZAN_8_GENRES, GTZAN_10_GENRES
from gtzan_tf.errors import cli
from gtzan_tf.synth.dataset import generate_dataset


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gtzan_tf.synth", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="dataset folder to write (GTZAN layout)")
    parser.add_argument("--clips-per-genre", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=12.0, help="clip length")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--genres", type=int, choices=(8, 10), default=8, help="the 8-genre subset or all 10")
    parser.add_argument("--test-fraction", type=float, default=0.25, help="test clips per genre (stratified)")
    parser.add_argument("--sample-rate", type=int, default=22050)
    return parser


@cli
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    genres = GTZAN_8_GENRES if args.genres == 8 else GTZAN_10_GENRES
    out = generate_dataset(args.out, clips_per_genre=args.clips_per_genre, seconds=args.seconds, seed=args.seed,
                           genres=genres, test_fraction=args.test_fraction, sample_rate=args.sample_rate)
    counts = {s: len((out / "split" / f"{s}.txt").read_text().split()) for s in ("train", "test")}
    print(f"{out}: {len(genres)} genres x {args.clips_per_genre} clips of {args.seconds:g} s; "
          f"train {counts['train']}, test {counts['test']}")


if __name__ == "__main__":
    main()
