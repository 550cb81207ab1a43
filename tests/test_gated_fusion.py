"""The gated two-branch fusion (`--fusion gated`) and its embedding-branch-first stage
(`--embedding-epochs`): the untrained model is its embedding branch, and a run never ends on a model
that validates worse than that branch alone."""
from __future__ import annotations

import json

import keras
import numpy as np
import pandas as pd
import pytest

from gtzan_tf.config import Config
from gtzan_tf.data.pipeline import eval_clip_dataset, load_feature_set
from gtzan_tf.errors import UserError
from gtzan_tf.evaluation.metrics import clip_scores, predict_clips
from gtzan_tf.models import build_model
from gtzan_tf.models.fusion import AudioGate, embedding_branch_model
from gtzan_tf.models.registry import build_for, run_inputs
from gtzan_tf.training.trainer import EMBEDDING_HISTORY, train_one, validate

from conftest import TINY_MSD

SHAPE = (32, 16)


def inputs(seed: int, n: int = 6, embedding=None) -> dict:
    rng = np.random.default_rng(seed)
    embedding = rng.standard_normal((n, 753)).astype("float32") if embedding is None else embedding
    return {"logmel": rng.standard_normal((n, *SHAPE)).astype("float32"), "msd_embedding": embedding}


def test_the_untrained_gated_model_is_its_embedding_branch_and_shares_its_weights(tmp_path):
    keras.utils.set_random_seed(0)
    model = build_model("cnn2d_msd", segment_shape=SHAPE, n_classes=4, fusion="gated", dropout=0.2)
    branch = embedding_branch_model(model)
    a = inputs(0)
    b = inputs(1, embedding=a["msd_embedding"])  # other spectrograms, same embeddings
    for x in (a, b):
        np.testing.assert_array_equal(model(x), branch({"msd_embedding": x["msd_embedding"]}))

    branch.compile(optimizer=keras.optimizers.Adam(1e-2), loss="categorical_crossentropy")
    branch.fit({"msd_embedding": a["msd_embedding"]}, np.eye(4)[np.arange(6) % 4], epochs=2, verbose=0)
    np.testing.assert_array_equal(model(a), branch({"msd_embedding": a["msd_embedding"]}))  # trained in both

    gate = next(layer for layer in model.layers if isinstance(layer, AudioGate))
    gate.gate.assign(10.0)
    assert np.abs(np.asarray(model(a)) - np.asarray(model(b))).max() > 1e-3  # now the audio counts
    model.save(tmp_path / "gated.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "gated.keras")(a), model(a), atol=1e-6)


@pytest.mark.parametrize("settings, message", [
    ({"fusion": "reference", "embedding_epochs": 3}, "with --fusion gated"),
    ({"model": "mlp_msd", "fusion": "gated", "embedding_epochs": 3}, "needs a two-branch model"),
    ({"fusion": "gated", "embedding_epochs": 3, "folds": 3, "refit": True}, "--refit does not run"),
])
def test_embedding_epochs_without_a_gated_two_branch_model_is_one_clear_error(settings, message):
    with pytest.raises(UserError, match=message):
        validate(Config().replace(train={"model": "cnn2d_msd", **settings}))
    with pytest.raises(UserError, match="no gated fusion"):
        embedding_branch_model(build_model("cnn2d_msd", segment_shape=SHAPE))


def test_a_run_never_ends_below_its_embedding_branch_on_validation(msd_features, tmp_path):
    # A learning rate that wrecks the randomly initialised spectrogram branch in its one epoch:
    # ModelCheckpoint alone would keep that epoch; with the embedding stage as its bar, it keeps the branch.
    cfg = TINY_MSD.replace(train={"model": "cnn2d_msd", "fusion": "gated", "embedding_epochs": 4, "epochs": 1,
                                  "learning_rate": 0.3, "batch_size": 8, "seed": 0})
    fs = load_feature_set(msd_features)
    summary = train_one(cfg, fs, tmp_path / "run", verbose=0)

    stage = pd.read_csv(tmp_path / "run" / EMBEDDING_HISTORY)
    assert 1 <= len(stage) <= 4
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    bar = summary["embedding_stage"]["val_clip_loss"]
    assert history["val_clip_loss"].min() > bar  # the wrecked epoch did not beat the branch...
    assert summary["embedding_stage"]["kept"] and summary["best_epoch"] == 0  # ...so the branch is the model

    model = build_for(cfg, len(fs.genres))
    model.load_weights(tmp_path / "run" / "best.weights.h5")
    valid = eval_clip_dataset(fs, "valid", run_inputs(cfg))
    assert clip_scores(*predict_clips(model, valid))["clip_loss"] == pytest.approx(bar, abs=1e-6)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["best_epoch"] == 0
