"""Evaluate finished runs: clip-level metrics, plots, and a comparison table over runs."""
from __future__ import annotations

from pathlib import Path

from gtzan_tf.data.pipeline import eval_clip_dataset, load_feature_set
from gtzan_tf.evaluation.metrics import SUMMARY_METRICS, evaluate_predictions, predict_clips, summarize_seeds
from gtzan_tf.evaluation.plots import plot_confusion_matrix, plot_history
from gtzan_tf.inference import TrainedRun, load_run
from gtzan_tf.prepare import ensure_prepared
from gtzan_tf.utils import write_json


def evaluate_single(run: TrainedRun, data_dir: Path | None, split: str) -> dict:
    """Metrics of one seeded run on `split`, plus its confusion-matrix and learning-curve PNGs.

    A cross-validated run is scored as its ensemble (or its refit model); `folds` holds every fold
    model's headline metrics and `per_fold` their mean and std.
    """
    features_dir = Path(run.summary["features_dir"])
    if data_dir is not None:
        ensure_prepared(data_dir, features_dir, run.cfg)
    fs = load_feature_set(features_dir)
    clips = eval_clip_dataset(fs, split, run.inputs)
    metrics = evaluate_predictions(*predict_clips(run.model, clips), run.genres)
    metrics.update(model=run.cfg.train.model, split=split, seed=run.cfg.train.seed)
    if run.members:
        metrics["folds"] = [headlines(evaluate_predictions(*predict_clips(m.model, clips), run.genres)) for m in run.members]
        metrics["per_fold"] = summarize_seeds(metrics["folds"])
    if run.summary.get("refit"):
        metrics["refit_epochs"] = run.summary["refit_epochs"]
    out = run.root / "eval"
    plot_confusion_matrix(metrics["confusion_matrix"], run.genres, out / "confusion_matrix.png",
                          title=f"{run.cfg.train.model} · {split} · clip level")
    if (run.root / "history.csv").is_file():
        plot_history(run.root / "history.csv", out / "history.png")
    write_json(out / "metrics.json", metrics)
    return metrics


def evaluate_run(run_dir: str | Path, data_dir: Path | None = None, split: str = "test") -> dict:
    """Evaluate a run; a multi-seed run reports the mean and std over its seeds."""
    run = load_run(run_dir)
    per_seed = [evaluate_single(seed_run, data_dir, split) for seed_run in run.seed_runs]
    if len(per_seed) == 1:
        return per_seed[0]
    metrics = {**per_seed[0], **summarize_seeds(per_seed), "seeds": [m["seed"] for m in per_seed]}
    metrics.pop("seed")
    if "folds" in metrics:
        metrics["folds"] = [fold for m in per_seed for fold in m["folds"]]
        metrics["per_fold"] = summarize_seeds(metrics["folds"])
    out = run.root / "eval"
    plot_confusion_matrix(sum_matrices(per_seed), run.genres, out / "confusion_matrix.png",
                          title=f"{run.cfg.train.model} · {split} · {len(per_seed)} seeds summed")
    plot_history(run.seed_runs[0].root / "history.csv", out / "history.png")
    write_json(out / "metrics.json", metrics)
    return metrics


def headlines(metrics: dict) -> dict:
    return {key: metrics[key] for key in SUMMARY_METRICS}


def sum_matrices(per_seed: list[dict]) -> list[list[int]]:
    import numpy as np

    return np.sum([m["confusion_matrix"] for m in per_seed], axis=0).tolist()


def comparison_row(run_dir: Path, metrics: dict) -> dict:
    model = metrics["model"]
    if "per_fold" in metrics:
        folds = metrics["per_fold"]["n_runs"] // metrics.get("n_runs", 1)
        model += f" (refit after {folds} folds)" if "refit_epochs" in metrics else f" (ensemble of {folds} folds)"
    row = {"run": str(run_dir), "model": model, "n_runs": metrics.get("n_runs", 1)}
    for key in SUMMARY_METRICS:
        row[key] = metrics[key]
        row[f"{key}_std"] = metrics.get(f"{key}_std")
    return row
