"""Evaluation metrics on a hand-built case, vote tie-breaking, seed summaries, plots and tables."""
import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from gtzan_tf.evaluation.metrics import aggregate_clips, evaluate_predictions, summarize_seeds
from gtzan_tf.evaluation.plots import plot_confusion_matrix, plot_history
from gtzan_tf.evaluation.report import abbreviate, compare_table, format_metrics_table

GENRES = ["blues", "classical", "country"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# (clip, label, segment probabilities), segments interleaved: clips first appear as c2, c1, c3, c4.
#   c1 (blues):     mean [.55 .35 .10] -> blues;     votes blues, blues -> blues
#   c2 (classical): mean [.40 .383 .217] -> blues;   votes blues, classical x2 -> classical
#   c3 (country):   mean [.15 .20 .65] -> country;   votes country x2 -> country
#   c4 (country):   mean [.20 .45 .35] -> classical; votes tie classical/country, sums .9 > .7 -> classical
SEGMENTS = [
    ("c2", 1, [0.9, 0.05, 0.05]),
    ("c1", 0, [0.6, 0.3, 0.1]),
    ("c2", 1, [0.2, 0.5, 0.3]),
    ("c3", 2, [0.1, 0.2, 0.7]),
    ("c1", 0, [0.5, 0.4, 0.1]),
    ("c4", 2, [0.1, 0.6, 0.3]),
    ("c2", 1, [0.1, 0.6, 0.3]),
    ("c3", 2, [0.2, 0.2, 0.6]),
    ("c4", 2, [0.3, 0.3, 0.4]),
]


def hand_case():
    clip_ids = np.array([clip for clip, _, _ in SEGMENTS])
    labels = np.array([label for _, label, _ in SEGMENTS])
    probs = np.array([p for _, _, p in SEGMENTS])
    return probs, labels, clip_ids


def test_aggregate_clips_means_votes_and_order():
    probs, labels, clip_ids = hand_case()
    clips = aggregate_clips(probs, clip_ids, labels)
    assert clips.clip_ids.tolist() == ["c2", "c1", "c3", "c4"]
    assert clips.labels.tolist() == [1, 0, 2, 2]
    np.testing.assert_allclose(
        clips.mean_probs,
        [[1.2 / 3, 1.15 / 3, 0.65 / 3], [0.55, 0.35, 0.10], [0.15, 0.20, 0.65], [0.20, 0.45, 0.35]],
        rtol=0, atol=1e-12,
    )
    assert clips.predictions.tolist() == [0, 0, 2, 1]
    assert clips.vote.tolist() == [1, 0, 2, 1]


def test_evaluate_predictions_hand_case():
    probs, labels, clip_ids = hand_case()
    metrics = evaluate_predictions(probs, labels, clip_ids, GENRES)
    # Mean probabilities: true [classical, blues, country, country], predicted [blues, blues, country, classical].
    assert metrics["clip_accuracy"] == 2 / 4
    assert metrics["clip_accuracy_vote"] == 3 / 4
    assert metrics["segment_accuracy"] == 7 / 9  # wrong: c2's first segment and c4's first segment
    assert metrics["confusion_matrix"] == [[1, 0, 0], [1, 0, 0], [0, 1, 1]]
    per_genre = metrics["per_genre"]
    assert per_genre["blues"] == pytest.approx({"precision": 1 / 2, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert per_genre["classical"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert per_genre["country"] == pytest.approx({"precision": 1.0, "recall": 1 / 2, "f1": 2 / 3, "support": 2})
    assert metrics["macro_f1"] == pytest.approx(4 / 9, abs=1e-12)
    assert metrics["genres"] == GENRES
    assert (metrics["n_clips"], metrics["n_segments"]) == (4, 9)
    assert json.loads(json.dumps(metrics)) == metrics


def test_absent_genre_keeps_its_row_and_column():
    probs = np.array([[0.8, 0.2, 0.0], [0.1, 0.9, 0.0]])
    metrics = evaluate_predictions(probs, np.array([0, 1]), np.array([10, 11]), GENRES)
    assert metrics["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]
    assert metrics["per_genre"]["country"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert metrics["macro_f1"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "segment_probs, expected_vote",
    [
        ([[0.45, 0.55, 0.0], [0.9, 0.1, 0.0]], 0),  # 1-1 tie, class 0 sums 1.35 > 0.65
        ([[0.6, 0.4, 0.0], [0.1, 0.9, 0.0]], 1),  # 1-1 tie, class 1 sums 1.3 > 0.7
        ([[0.0, 1.0, 0.0], [0.4, 0.3, 0.3], [0.4, 0.3, 0.3]], 0),  # most votes wins over a larger sum
    ],
)
def test_vote_ties_go_to_the_higher_summed_probability(segment_probs, expected_vote):
    n = len(segment_probs)
    clips = aggregate_clips(np.array(segment_probs), np.zeros(n, dtype=int), np.zeros(n, dtype=int))
    assert clips.vote.tolist() == [expected_vote]


def test_segments_disagreeing_on_the_label_raise():
    probs = np.full((3, 3), 1 / 3)
    with pytest.raises(ValueError, match="'b'"):
        aggregate_clips(probs, np.array(["a", "b", "b"]), np.array([0, 1, 2]))


def test_mismatched_inputs_raise():
    with pytest.raises(ValueError):
        aggregate_clips(np.full((3, 3), 1 / 3), np.array(["a", "b"]), np.array([0, 1, 2]))
    with pytest.raises(ValueError):
        evaluate_predictions(np.full((2, 3), 1 / 3), np.array([0, 1]), np.array(["a", "b"]), GENRES[:2])


def test_summarize_seeds_mean_and_sample_std():
    runs = [
        {"clip_accuracy": 0.80, "clip_accuracy_vote": 0.70, "segment_accuracy": 0.60, "macro_f1": 0.50},
        {"clip_accuracy": 0.90, "clip_accuracy_vote": 0.80, "segment_accuracy": 0.60, "macro_f1": 0.70},
    ]
    summary = summarize_seeds(runs)
    assert summary["n_runs"] == 2
    assert summary["clip_accuracy"] == pytest.approx(0.85)
    assert summary["clip_accuracy_std"] == pytest.approx(np.sqrt(2 * 0.05**2))  # ddof=1
    assert summary["clip_accuracy_vote"] == pytest.approx(0.75)
    assert summary["segment_accuracy_std"] == 0.0
    assert summary["macro_f1"] == pytest.approx(0.60)
    assert summary["macro_f1_std"] == pytest.approx(np.sqrt(2 * 0.1**2))
    single = summarize_seeds(runs[:1])
    assert single["clip_accuracy"] == 0.80 and single["clip_accuracy_std"] is None and single["n_runs"] == 1
    with pytest.raises(ValueError):
        summarize_seeds([])


def assert_valid_png(path, min_side=200):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    height, width, channels = imread(path).shape
    assert height >= min_side and width >= min_side and channels in (3, 4)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_plot_confusion_matrix_writes_png(tmp_path):
    probs, labels, clip_ids = hand_case()
    metrics = evaluate_predictions(probs, labels, clip_ids, GENRES)
    path = plot_confusion_matrix(metrics["confusion_matrix"], GENRES, tmp_path / "new" / "cm.png", title="test")
    assert path == tmp_path / "new" / "cm.png"
    assert_valid_png(path)
    with pytest.raises(ValueError):
        plot_confusion_matrix([[1, 0], [0, 1]], GENRES, tmp_path / "bad.png")


def test_plot_history_from_dataframe_and_csv(tmp_path):
    epochs = np.arange(12)
    history = pd.DataFrame({
        "epoch": epochs,
        "accuracy": 0.3 + 0.05 * epochs,
        "learning_rate": 1e-3 * 0.8**epochs,
        "loss": 2.0 / (1 + epochs),
        "val_accuracy": 0.25 + 0.04 * epochs,
        "val_clip_accuracy": 0.3 + 0.045 * epochs,
        "val_loss": 2.2 / (1 + 0.8 * epochs),
    })
    assert_valid_png(plot_history(history, tmp_path / "frame" / "history.png"))
    csv = tmp_path / "log.csv"
    history.rename(columns={"learning_rate": "lr"}).to_csv(csv, index=False)
    assert_valid_png(plot_history(csv, tmp_path / "csv" / "history.png"))
    with pytest.raises(ValueError):
        plot_history(history.iloc[:0], tmp_path / "empty.png")


def test_plot_replaces_an_existing_file(tmp_path):
    path = tmp_path / "cm.png"
    path.write_bytes(b"old")
    plot_confusion_matrix(np.eye(3, dtype=int), GENRES, path)
    assert_valid_png(path)


def test_format_metrics_table_lists_genres_and_numbers():
    probs, labels, clip_ids = hand_case()
    text = format_metrics_table(evaluate_predictions(probs, labels, clip_ids, GENRES))
    for expected in ("50.00%", "75.00%", "77.78%", "44.44%", "66.67%", "100.00%", "clips: 4", "segments: 9"):
        assert expected in text
    for genre in GENRES:
        assert genre in text
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("confusion matrix"))
    assert lines[header + 1].split() == ["blu", "cla", "cou"]
    assert [line.split() for line in lines[header + 2:]] == [
        ["blues", "1", "0", "0"], ["classical", "1", "0", "0"], ["country", "0", "1", "1"],
    ]


def test_abbreviations_are_unique():
    assert abbreviate(["classical", "classic_rock", "pop"]) == ["classica", "classic_", "pop"]
    assert abbreviate(["hiphop", "jazz"]) == ["hip", "jaz"]


def test_compare_table_is_markdown():
    rows = [
        {"run": "cnn", "model": "cnn2d", "clip_accuracy": 0.835, "clip_accuracy_std": 0.012,
         "clip_accuracy_vote": 0.82, "segment_accuracy": 0.7512, "macro_f1": 0.831, "n_runs": 3},
        {"run": "musicnn|msd", "model": "musicnn", "clip_accuracy": 0.9, "clip_accuracy_vote": None,
         "segment_accuracy": 0.8, "macro_f1": 0.89, "n_runs": 1},
    ]
    lines = compare_table(rows).splitlines()
    assert len(lines) == 4
    assert all(line.startswith("| ") and line.endswith(" |") for line in lines)
    assert set(lines[1]) <= {"|", "-", ":", " "}
    assert len({len(line) for line in lines}) == 1  # columns padded to equal widths
    assert "83.50 ± 1.20" in lines[2] and "82.00" in lines[2] and "75.12" in lines[2] and "83.10" in lines[2]
    assert "90.00" in lines[3] and "±" not in lines[3] and "–" in lines[3] and "musicnn\\|msd" in lines[3]
