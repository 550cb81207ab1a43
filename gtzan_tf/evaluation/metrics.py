"""Segment- and clip-level metrics: a clip's prediction aggregates the predictions of its segments."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

SUMMARY_METRICS = ("clip_accuracy", "clip_accuracy_vote", "segment_accuracy", "macro_f1")


@dataclass(frozen=True)
class ClipPredictions:
    """Per-clip aggregates, clips in order of first appearance among the segments."""

    clip_ids: np.ndarray  # (M,)
    labels: np.ndarray  # (M,) int
    mean_probs: np.ndarray  # (M, C) mean of the segment probabilities
    vote: np.ndarray  # (M,) int, majority vote of the segment argmaxes

    @property
    def predictions(self) -> np.ndarray:
        """(M,) argmax of the mean probabilities."""
        return self.mean_probs.argmax(axis=1)


def aggregate_clips(segment_probs, clip_ids, segment_labels) -> ClipPredictions:
    """Group segments by clip: mean probabilities and majority vote.

    A tied vote goes to the tied class with the highest summed probability (then the lowest index).
    Raises ValueError on mismatched shapes or when a clip's segments disagree on the label.
    """
    probs, ids, labels = _check_inputs(segment_probs, clip_ids, segment_labels)
    unique_ids, first_index, inverse = np.unique(ids, return_index=True, return_inverse=True)
    order = np.argsort(first_index)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    clip_of_segment = rank[inverse.reshape(-1)]
    n_clips, n_classes = len(order), probs.shape[1]

    summed = np.zeros((n_clips, n_classes))
    np.add.at(summed, clip_of_segment, probs)
    counts = np.bincount(clip_of_segment, minlength=n_clips)
    votes = np.zeros((n_clips, n_classes), dtype=np.int64)
    np.add.at(votes, (clip_of_segment, probs.argmax(axis=1)), 1)
    tied = votes == votes.max(axis=1, keepdims=True)
    vote = np.where(tied, summed, -np.inf).argmax(axis=1)

    clip_labels = np.full(n_clips, -1, dtype=np.int64)
    clip_labels[clip_of_segment] = labels
    disagree = clip_labels[clip_of_segment] != labels
    if disagree.any():
        bad = ids[np.flatnonzero(disagree)[0]]
        raise ValueError(f"segments of clip {bad!r} disagree on the label")

    return ClipPredictions(
        clip_ids=unique_ids[order],
        labels=clip_labels,
        mean_probs=summed / counts[:, None],
        vote=vote,
    )


def evaluate_predictions(segment_probs, segment_labels, clip_ids, genres: Sequence[str]) -> dict[str, Any]:
    """Segment and clip metrics as a JSON-serialisable dict; clip-level scores use the mean probabilities
    except `clip_accuracy_vote`, the majority vote of the reference recipe."""
    probs, ids, labels = _check_inputs(segment_probs, clip_ids, segment_labels)
    genres = list(genres)
    if len(genres) != probs.shape[1]:
        raise ValueError(f"{len(genres)} genres for {probs.shape[1]} probability columns")
    clips = aggregate_clips(probs, ids, labels)
    predicted = clips.predictions
    class_indices = list(range(len(genres)))
    precision, recall, f1, support = precision_recall_fscore_support(
        clips.labels, predicted, labels=class_indices, zero_division=0
    )
    return {
        "clip_accuracy": float(np.mean(predicted == clips.labels)),
        "clip_accuracy_vote": float(np.mean(clips.vote == clips.labels)),
        "segment_accuracy": float(np.mean(probs.argmax(axis=1) == labels)),
        "macro_f1": float(f1.mean()),
        "per_genre": {
            genre: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, genre in enumerate(genres)
        },
        "confusion_matrix": confusion_matrix(clips.labels, predicted, labels=class_indices).tolist(),
        "genres": genres,
        "n_clips": len(clips.labels),
        "n_segments": len(labels),
    }


def summarize_seeds(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std over runs (seeds) of the headline metrics: `{metric}` and `{metric}_std` for each
    of SUMMARY_METRICS, plus `n_runs`. The std is the sample std (ddof=1); None for a single run."""
    if not runs:
        raise ValueError("no runs to summarize")
    summary: dict[str, Any] = {}
    for metric in SUMMARY_METRICS:
        values = np.array([run[metric] for run in runs], dtype=float)
        summary[metric] = float(values.mean())
        summary[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else None
    summary["n_runs"] = len(runs)
    return summary


def _check_inputs(segment_probs, clip_ids, segment_labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    probs = np.asarray(segment_probs, dtype=np.float64)
    ids = np.asarray(clip_ids)
    labels = np.asarray(segment_labels)
    if probs.ndim != 2 or probs.shape[0] == 0 or probs.shape[1] == 0:
        raise ValueError(f"segment_probs must be a non-empty (segments, classes) array, got shape {probs.shape}")
    if ids.shape != (len(probs),) or labels.shape != (len(probs),):
        raise ValueError(
            f"clip_ids {ids.shape} and segment_labels {labels.shape} must have one entry per segment ({len(probs)})"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"segment_labels must be integers, got {labels.dtype}")
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise ValueError(f"segment_labels must lie in [0, {probs.shape[1]})")
    return probs, ids, labels.astype(np.int64)


def predict_clips(model: keras.Model, clips: tf.data.Dataset, batch_size: int = 64):
    """Segment probabilities of every clip: (probs (N, C), labels (N,), clip ids (N,))."""
    inputs, labels, clip_ids = {}, [], []
    for features, label, clip_id in clips.as_numpy_iterator():
        for name, value in features.items():
            inputs.setdefault(name, []).append(value)
        n = len(next(iter(features.values())))
        labels.append(np.full(n, label))
        clip_ids.append(np.full(n, clip_id.decode(), dtype=object))
    batch = {name: np.concatenate(values) for name, values in inputs.items()}
    probs = model.predict(batch, batch_size=batch_size, verbose=0)
    return np.asarray(probs, np.float32), np.concatenate(labels), np.concatenate(clip_ids)


def clip_accuracy(probs: np.ndarray, labels: np.ndarray, clip_ids: np.ndarray) -> float:
    """Accuracy of the clip prediction = argmax of the mean segment probability."""
    clips = aggregate_clips(probs, clip_ids, labels)
    return float(np.mean(clips.predictions == clips.labels))


def clip_scores(probs: np.ndarray, labels: np.ndarray, clip_ids: np.ndarray) -> dict[str, float]:
    """Clip accuracy, clip loss (cross-entropy of the mean segment probability) and their rank.

    rank = accuracy - loss / (1 + loss) / (clips + 1): orders by accuracy first (one clip moves it
    by 1/clips, more than the loss term can), then by lower loss, so ties in accuracy go to the loss.
    """
    clips = aggregate_clips(probs, clip_ids, labels)
    accuracy = float(np.mean(clips.predictions == clips.labels))
    true_probs = clips.mean_probs[np.arange(len(clips.labels)), clips.labels]
    loss = float(-np.mean(np.log(np.clip(true_probs, 1e-7, 1.0))))
    return {"clip_accuracy": accuracy, "clip_loss": loss,
            "clip_rank": accuracy - loss / (1 + loss) / (len(clips.labels) + 1)}
