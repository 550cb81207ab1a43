"""Search hyperparameters by cross-validation: `python tune.py --model mlp_msd --data DIR --out STUDY --trials 30`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gtzan_tf import import_tensorflow_quietly
from gtzan_tf.errors import UserError, cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", required=True, help="a name from train.py --list-models")
    p.add_argument("--data", type=Path, required=True, help="dataset folder in the GTZAN layout (its test clips are never used)")
    p.add_argument("--out", type=Path, required=True, help="study folder: study.db, trials/, trials.csv, plots, best/config.json")
    p.add_argument("--trials", type=int, required=True, help="finish this many trials (completed or pruned), counting earlier runs")
    p.add_argument("--folds", type=int, default=5, help="K-fold cross-validation of every trial")
    p.add_argument("--seeds", type=int, default=1, help="repeat each trial's cross-validation over N fold splits and seeds")
    p.add_argument("--epochs", type=int, default=60, help="epochs per fold model")
    p.add_argument("--space", type=Path, help="JSON search space, replacing the model's default (see gtzan_tf/tuning.py)")
    p.add_argument("--workers", type=int, default=1, help="processes running trials of the study at once on this machine")
    p.add_argument("--storage", help="database URL of the study (default sqlite:///STUDY/study.db); "
                                     "the same URL on other machines makes them work on the same study")
    p.add_argument("--study-name", help="study name in the database (default: the --out folder's name)")
    p.add_argument("--features", type=Path, help="prepared features folder (default STUDY/features)")
    p.add_argument("--config", type=Path, help="a config.json to start from (the values not searched)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a config value")
    return p


@cli
def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.trials < 1:
        raise UserError(f"--trials must be at least 1, got {args.trials}")
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    from gtzan_tf.config import Config
    from gtzan_tf.models.registry import get_spec
    from gtzan_tf.tuning import default_space, load_space, search, write_outputs
    from gtzan_tf.training.folds import cross_validation_config

    base = Config.load(args.config) if args.config else Config()
    kind = get_spec(args.model).feature_kind
    base = base.with_overrides(([f"features.kind={kind}"] if kind else []) + args.set)
    base = cross_validation_config(base.replace(train={"model": args.model, "folds": args.folds, "seeds": args.seeds,
                                                       "epochs": args.epochs}))
    space = load_space(args.space, base) if args.space else default_space(args.model)
    import_tensorflow_quietly()
    study = search(base, args.data, args.out, args.trials, space, storage=args.storage, study_name=args.study_name,
                   features=args.features, workers=args.workers, argv=[str(Path(__file__).resolve()), *argv])
    print(write_outputs(study, base, args.out))
    print(f"study folder: {args.out} (best config: {args.out / 'best' / 'config.json'})")


if __name__ == "__main__":
    main()
