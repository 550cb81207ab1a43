"""PNG figures: confusion matrix and learning curves, written atomically (Agg canvas, no display)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gtzan_tf.files import atomic_path

LEARNING_RATE_COLUMNS = ("learning_rate", "lr")


def plot_confusion_matrix(cm, genres: Sequence[str], path, title: str | None = None) -> Path:
    """Counts annotated in each cell, coloured by the fraction of the true genre (row-normalised)."""
    counts = np.asarray(cm, dtype=np.int64)
    n = len(genres)
    if counts.shape != (n, n):
        raise ValueError(f"confusion matrix of shape {counts.shape} for {n} genres")
    row_totals = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, row_totals, out=np.zeros(counts.shape), where=row_totals > 0)

    size = 2.5 + 0.6 * n
    fig = Figure(figsize=(size + 1.2, size), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of true genre")
    for row in range(n):
        for col in range(n):
            ax.text(
                col, row, str(counts[row, col]), ha="center", va="center", fontsize=9,
                color="white" if fractions[row, col] > 0.5 else "black",
            )
    ax.set_xticks(range(n), labels=genres, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), labels=genres)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    return _save_atomically(fig, path)


def plot_history(history, path) -> Path:
    """Learning curves from a Keras CSVLogger file (or its DataFrame): losses, accuracies and, when
    logged, the learning rate, one panel each, against the (1-based) epoch."""
    frame = history if isinstance(history, pd.DataFrame) else pd.read_csv(history)
    if frame.empty:
        raise ValueError("training history has no epochs")
    epochs = frame["epoch"] + 1 if "epoch" in frame else pd.RangeIndex(1, len(frame) + 1)
    panels = [
        ("loss", [c for c in ("loss", "val_loss") if c in frame]),
        ("accuracy", [c for c in frame.columns if c.endswith("accuracy")]),
        ("learning rate", [c for c in LEARNING_RATE_COLUMNS if c in frame][:1]),
    ]
    panels = [(name, columns) for name, columns in panels if columns]
    if not panels:
        raise ValueError(f"no loss, accuracy or learning-rate columns in history: {list(frame.columns)}")

    fig = Figure(figsize=(4.5 * len(panels), 3.8), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, columns) in zip(axes, panels):
        for column in columns:
            ax.plot(epochs, frame[column], marker="o" if len(frame) < 30 else None, markersize=3, label=column)
        if name == "learning rate" and (frame[columns[0]] > 0).all():
            ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if len(columns) > 1:
            ax.legend(fontsize=8)
    return _save_atomically(fig, path)


def _save_atomically(fig: Figure, path) -> Path:
    """Save as PNG to a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path
