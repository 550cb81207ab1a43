"""Plain-text report of one evaluation and the markdown table that compares runs."""
from __future__ import annotations

from typing import Any, Sequence

HEADLINES = (
    ("clip accuracy (mean probabilities)", "clip_accuracy"),
    ("clip accuracy (majority vote)", "clip_accuracy_vote"),
    ("segment accuracy", "segment_accuracy"),
    ("macro F1 (clips)", "macro_f1"),
)
# (header, key) of the numeric columns of `compare_table`; fractions shown as percentages.
COMPARE_COLUMNS = (
    ("clip acc. (%)", "clip_accuracy"),
    ("clip acc., vote (%)", "clip_accuracy_vote"),
    ("segment acc. (%)", "segment_accuracy"),
    ("macro F1 (%)", "macro_f1"),
)
MISSING = "–"


def format_metrics_table(metrics: dict[str, Any]) -> str:
    """Headline numbers, per-genre precision/recall/F1/support, then the clip confusion matrix."""
    genres = list(metrics["genres"])
    label_width = max(len(label) for label, _ in HEADLINES)
    lines = [f"clips: {metrics['n_clips']}   segments: {metrics['n_segments']}"]
    lines += [f"{label:<{label_width}}  {_percent(metrics[key]):>7}" for label, key in HEADLINES]
    if "per_fold" in metrics:
        folds = metrics["per_fold"]
        lines[0] += (f"   (one model refit on all training clips for {metrics['refit_epochs']} epochs)"
                     if "refit_epochs" in metrics else
                     f"   (ensemble of {folds['n_runs']} fold models: mean of their probabilities)")
        lines += ["", f"each fold model alone, mean ± std over {folds['n_runs']}:"]
        lines += [f"{label:<{label_width}}  {_percent_cell(folds[key], folds[f'{key}_std'])}" for label, key in HEADLINES]

    genre_width = max(len("genre"), *(len(genre) for genre in genres))
    lines += ["", f"{'genre':<{genre_width}}  {'precision':>9}  {'recall':>8}  {'F1':>8}  {'support':>7}"]
    for genre in genres:
        scores = metrics["per_genre"][genre]
        lines.append(
            f"{genre:<{genre_width}}  {_percent(scores['precision']):>9}  {_percent(scores['recall']):>8}"
            f"  {_percent(scores['f1']):>8}  {scores['support']:>7}"
        )

    abbreviations = abbreviate(genres)
    matrix = metrics["confusion_matrix"]
    cell_width = max(max(len(a) for a in abbreviations), *(len(str(c)) for row in matrix for c in row))
    lines += ["", "confusion matrix (clips; rows true, columns predicted)"]
    lines.append(" " * genre_width + "".join(f"  {a:>{cell_width}}" for a in abbreviations))
    for genre, row in zip(genres, matrix):
        lines.append(f"{genre:<{genre_width}}" + "".join(f"  {count:>{cell_width}}" for count in row))
    return "\n".join(lines)


def compare_table(rows: Sequence[dict[str, Any]]) -> str:
    """GitHub-markdown table of runs: run, model, the four accuracies as percentages ("mean ± std"
    where a `{key}_std` is given and not None) and the number of runs averaged."""
    header = ["run", "model", *(title for title, _ in COMPARE_COLUMNS), "runs"]
    body = [
        [
            _markdown_text(row.get("run", MISSING)),
            _markdown_text(row.get("model", MISSING)),
            *(_percent_cell(row.get(key), row.get(f"{key}_std")) for _, key in COMPARE_COLUMNS),
            str(row.get("n_runs", MISSING)),
        ]
        for row in rows
    ]
    widths = [max(len(cells[i]) for cells in [header, *body]) for i in range(len(header))]
    right_aligned = [False, False] + [True] * (len(header) - 2)
    separator = ["-" * (w - 1) + ":" if right else "-" * w for w, right in zip(widths, right_aligned)]

    def render(cells: list[str]) -> str:
        padded = [c.rjust(w) if right else c.ljust(w) for c, w, right in zip(cells, widths, right_aligned)]
        return "| " + " | ".join(padded) + " |"

    return "\n".join([render(header), render(separator), *(render(cells) for cells in body)])


def abbreviate(genres: Sequence[str], length: int = 3) -> list[str]:
    """Genre prefixes of the shortest length (at least `length`) that tells every genre apart."""
    longest = max(len(genre) for genre in genres)
    while length < longest and len({genre[:length] for genre in genres}) < len(genres):
        length += 1
    return [genre[:length] for genre in genres]


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.2f}%"


def _percent_cell(mean: float | None, std: float | None) -> str:
    if mean is None:
        return MISSING
    return f"{100 * mean:.2f}" if std is None else f"{100 * mean:.2f} ± {100 * std:.2f}"


def _markdown_text(value: Any) -> str:
    return str(value).replace("|", "\\|")
