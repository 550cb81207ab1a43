"""Predict the genre of audio files: `python predict.py --model RUN_DIR FILE_OR_DIR...`.

Any of wav, flac, mp3, ogg, au; any sample rate; mono or stereo; 1 s or longer. Unreadable files
are reported in one line each and skipped; the exit code is 1 if any file failed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gtzan_tf import import_tensorflow_quietly
from gtzan_tf.errors import UserError, cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, required=True, metavar="RUN_DIR", help="a run folder written by train.py")
    p.add_argument("paths", type=Path, nargs="+", metavar="FILE_OR_DIR")
    p.add_argument("--top-k", type=int, default=3, help="how many genres to show")
    p.add_argument("--json", action="store_true", help="one JSON object per file on stdout")
    p.add_argument("--segments", action="store_true", help="also show the per-segment timeline")
    return p


@cli
def main(argv=None):
    args = build_parser().parse_args(argv)
    import_tensorflow_quietly()

    from gtzan_tf.data.audio import audio_files
    from gtzan_tf.inference import Predictor, load_run

    files = audio_files(args.paths)
    if not files:
        raise UserError(f"no audio files found in {', '.join(map(str, args.paths))}")
    predictor = Predictor(load_run(args.model))  # a damaged run is one error, before any file
    failed = 0
    for path in files:
        try:
            result = predictor.predict_file(path)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        if result["silent"]:
            print(f"warning: {path} is silent or nearly silent; its genre below is a guess", file=sys.stderr)
        top = dict(list(result["probabilities"].items())[: args.top_k])
        if args.json:
            result["top_k"] = top
            if not args.segments:
                result.pop("segments")
            print(json.dumps(result))
            continue
        print(f"{path}: " + ", ".join(f"{g} {p:.1%}" for g, p in top.items()))
        if args.segments:
            for seg in result["segments"]:
                print(f"  {seg['start_s']:7.1f} s  {seg['genre']:<10} {seg['probability']:.1%}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
