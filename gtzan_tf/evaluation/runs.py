"""Evaluate finished runs: clip-level metrics, plots, and a comparison table over runs."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gtzan_tf.data.index import check_known_genres, load_index
from gtzan_tf.data.pipeline import FeatureSet, eval_clip_dataset, load_feature_set
from gtzan_tf.evaluation.metrics import (
    SUMMARY_METRICS, ClipPredictions, aggregate_clips, evaluate_predictions, predict_clips, summarize_seeds,
)
from gtzan_tf.evaluation.plots import plot_confusion_matrix, plot_history
from gtzan_tf.files import atomic_path, folder_lock, replace_dir, write_json
from gtzan_tf.inference import TrainedRun, load_run
from gtzan_tf.prepare import default_features_dir, ensure_prepared


@dataclass
class Evaluation:
    """The metrics of a run and the files that record them (written by `write`, after they are shown)."""

    run_dir: Path
    metrics: dict
    # (eval folder, metrics, genres, confusion matrix, title, history.csv, clip predictions or None)
    # per folder to write
    outputs: list[tuple[Path, dict, list, list, str, Path, ClipPredictions | None]] = field(default_factory=list)

    def write(self) -> None:
        """RUN_DIR/eval/{metrics.json,predictions.csv,confusion_matrix.png,history.png} (and each seed's),
        each eval folder replaced whole, holding the run folder's lock (one writer at a time)."""
        with folder_lock(self.run_dir):
            for out, metrics, genres, matrix, title, history, clips in self.outputs:

                def write(tmp: Path) -> None:
                    tmp.mkdir()
                    if clips is not None:
                        write_predictions(clips, genres, tmp / "predictions.csv")
                    plot_confusion_matrix(matrix, genres, tmp / "confusion_matrix.png", title=title)
                    if history.is_file():
                        plot_history(history, tmp / "history.png")
                    write_json(tmp / "metrics.json", metrics)

                replace_dir(out, write)


def evaluate_single(run: TrainedRun, data_dir: Path | None, split: str) -> Evaluation:
    """Metrics of one seeded run on `split`, with its per-clip predictions.csv and its confusion-matrix
    and learning-curve PNGs to write.

    A cross-validated run is scored as its ensemble (or its refit model); `folds` holds every fold
    model's headline metrics and `per_fold` their mean and std.
    """
    fs = evaluation_features(run, data_dir)
    clips = eval_clip_dataset(fs, split, run.inputs)
    probs, labels, clip_ids = predict_clips(run.model, clips)
    metrics = evaluate_predictions(probs, labels, clip_ids, run.genres)
    metrics.update(model=run.cfg.train.model, split=split, seed=run.cfg.train.seed)
    if run.members:
        metrics["folds"] = [headlines(evaluate_predictions(*predict_clips(m.model, clips), run.genres)) for m in run.members]
        metrics["per_fold"] = summarize_seeds(metrics["folds"])
    if run.summary.get("refit"):
        metrics["refit_epochs"] = run.summary["refit_epochs"]
    title = f"{run.cfg.train.model} · {split} · clip level"
    predictions = aggregate_clips(probs, clip_ids, labels)
    return Evaluation(run.root, metrics, [(run.root / "eval", metrics, run.genres, metrics["confusion_matrix"], title,
                                 run.root / "history.csv", predictions)])


def evaluation_features(run: TrainedRun, data_dir: Path | None) -> FeatureSet:
    """The verified features `run` is scored on, read as its model reads them (its genre order and
    normalisation): the run's own, or, with `data_dir`, that data's (prepared beside the run's own
    features when they are of other data; the run's own folder is never written with other data)."""
    features_dir = Path(run.summary["features_dir"])
    if data_dir is None:
        fs = load_feature_set(features_dir)
    else:
        index = load_index(data_dir, run.cfg.data)
        check_known_genres(index.genres, run.genres, data_dir)  # before any features are prepared
        if index.fingerprint() != run.summary.get("data_fingerprint"):
            features_dir = default_features_dir(features_dir.parent, run.cfg, index)
        fs = ensure_prepared(index, features_dir, run.cfg)
    return fs.scored_by(run.genres, run.normalization)


def evaluate_run(run_dir: str | Path, data_dir: Path | None = None, split: str = "test") -> Evaluation:
    """Evaluate a run; a multi-seed run reports the mean and std over its seeds."""
    run = load_run(run_dir)
    per_seed = [evaluate_single(seed_run, data_dir, split) for seed_run in run.seed_runs]
    if len(per_seed) == 1:
        return per_seed[0]
    seed_metrics = [e.metrics for e in per_seed]
    metrics = {**seed_metrics[0], **summarize_seeds(seed_metrics), "seeds": [m["seed"] for m in seed_metrics]}
    metrics.pop("seed")
    if "folds" in metrics:
        metrics["folds"] = [fold for m in seed_metrics for fold in m["folds"]]
        metrics["per_fold"] = summarize_seeds(metrics["folds"])
    title = f"{run.cfg.train.model} · {split} · {len(per_seed)} seeds summed"
    outputs = [output for e in per_seed for output in e.outputs]
    outputs.append((run.root / "eval", metrics, run.genres, sum_matrices(seed_metrics), title,
                    run.seed_runs[0].root / "history.csv", None))
    return Evaluation(run.root, metrics, outputs)


def write_predictions(clips: ClipPredictions, genres: list[str], path: Path) -> None:
    """One row per clip: clip_id, true genre, predicted genre, one probability column per genre."""
    import pandas as pd

    frame = pd.DataFrame({
        "clip_id": clips.clip_ids,
        "genre": [genres[i] for i in clips.labels],
        "predicted": [genres[i] for i in clips.predictions],
        **{f"p_{genre}": clips.mean_probs[:, k] for k, genre in enumerate(genres)},
    })
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.8g")


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
