"""Clip accuracy on any GTZAN-layout folder, cross-validated, as one markdown table.

    python benchmarks/accuracy.py --data DIR [--folds K] [--models mlp_msd resnet34_msd:8] [--epochs N] [--refit]

Prepares DIR once (MSD musicnn embedding, no validation hold-out) into OUT/features, trains every
model with `--folds K` (`name:N` trains that model for N epochs, `name:N:key=value,...` also sets
those train.* keys, e.g. `resnet34_msd:4:fusion=gated,embedding_epochs=60`) and scores it on DIR's test list:
each fold model alone (mean ± std over the K folds), their ensemble (mean of probabilities, with
macro-F1), the out-of-fold clip accuracy on the training clips, and the training time; with
`--refit`, also the model refit on all training clips for the folds' median best epoch. The first
row is the baseline every model must beat: a scikit-learn logistic regression (standardised) on the
same MSD embeddings read from the shards, one vector per original clip, over the same folds.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from gtzan_tf import import_tensorflow_quietly  # noqa: E402

# Staged fine-tuning of the musicnn models (the recipe of README's development-set table): the head
# on the frozen port first, then everything at a tenth of the rate; they read their own features.
FINETUNE = {"freeze_backbone_epochs": 6, "finetune_lr_factor": 0.1, "batch_size": 16}
RECIPES = {"musicnn_msd": FINETUNE, "musicnn_mtt": FINETUNE, "musicnn_msd_fusion": {**FINETUNE, "branch_dropout": 0.5}}

COLUMNS = ("model", "epochs", "fold models, test clip acc. (%)", "ensemble, test clip acc. (%)",
           "ensemble, macro-F1 (%)", "out-of-fold clip acc. (%)", "refit, test clip acc. (%)", "training time")


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


def logistic_regression_row(fs, cfg) -> dict:
    """The baseline: one standardised logistic regression per fold, scored like the models (its
    refit: one on all training clips)."""
    from gtzan_tf.data.folds import assign_folds
    from gtzan_tf.evaluation.metrics import evaluate_predictions
    from gtzan_tf.training.folds import fold_seed, source_genres

    start = time.perf_counter()
    k, seed = cfg.train.folds, fold_seed(cfg)
    folds = assign_folds(source_genres(fs), k, seed)
    ids, x, y = embeddings(fs, "train")
    test_ids, test_x, test_y = embeddings(fs, "test")
    fold_of = np.array([folds[i] for i in ids])
    n_classes = len(fs.genres)

    def fit(rows):
        return baseline_classifier(seed).fit(x[rows], y[rows])

    test_probs, fold_test, correct = [], [], 0
    for fold in range(k):
        train = fold_of != fold
        classifier = fit(train)
        probs = np.zeros((len(test_x), n_classes))
        probs[:, classifier.classes_] = classifier.predict_proba(test_x)
        test_probs.append(probs)
        fold_test.append(np.mean(probs.argmax(1) == test_y))
        correct += np.sum(classifier.classes_[classifier.predict_proba(x[~train]).argmax(1)] == y[~train])
    ensemble = evaluate_predictions(np.mean(test_probs, axis=0), test_y, np.array(test_ids), fs.genres)
    return {"model": "logistic regression (MSD embedding)", "epochs": "–",
            "fold": (np.mean(fold_test), np.std(fold_test, ddof=1)), "ensemble": ensemble["clip_accuracy"],
            "macro_f1": ensemble["macro_f1"], "oof": correct / len(y),
            "refit": np.mean(fit(np.ones(len(y), bool)).predict(test_x) == test_y) if cfg.train.refit else None,
            "seconds": time.perf_counter() - start}


def model_row(cfg, data: Path, features: Path, run_dir: Path, label: str) -> dict:
    from gtzan_tf.data.pipeline import eval_clip_dataset, load_feature_set
    from gtzan_tf.evaluation.metrics import clip_accuracy, evaluate_predictions, predict_clips
    from gtzan_tf.inference import load_run
    from gtzan_tf.models.ensemble import ensemble_model
    from gtzan_tf.training.experiment import train

    start = time.perf_counter()
    summary = train(cfg, data, run_dir, features_dir=features, verbose=0)
    seconds = time.perf_counter() - start
    run = load_run(run_dir)
    fs = load_feature_set(features)
    test = eval_clip_dataset(fs, "test", run.inputs)
    fold_test = [clip_accuracy(*predict_clips(member.model, test)) for member in run.members]
    ensemble = evaluate_predictions(*predict_clips(ensemble_model([m.model for m in run.members]), test), fs.genres)
    epochs = f"{cfg.train.epochs} (refit {summary['refit_epochs']})" if cfg.train.refit else str(cfg.train.epochs)
    return {"model": label, "epochs": epochs,
            "fold": (np.mean(fold_test), np.std(fold_test, ddof=1)), "ensemble": ensemble["clip_accuracy"],
            "macro_f1": ensemble["macro_f1"], "oof": summary["valid_clip_accuracy"],
            "refit": summary["test_clip_accuracy"] if cfg.train.refit else None, "seconds": seconds}


def table(rows: list[dict]) -> str:
    def cells(row):
        mean, std = row["fold"]
        return [row["model"], row["epochs"], f"{100 * mean:.1f} ± {100 * std:.1f}", f"{100 * row['ensemble']:.1f}",
                f"{100 * row['macro_f1']:.1f}", f"{100 * row['oof']:.1f}",
                "–" if row["refit"] is None else f"{100 * row['refit']:.1f}", f"{row['seconds']:.0f} s"]

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * 6) + "|"]
    return "\n".join(lines + ["| " + " | ".join(cells(row)) + " |" for row in rows])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="dataset folder in the GTZAN layout")
    p.add_argument("--out", type=Path, default=Path("benchmark-accuracy"), help="features and runs go here")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--models", nargs="+", default=["mlp_msd"], help="model names; name:N trains it for N epochs")
    p.add_argument("--epochs", type=int, default=60, help="epochs of the models given without :N")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--refit", action="store_true", help="also refit each model on all training clips (train.py --refit)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a config value")
    args = p.parse_args(argv)
    import_tensorflow_quietly()
    from gtzan_tf.config import Config
    from gtzan_tf.data.index import load_index
    from gtzan_tf.models.registry import get_spec
    from gtzan_tf.prepare import ensure_prepared
    from gtzan_tf.training.folds import cross_validation_config

    base = Config().replace(data={"embeddings": ("MSD_musicnn",)}).with_overrides(args.set)
    base = cross_validation_config(base.replace(train={"folds": args.folds, "learning_rate": args.lr, "refit": args.refit}))
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
    counts = {split: fs.count(split, "source_clips") for split in ("train", "test")}
    print(f"{args.data} ({counts['train'] + counts['test']} clips: {counts['train']} train / {counts['test']} test), "
          f"{args.folds}-fold cross-validation over the training clips, one seed\n")
    print(table(rows))


if __name__ == "__main__":
    main()
