"""Clip accuracy on any GTZAN-layout folder, cross-validated over seeds, paired with a baseline, as one markdown table.

    python benchmarks/accuracy.py --data DIR [--folds K] [--seeds S] [--models mlp_msd resnet34_msd:8] [--epochs N] [--refit]

Prepares DIR once (MSD musicnn embedding, no validation hold-out) into OUT/features, trains every
model with `--folds K --seeds S` (`name:N` trains that model for N epochs, `name:N:key=value,...`
also sets those train.* keys, e.g. `resnet34_msd:4:fusion=gated,embedding_epochs=60`): S
cross-validations, each seed with its own fold split. It scores, over the seeds (mean ± std): each
fold model alone and their ensemble (mean of probabilities, with macro-F1) on DIR's test list, if
it has one; the out-of-fold clip accuracy on the training clips; with `--refit`, the model refit on
all training clips for the folds' median best epoch. The first row is the baseline every model must
beat: a scikit-learn logistic regression (standardised) on the same MSD embeddings read from the
shards, one vector per original clip, over the same folds of every seed. Every other row is paired
with it on the same out-of-fold clips (`gtzan_tf.evaluation.compare`): the accuracy difference, its
95% bootstrap interval over the clips, the clips each gets right more often, and a verdict: ahead
beyond noise, not distinguishable, or behind. With a test list that is empty (`split/test.txt`
with no lines), every clip is cross-validated and the comparison covers all of them.
A run folder already finished under OUT/runs (the same settings, e.g. by train.py) is scored, not retrained.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from gtzan_tf import import_tensorflow_quietly  # noqa: E402

# Staged fine-tuning of the musicnn models (the recipe of docs/results.md's transfer-model table): the head
# on the frozen port first, then everything at a tenth of the rate; they read their own features.
FINETUNE = {"freeze_backbone_epochs": 6, "finetune_lr_factor": 0.1, "batch_size": 16}
RECIPES = {"musicnn_msd": FINETUNE, "musicnn_mtt": FINETUNE, "musicnn_msd_fusion": {**FINETUNE, "branch_dropout": 0.5}}

COLUMNS = ("model", "epochs", "fold models, test clip acc. (%)", "ensemble, test clip acc. (%)",
           "ensemble, macro-F1 (%)", "out-of-fold clip acc. (%)", "refit, test clip acc. (%)",
           "vs baseline, out-of-fold (pts, 95% CI)", "training time")


def embeddings(fs, split: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(clip ids, MSD embeddings (N, 753), labels (N,)) of the original clips of `split`."""
    from gtzan_tf.data.pipeline import eval_clip_dataset

    rows = list(eval_clip_dataset(fs, split, ("msd_embedding",)).as_numpy_iterator())
    return ([clip_id.decode() for _, _, clip_id in rows], np.stack([f["msd_embedding"][0] for f, _, _ in rows]),
            np.array([label for _, label, _ in rows]))


