"""One .npz of musicnn outputs per audio file, DIR/<file stem>.npz.

Keys (musicnn models; P = number of 3 s patches): taggram (P, 50), timbral (P*187, 408),
temporal (P*187, 153), cnn1..cnn3 (P*187, 64), mean_pool and max_pool (P, 753), penultimate (P, 200).
vgg models: taggram and pool1..pool5, patches concatenated along time.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gtzan_tf import import_tensorflow_quietly
from gtzan_tf.errors import UserError, cli
from gtzan_tf.files import atomic_path


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def build_parser() -> argparse.ArgumentParser:
    from gtzan_tf.musicnn.model import MODEL_NAMES

    parser = argparse.ArgumentParser(prog="python -m gtzan_tf.musicnn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="audio files (any format librosa reads)")
    parser.add_argument("--model", default="MSD_musicnn", choices=MODEL_NAMES)
    parser.add_argument("--out-dir", required=True, type=Path, metavar="DIR", help="output folder")
    parser.add_argument("--top-tags", type=int, default=0, metavar="K", help="print each file's K most likely tags")
    parser.add_argument("--batch-size", type=int, default=32, help="3 s patches per network call")
    return parser


@cli
def main(argv: list[str] | None = None) -> int:
    import_tensorflow_quietly()
    from gtzan_tf.musicnn.extractor import MusicnnExtractor

    args = build_parser().parse_args(argv)
    targets: dict[Path, Path] = {}
    for path in args.files:
        target = args.out_dir / f"{path.stem}.npz"
        if target in targets:
            raise UserError(f"{targets[target]} and {path} would both write {target}")
        targets[target] = path
    args.out_dir.mkdir(parents=True, exist_ok=True)
    # librosa warns before falling back to audioread for formats libsndfile cannot read.
    warnings.filterwarnings("ignore", message="PySoundFile failed")
    warnings.filterwarnings("ignore", category=FutureWarning, module="librosa")

    extractor = MusicnnExtractor(args.model, batch_size=args.batch_size)
    failed = 0
    results = extractor.iter_extract_files(args.files)
    for path, out in tqdm(results, total=len(args.files), unit="file", file=sys.stderr):
        if isinstance(out, Exception):
            failed += 1
            tqdm.write(f"error: {out}", file=sys.stderr)
            continue
        write_npz(args.out_dir / f"{path.stem}.npz", out)
        if args.top_tags:
            tags = ", ".join(f"{tag} ({p:.2f})" for tag, p in extractor.top_tags(out["taggram"], args.top_tags))
            tqdm.write(f"{path}: {tags}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
