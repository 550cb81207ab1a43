"""Evaluate trained runs: `python evaluate.py --run RUN_DIR [--data DIR] [--split test]`.

Prints clip accuracy (mean of segment probabilities and majority vote), segment accuracy,
per-genre precision/recall/F1, macro F1 and the confusion matrix; writes RUN_DIR/eval/metrics.json,
predictions.csv (one row per clip: true and predicted genre, one probability per genre),
confusion_matrix.png and history.png. `--compare RUN_DIR...` prints one markdown table over runs.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from gtzan_tf import import_tensorflow_quietly
from gtzan_tf.data.index import SPLITS
from gtzan_tf.errors import cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--run", type=Path, help="a run folder written by train.py")
    group.add_argument("--compare", type=Path, nargs="+", metavar="RUN_DIR", help="several run folders")
    p.add_argument("--data", type=Path, help="dataset folder, to prepare features that are missing here")
    p.add_argument("--split", default="test", choices=SPLITS)
    return p


@cli
def main(argv=None):
    args = build_parser().parse_args(argv)
    import_tensorflow_quietly()

    from gtzan_tf.evaluation.report import compare_table, format_metrics_table
    from gtzan_tf.evaluation.runs import comparison_row, evaluate_run

    if args.run:
        evaluation = evaluate_run(args.run, args.data, args.split)
        print(format_metrics_table(evaluation.metrics), flush=True)  # shown even if writing the files fails
        evaluation.write()
        print(f"\nwritten: {args.run / 'eval'}/{{metrics.json,predictions.csv,confusion_matrix.png,history.png}}")
    else:
        evaluations = [(run, evaluate_run(run, args.data, args.split)) for run in args.compare]
        print(compare_table([comparison_row(run, e.metrics) for run, e in evaluations]), flush=True)
        for _, evaluation in evaluations:
            evaluation.write()


if __name__ == "__main__":
    main()