def baseline_classifier(seed: int | None = None):
    """The baseline every model must beat: a standardised logistic regression (scikit-learn)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, random_state=seed))


def seed_configs(cfg) -> list:
    """The config of every seed of `cfg` (train.py --seeds: seed, seed + 1, ...; each its own fold split)."""
    return [cfg.replace(train={"seed": cfg.train.seed + k, "seeds": 1}) for k in range(cfg.train.seeds)]


def logistic_regression_row(fs, cfg) -> dict:
    """The baseline: one standardised logistic regression per fold and seed, scored like the models
    (its refit: one on all training clips per seed)."""
    from gtzan_tf.data.folds import assign_folds
    from gtzan_tf.evaluation.metrics import evaluate_predictions
    from gtzan_tf.training.folds import fold_seed, source_genres

    start = time.perf_counter()
    k, n_classes = cfg.train.folds, len(fs.genres)
    ids, x, y = embeddings(fs, "train")
    test_ids, test_x, test_y = embeddings(fs, "test") if fs.has("test") else ([], None, None)
    order = np.argsort(ids)
    row = empty_row("logistic regression (MSD embedding)", "–", np.array(ids)[order])
    for seed_cfg in seed_configs(cfg):
        seed = fold_seed(seed_cfg)
        folds = assign_folds(source_genres(fs), k, seed)
        fold_of = np.array([folds[i] for i in ids])
        oof_correct, test_probs = np.zeros(len(y), bool), []
        for fold in range(k):
            train = fold_of != fold
            classifier = baseline_classifier(seed).fit(x[train], y[train])
            oof_correct[~train] = classifier.predict(x[~train]) == y[~train]
            if test_x is not None:
                probs = np.zeros((len(test_x), n_classes))
                probs[:, classifier.classes_] = classifier.predict_proba(test_x)
                test_probs.append(probs)
                row["fold"].append(np.mean(probs.argmax(1) == test_y))
        row["correct"].append(oof_correct[order])
        if test_x is not None:
            ensemble = evaluate_predictions(np.mean(test_probs, axis=0), test_y, np.array(test_ids), fs.genres)
            row["ensemble"].append(ensemble["clip_accuracy"])
            row["macro_f1"].append(ensemble["macro_f1"])
            if cfg.train.refit:
                row["refit"].append(np.mean(baseline_classifier(seed).fit(x, y).predict(test_x) == test_y))
    row["seconds"] = time.perf_counter() - start
    return row


def empty_row(label: str, epochs: str, clip_ids: np.ndarray) -> dict:
    """A table row to fill seed by seed: per-fold and per-seed scores, per-seed out-of-fold correctness."""
    return {"model": label, "epochs": epochs, "clip_ids": clip_ids, "fold": [], "ensemble": [], "macro_f1": [],
            "refit": [], "correct": [], "seconds": None}


def model_row(cfg, data: Path, features: Path, run_dir: Path, label: str) -> dict:
    """Train `cfg` (its seeds, each cross-validated) into `run_dir`, or read it there once finished,
    and score every seed: its fold models and ensemble on the test clips, its out-of-fold clips."""
    from gtzan_tf.data.pipeline import eval_clip_dataset, load_feature_set
    from gtzan_tf.evaluation.metrics import clip_accuracy, evaluate_predictions, predict_clips
    from gtzan_tf.models.ensemble import ensemble_model
    from gtzan_tf.models.registry import run_inputs
    from gtzan_tf.training.experiment import train
    from gtzan_tf.training.folds import fold_members, out_of_fold_predictions

    start = time.perf_counter()
    finished = (run_dir / "run.json").is_file()
    if not finished:  # a finished run (an earlier benchmark, or train.py with the same settings) is reused
        train(cfg, data, run_dir, features_dir=features, verbose=0)
    fs = load_feature_set(features)
    seed_dirs = [run_dir] if cfg.train.seeds == 1 else [run_dir / f"seed-{k}" for k in range(cfg.train.seeds)]
    epochs = str(cfg.train.epochs)
    row = None
    for seed_dir in seed_dirs:
        oof = out_of_fold_predictions(fs, seed_dir)
        row = row or empty_row(label, epochs, oof.clip_ids)
        row["correct"].append(oof.predictions == oof.labels)
        summary = json.loads((seed_dir / "run.json").read_text())
        if cfg.train.refit:
            row["refit"].append(summary["test_clip_accuracy"])
            row["epochs"] = f"{cfg.train.epochs} (refit {summary['refit_epochs']})"
        if fs.has("test"):
            members = fold_members(cfg, len(fs.genres), seed_dir)
            test = eval_clip_dataset(fs, "test", run_inputs(cfg))
            row["fold"] += [clip_accuracy(*predict_clips(member, test)) for member in members]
            ensemble = evaluate_predictions(*predict_clips(ensemble_model(members), test), fs.genres)
            row["ensemble"].append(ensemble["clip_accuracy"])
            row["macro_f1"].append(ensemble["macro_f1"])
    row["seconds"] = None if finished else time.perf_counter() - start
    return row


def spread(values: list[float]) -> str:
    """Percent: the value, or mean ± std (ddof 1) of several; – for none."""
    if not values:
        return "–"
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * np.mean(values):.1f} ± {100 * np.std(values, ddof=1):.1f}"


def table(rows: list[dict]) -> str:
    """The markdown table; every model row is paired with the first (the baseline) on the same clips."""
    from gtzan_tf.evaluation.compare import paired_comparison

    baseline = rows[0]

    def cells(row):
        if row is baseline:
            versus = "(baseline)"
        elif not np.array_equal(row["clip_ids"], baseline["clip_ids"]):
            raise ValueError(f"{row['model']} was scored on other clips than the baseline")
        else:
            versus = str(paired_comparison(row["correct"], baseline["correct"]))
        oof = [float(np.mean(correct)) for correct in row["correct"]]
        return [row["model"], row["epochs"], spread(row["fold"]), spread(row["ensemble"]), spread(row["macro_f1"]),
                spread(oof), spread(row["refit"]), versus,
                "–" if row["seconds"] is None else f"{row['seconds']:.0f} s"]

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * 5 + ["---", "---:"]) + "|"]
    return "\n".join(lines + ["| " + " | ".join(cells(row)) + " |" for row in rows])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="dataset folder in the GTZAN layout")
    p.add_argument("--out", type=Path, default=Path("benchmark-accuracy"), help="features and runs go here")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seeds", type=int, default=1, help="repeat the cross-validation over N fold splits and seeds")
    p.add_argument("--models", nargs="+", default=["mlp_msd"], help="model names; name:N trains it for N epochs")
    p.add_argument("--epochs", type=int, default=60, help="epochs of the models given without :N")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--refit", action="store_true", help="also refit each model on all training clips (train.py --refit)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a config value")
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    import_tensorflow_quietly()
    from gtzan_tf.config import Config
    from gtzan_tf.data.index import load_index
    from gtzan_tf.models.registry import get_spec
    from gtzan_tf.prepare import ensure_prepared
    from gtzan_tf.training.folds import cross_validation_config

    base = Config().replace(data={"embeddings": ("MSD_musicnn",)}).with_overrides(args.set)
    base = cross_validation_config(base.replace(train={"folds": args.folds, "seeds": args.seeds,
                                                       "learning_rate": args.lr, "refit": args.refit}))
    features = args.out / "features"
    fs = ensure_prepared(load_index(args.data, base.data), features, base)
    rows = [logistic_regression_row(fs, base)]
    print(table(rows), file=sys.stderr)
    for spec in args.models:
        name, _, rest = spec.partition(":")
        epochs, _, settings = rest.partition(":")
        cfg = base.replace(train={"model": name, "epochs": int(epochs or args.epochs), **RECIPES.get(name, {})})
        cfg = cfg.with_overrides([f"train.{item}" for item in settings.split(",") if item])
        kind, model_features = get_spec(name).feature_kind, features
        if kind and kind != base.features.kind:  # e.g. musicnn patches: a features folder of their own
            cfg, model_features = cfg.replace(features={"kind": kind}), args.out / f"features-{kind}"
        label = f"{name} ({settings.replace(',', ', ')})" if settings else name
        run_name = "-".join([name, *settings.split(",")]) if settings else name
        rows.append(model_row(cfg, args.data, model_features, args.out / "runs" / run_name, label))
        print(table(rows), file=sys.stderr)
    counts = {split: fs.count(split, "source_clips") if fs.has(split) else 0 for split in ("train", "test")}
    print(f"{args.data} ({counts['train'] + counts['test']} clips: {counts['train']} train / {counts['test']} test), "
          f"{args.folds}-fold cross-validation over the training clips, {args.seeds} seed(s); "
          f"paired comparison: bootstrap over the {counts['train']} out-of-fold clips and a sign test\n")
    print(table(rows))


if __name__ == "__main__":
    main()
