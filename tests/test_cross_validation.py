"""Small labelled sets: the validation hold-out, clip-level model selection, K-fold runs and ensembles."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from gtzan_tf.config import DataConfig
from gtzan_tf.data.audio import load_audio
from gtzan_tf.data.folds import assign_folds, make_folds
from gtzan_tf.data.index import load_index, validation_size
from gtzan_tf.data.pipeline import clip_dataset, clip_table, count_segments, eval_clip_dataset, load_feature_set
from gtzan_tf.errors import UserError
from gtzan_tf.evaluation.metrics import clip_scores, predict_clips
from gtzan_tf.inference import load_run

from conftest import clip_files, run_cli

K = 4  # more folds than the tiny set's 3 training clips per genre: every genre is a small genre here
FOLD_ARGS = ["--model", "cnn1d", "--folds", str(K), "--epochs", "2", "--batch-size", "8", "--seed", "5", "--quiet",
             "--set", "data.embeddings="]
# 2 to 25 clips per genre, as in the real development set (disco has 2).
GENRES = {"classical": 25, "country": 4, "disco": 2, "hiphop": 12, "jazz": 25, "metal": 9, "pop": 15, "reggae": 7}
GENRE_OF = {f"{g}.{i:05d}": g for g, n in GENRES.items() for i in range(n)}


def test_holdout_is_a_fraction_with_a_per_genre_minimum_and_small_genres_still_train(tiny_data):
    cfg = DataConfig(validation_fraction=0.2, validation_per_genre=2)
    assert [validation_size(n, cfg) for n in (1, 2, 3, 5, 10, 20, 71)] == [0, 1, 1, 2, 2, 4, 14]
    assert [validation_size(n, DataConfig()) for n in (2, 69, 79)] == [1, 5, 6]  # defaults: about 5 of GTZAN's ~70
    index = load_index(tiny_data, DataConfig(validation_per_genre=5))  # more than a genre has: half of it is held out
    assert Counter(c.genre for c in index.split("valid")) == {g: 1 for g in index.genres}
    assert Counter(c.genre for c in index.split("train")) == {g: 2 for g in index.genres}
    with pytest.raises(UserError, match="validation_fraction"):
        load_index(tiny_data, DataConfig(validation_fraction=1.0))


def test_clip_rank_orders_by_accuracy_then_by_lower_loss():
    labels, ids = np.array([0, 0, 1, 1]), np.array(["a", "a", "b", "b"])
    confident = clip_scores(np.array([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.1, 0.9]]), labels, ids)
    unsure = clip_scores(np.array([[0.6, 0.4], [0.6, 0.4], [0.4, 0.6], [0.4, 0.6]]), labels, ids)
    wrong = clip_scores(np.array([[0.9, 0.1], [0.9, 0.1], [0.9, 0.1], [0.9, 0.1]]), labels, ids)
    assert confident["clip_accuracy"] == unsure["clip_accuracy"] == 1.0 and wrong["clip_accuracy"] == 0.5
    np.testing.assert_allclose(confident["clip_loss"], -np.log(0.9), rtol=1e-6)
    np.testing.assert_allclose(wrong["clip_loss"], -(np.log(0.9) + np.log(0.1)) / 2, rtol=1e-6)
    assert confident["clip_rank"] > unsure["clip_rank"] > wrong["clip_rank"]
    assert unsure["clip_rank"] > 1 - 1 / 2  # a loss never costs as much as one clip


def test_folds_are_stratified_disjoint_balanced_and_seeded():
    folds = assign_folds(GENRE_OF, 5, seed=0)
    assert set(folds) == set(GENRE_OF) and set(folds.values()) == set(range(5))
    splits = make_folds(folds, 5)
    assert sorted(c for f in splits for c in f.valid) == sorted(GENRE_OF)  # every clip validated exactly once
    for f in splits:
        assert not set(f.train) & set(f.valid) and len(f.train) + len(f.valid) == len(GENRE_OF)
    sizes = Counter(folds.values())
    assert max(sizes.values()) - min(sizes.values()) <= 1
    for genre, n in GENRES.items():
        per_fold = Counter(folds[c] for c, g in GENRE_OF.items() if g == genre)
        assert len(per_fold) == min(n, 5) and max(per_fold.values()) - min(per_fold.values(), default=0) <= 1
        if n >= 5:
            assert set(per_fold) == set(range(5))
    disco = [f for f in splits if any(c.startswith("disco") for c in f.valid)]
    assert len(disco) == 2 and all(sum(c.startswith("disco") for c in f.train) == 1 for f in disco)
    assert assign_folds(GENRE_OF, 5, seed=0) == folds and assign_folds(GENRE_OF, 5, seed=1) != folds
    with pytest.raises(UserError, match="at least 2 folds"):
        assign_folds(GENRE_OF, 1)


@pytest.fixture(scope="module")
def fold_runs(tiny_data, tmp_path_factory):
    """The same seeded `train.py --folds 4` run twice, sharing one features folder."""
    root = tmp_path_factory.mktemp("folds")
    runs = [root / "a", root / "b"]
    for run in runs:
        result = run_cli("train.py", "--data", str(tiny_data), "--features", str(root / "features"),
                         "--out", str(run), *FOLD_ARGS)
        assert result.returncode == 0, result.stderr[-4000:]
    return runs


def test_fold_selection_keeps_augmented_versions_with_their_source(fold_runs):
    run = load_run(fold_runs[0])
    fs = load_feature_set(run.summary["features_dir"])
    assert "valid" not in fs.manifest["splits"] and fs.count("train", "source_clips") == 24
    assignment = json.loads((fold_runs[0] / "folds.json").read_text())
    sources = {row["source_id"] for row in clip_table(fs, "train")}
    assert set(assignment) == sources
    for fold in make_folds(assignment, K):
        versions = [cid.decode() for _, _, cid in clip_dataset(fs, "train", ("logmel",), sources=fold.train)
                    .as_numpy_iterator()]
        assert sorted(versions) == sorted([*fold.train, *(f"{c}.aug1" for c in fold.train)])
        segments = sum(len(f["logmel"]) for f, _, _ in clip_dataset(fs, "train", ("logmel",), sources=fold.train)
                       .as_numpy_iterator())
        assert count_segments(fs, "train", fold.train) == segments
        valid = [cid.decode() for _, _, cid in eval_clip_dataset(fs, "train", ("logmel",), fold.valid)
                 .as_numpy_iterator()]
        assert sorted(valid) == list(fold.valid)  # originals only


def test_every_training_clip_is_validated_once_even_in_genres_with_fewer_clips_than_folds(fold_runs):
    run = load_run(fold_runs[0])
    assert run.summary["folds"] == K and [m.root.name for m in run.members] == [f"fold-{i}" for i in range(K)]
    assignment = json.loads((run.root / "folds.json").read_text())
    genre_of = {c: c.split("/")[0] for c in assignment}  # clip ids are genre/name
    validated = Counter()
    for member in run.members:
        fold = member.summary["fold"]
        valid = {c for c, f in assignment.items() if f == fold}
        validated.update(valid)
        assert member.summary["valid_clips"] == len(valid) == 6
        # each genre (3 clips, 4 folds) is missing from one fold's validation; that fold trains on all 3
        trained = Counter(genre_of[c] for c, f in assignment.items() if f != fold)
        assert all(trained[g] in (2, 3) for g in run.genres) and sum(trained.values()) == 18
        history = pd.read_csv(member.root / "history.csv")
        assert {"val_clip_loss", "val_clip_accuracy", "val_clip_rank"} <= set(history)
        assert member.summary["best_epoch"] == int(history["val_clip_loss"].idxmin()) + 1
    assert validated == Counter(list(assignment)) and len(validated) == 24
    oof = sum(m.summary["valid_clip_accuracy"] * m.summary["valid_clips"] for m in run.members) / 24
    assert run.summary["valid_clip_accuracy"] == pytest.approx(oof)
    assert (run.root / "serving" / "saved_model.pb").is_file()
    assert not any((member.root / "serving").exists() for member in run.members)


def test_out_of_fold_predictions_score_every_training_clip_once_as_run_json_says(fold_runs):
    from gtzan_tf.training.folds import out_of_fold_predictions

    run = load_run(fold_runs[0])
    fs = load_feature_set(run.summary["features_dir"])
    oof = out_of_fold_predictions(fs, run.root)
    assert list(oof.clip_ids) == sorted(json.loads((run.root / "folds.json").read_text()))
    assert np.mean(oof.predictions == oof.labels) == pytest.approx(run.summary["valid_clip_accuracy"])
    true_probs = oof.mean_probs[np.arange(24), oof.labels]
    assert -np.mean(np.log(np.clip(true_probs, 1e-7, 1))) == pytest.approx(run.summary["valid_clip_loss"], rel=1e-5)


def test_a_seeded_fold_run_repeats_exactly(fold_runs):
    a, b = fold_runs
    assert (a / "folds.json").read_text() == (b / "folds.json").read_text()
    for i in range(K):
        pd.testing.assert_frame_equal(pd.read_csv(a / f"fold-{i}" / "history.csv"), pd.read_csv(b / f"fold-{i}" / "history.csv"))
        assert (a / f"fold-{i}" / "best.weights.h5").read_bytes() == (b / f"fold-{i}" / "best.weights.h5").read_bytes()


def test_ensemble_probabilities_are_the_mean_of_its_members(fold_runs):
    run = load_run(fold_runs[0])
    fs = load_feature_set(run.summary["features_dir"])
    clips = eval_clip_dataset(fs, "test", run.inputs)
    probs, labels, ids = predict_clips(run.model, clips)
    members = np.mean([predict_clips(m.model, clips)[0] for m in run.members], axis=0)
    np.testing.assert_allclose(probs, members, atol=1e-6)
    assert len(run.members) == K and not np.allclose(predict_clips(run.members[0].model, clips)[0], probs, atol=1e-3)


def test_evaluate_scores_the_ensemble_and_the_serving_model_equals_it(fold_runs, tiny_data):
    from gtzan_tf.evaluation.report import format_metrics_table

    run = load_run(fold_runs[0])
    compare = run_cli("evaluate.py", "--compare", str(run.root))  # evaluates the run, as --run does
    assert compare.returncode == 0 and f"| cnn1d (ensemble of {K} folds) |" in compare.stdout
    metrics = json.loads((run.root / "eval" / "metrics.json").read_text())
    report = format_metrics_table(metrics)
    assert f"ensemble of {K} fold models" in report and f"mean ± std over {K}" in report
    fold_acc = [f["clip_accuracy"] for f in metrics["folds"]]
    assert len(fold_acc) == K and metrics["per_fold"]["clip_accuracy"] == pytest.approx(np.mean(fold_acc))
    assert metrics["per_fold"]["clip_accuracy_std"] == pytest.approx(np.std(fold_acc, ddof=1))

    fs = load_feature_set(run.summary["features_dir"])
    probs, labels, ids = predict_clips(run.model, eval_clip_dataset(fs, "test", run.inputs))
    assert metrics["clip_accuracy"] == pytest.approx(np.mean([probs[ids == c].mean(0).argmax() == labels[ids == c][0]
                                                              for c in np.unique(ids)]))
    serve = tf.saved_model.load(str(run.root / "serving")).signatures["serving_default"]
    files = clip_files(tiny_data)
    for clip_id in sorted(set(ids))[:3]:
        y = load_audio(files[clip_id], run.cfg.audio)
        out = serve(waveform=tf.constant(y))["probabilities"].numpy()
        np.testing.assert_allclose(out, probs[ids == clip_id].mean(axis=0), atol=1e-4)


def test_refit_and_seeds_combine_with_folds(fold_runs, tiny_data, tmp_path):
    """--folds 2 --seeds 2 --refit: every seed is a repeated cross-validation (its own folds) whose
    model is one refit on all training clips for the folds' median best epoch."""
    from gtzan_tf.evaluation.metrics import clip_accuracy
    from gtzan_tf.training.experiment import train

    folded = load_run(fold_runs[0])
    cfg = folded.cfg.replace(train={"folds": 2, "seeds": 2, "epochs": 3, "refit": True})
    summary = train(cfg, tiny_data, tmp_path / "run", features_dir=folded.summary["features_dir"], verbose=0)
    seeds = load_run(tmp_path / "run").seed_runs
    assert [s.root.name for s in seeds] == ["seed-0", "seed-1"] and [s.cfg.train.seed for s in seeds] == [5, 6]
    assert all([m.root.name for m in s.members] == ["fold-0", "fold-1"] for s in seeds)
    assert (seeds[0].root / "folds.json").read_text() != (seeds[1].root / "folds.json").read_text()
    assert summary["test_clip_accuracy_mean"] == pytest.approx(np.mean([s.summary["test_clip_accuracy"] for s in seeds]))
    test = eval_clip_dataset(load_feature_set(folded.summary["features_dir"]), "test", folded.inputs)
    for run in seeds:
        epochs = int(np.median(run.summary["best_epochs"]))
        assert run.summary["refit_epochs"] == epochs and len(pd.read_csv(run.root / "refit" / "history.csv")) == epochs
        refit = load_run(run.root / "refit")
        np.testing.assert_array_equal(predict_clips(run.model, test)[0], predict_clips(refit.model, test)[0])
        assert run.summary["test_clip_accuracy"] == clip_accuracy(*predict_clips(refit.model, test))
        assert "ensemble_test_clip_accuracy" in run.summary



def test_finishing_a_fold_keeps_the_run_s_mixed_precision_policy(fold_runs, tmp_path):
    """--mixed-precision holds for every fold and seed: scoring a finished fold model once reset the
    policy to float32, so every later fold and seed of the run trained in float32."""
    import keras

    from gtzan_tf.training.trainer import finish_run

    run = load_run(fold_runs[0])
    member = run.members[0]
    fold = make_folds(json.loads((run.root / "folds.json").read_text()), run.cfg.train.folds)[0]
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        finish_run(member.cfg, load_feature_set(run.summary["features_dir"]), member.model, tmp_path, fold)
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
    finally:
        keras.mixed_precision.set_global_policy("float32")
