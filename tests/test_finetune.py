"""Fine-tuned musicnn (feature kind "musicnn", musicnn_msd) and the small-data regularisers
(SpecAugment, mixup, branch dropout): parity with the frozen port, staged fine-tuning, training-only
behaviour, and serving == evaluate for a fine-tuned run."""
from __future__ import annotations

import importlib.util

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from gtzan_tf.config import Config
from gtzan_tf.data.audio import load_audio
from gtzan_tf.data.pipeline import eval_clip_dataset, load_feature_set, mixup
from gtzan_tf.errors import UserError
from gtzan_tf.features.frontend import ClipFrontend
from gtzan_tf.inference import load_run
from gtzan_tf.models import build_model, set_backbone_trainable
from gtzan_tf.models.augment import SpecAugment
from gtzan_tf.models.registry import build_for
from gtzan_tf.musicnn.model import DEAD_FILTER_TOLERANCE
from gtzan_tf.training.callbacks import FreezeBackbone

from conftest import clip_files, run_cli

if importlib.util.find_spec("musicnn") is None:
    pytest.skip("musicnn package not installed (pip install --no-deps musicnn==0.1.0)", allow_module_level=True)

MUSICNN_CFG = Config().replace(features={"kind": "musicnn"}, data={"embeddings": ("MSD_musicnn",)},
                               train={"model": "musicnn_msd"})


def waveform(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t * (1 + 0.1 * t)) + 0.05 * rng.standard_normal(t.size)).astype("float32")


def front_end_blocks(model: keras.Model):
    return [layer for layer in model.get_layer("backbone").layers if hasattr(layer, "moving_mean") and hasattr(layer, "kernel")]


@pytest.mark.parametrize("rate", [16000, 22050])
def test_untrained_finetunable_musicnn_gives_the_frozen_embedding(rate):
    cfg = MUSICNN_CFG.replace(audio={"sample_rate": rate})
    clip = ClipFrontend(cfg)(tf.constant(waveform(7.0, rate)))
    assert clip["segments"].shape == (2, 187, 96)
    backbone = build_for(cfg, 8).get_layer("backbone")
    for training in (False, True):  # True: every front-end filter convolved, batch norm frozen
        features = backbone(clip["segments"], training=training)
        np.testing.assert_allclose(tf.reduce_mean(features, 0), clip["msd_embedding"], atol=1e-4)


def test_frozen_stage_changes_only_the_head_and_fine_tuning_every_filter():
    model = build_model("musicnn_msd", n_classes=4)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    x = {"musicnn": ClipFrontend(MUSICNN_CFG, ())(tf.constant(waveform(12.0, 16000)))["segments"]}
    y = np.arange(4) % 4
    backbone = model.get_layer("backbone")
    before = [w.numpy() for w in backbone.weights]
    head = model.get_layer("logits").kernel.numpy()

    set_backbone_trainable(model, False)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    for w, old in zip(backbone.weights, before):
        np.testing.assert_array_equal(w.numpy(), old, err_msg=w.path)
    assert not np.array_equal(model.get_layer("logits").kernel.numpy(), head)

    set_backbone_trainable(model, True)
    model.make_train_function(force=True)
    block = front_end_blocks(model)[0]
    scale = np.abs(block.gamma.numpy() / np.sqrt(block.moving_variance.numpy() + block.epsilon))
    old_kernel = before[[w.path for w in backbone.weights].index(block.kernel.path)]
    reach = scale * np.abs(old_kernel).sum(axis=(0, 1, 2)) * float(np.abs(x["musicnn"]).max())
    dead = reach < DEAD_FILTER_TOLERANCE
    assert dead.any()  # the pretrained port has filters that inference skips
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    changed = {w.path for w, old in zip(backbone.weights, before) if not np.array_equal(w.numpy(), old)}
    assert any("kernel" in p for p in changed) and not any("moving" in p for p in changed)
    assert not any("gamma" in p or "beta" in p for p in changed)  # batch norm frozen
    kernel_change = np.abs(block.kernel.numpy() - old_kernel).sum(axis=(0, 1, 2))
    assert (kernel_change[dead] > 0).any()  # training reached filters the shortcut skips


def test_spec_augment_is_the_identity_at_inference_and_masks_bands_in_training():
    x = tf.random.stateless_normal((6, 40, 16), seed=(1, 2)) + 5.0
    layer = SpecAugment(time_masks=2, time_mask_frames=10, freq_masks=1, freq_mask_bins=5, seed=0)
    np.testing.assert_array_equal(layer(x), x)
    np.testing.assert_array_equal(layer(x, training=False), x)
    out = layer(x, training=True).numpy()
    zero = out == 0
    assert zero.any()
    rows, cols = zero.all(axis=2), zero.all(axis=1)  # masked frames are whole rows, masked bins whole columns
    np.testing.assert_array_equal(zero, rows[:, :, None] | cols[:, None, :])
    np.testing.assert_array_equal(out[~zero], x.numpy()[~zero])
    assert rows.sum(axis=1).max() <= 20 and cols.sum(axis=1).max() <= 5
    assert not np.array_equal(layer(x, training=True), out)  # new masks every batch


def test_spec_augment_is_in_the_model_from_the_config_and_saves_with_it(tmp_path):
    cfg = Config().replace(train={"model": "cnn1d", "time_masks": 1, "freq_masks": 1})
    model = build_for(cfg, 3)
    assert isinstance(model.get_layer("spec_augment"), SpecAugment)
    path = tmp_path / "m.keras"
    model.save(path)
    x = {"logmel": np.random.default_rng(0).standard_normal((2, 125, 96)).astype("float32")}
    np.testing.assert_allclose(keras.models.load_model(path)(x), model(x), atol=1e-6)
    with pytest.raises(ValueError):
        build_for(Config().replace(train={"model": "cnn1d"}), 3).get_layer("spec_augment")


def test_mixup_mixes_inputs_and_labels_alike():
    labels = tf.one_hot(np.arange(16) % 4, 4)
    features = {"logmel": tf.reshape(labels, (16, 1, 4)) * 10.0, "msd_embedding": labels * 3.0}
    mixed, mixed_labels = mixup(0.4, seed=3)(tf.constant(0, tf.int64), (features, labels))
    np.testing.assert_allclose(mixed["logmel"][:, 0] / 10.0, mixed_labels, atol=1e-6)
    np.testing.assert_allclose(mixed["msd_embedding"] / 3.0, mixed_labels, atol=1e-6)
    np.testing.assert_allclose(tf.reduce_sum(mixed_labels, 1), 1.0, atol=1e-6)
    assert not np.allclose(mixed_labels, labels)


def test_branch_dropout_drops_the_spectrogram_branch_in_training_only():
    model = build_model("cnn2d_msd", segment_shape=(32, 16), n_classes=3, branch_dropout=0.5)
    layer = model.get_layer("branch_dropout")
    audio = tf.ones((64, 8))
    np.testing.assert_array_equal(layer(audio, training=False), audio)
    kept = layer(audio, training=True).numpy()
    per_sample = kept.min(axis=1) == kept.max(axis=1)  # each sample's branch kept whole or dropped whole
    assert per_sample.all() and 0 < (kept[:, 0] == 0).sum() < 64


def test_model_and_feature_kind_must_agree():
    with pytest.raises(UserError, match="features.kind=musicnn"):
        build_model("musicnn_msd", feature_kind="logmel")


def test_staged_fine_tuning_lowers_the_learning_rate_when_it_unfreezes():
    model = build_model("resnet18", segment_shape=(32, 16), n_classes=3)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", run_eagerly=True)
    seen = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(
        (model.get_layer("backbone").trainable, float(model.optimizer.learning_rate.numpy()))))
    x = np.random.default_rng(0).standard_normal((4, 32, 16)).astype("float32")
    model.fit({"logmel": x}, np.arange(4) % 3, epochs=3, verbose=0, callbacks=[FreezeBackbone(1, 0.1), record])
    np.testing.assert_allclose([lr for _, lr in seen], [1e-3, 1e-4, 1e-4], rtol=1e-6)
    assert [trainable for trainable, _ in seen] == [False, True, True]


@pytest.fixture(scope="module")
def musicnn_run(tiny_data, tmp_path_factory):
    """train.py: musicnn_msd fine-tuned for one epoch (the best weights are fine-tuned ones)."""
    run = tmp_path_factory.mktemp("runs") / "musicnn_msd"
    result = run_cli(
        "train.py", "--model", "musicnn_msd", "--data", str(tiny_data), "--out", str(run), "--epochs", "1",
        "--batch-size", "8", "--quiet",
        "--set", "features.kind=musicnn", "--set", "data.validation_per_genre=1", "--set", "data.embeddings=",
        "--set", "train.time_masks=1", "--mixup", "0.2",
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return run


def test_finetuned_musicnn_serves_what_evaluate_scores(musicnn_run, tiny_data):
    run = load_run(musicnn_run)
    pretrained = build_for(run.cfg, len(run.genres)).get_layer("backbone")
    tuned = run.model.get_layer("backbone")
    assert any(not np.array_equal(a.numpy(), b.numpy()) for a, b in zip(pretrained.weights, tuned.weights))

    fs = load_feature_set(run.summary["features_dir"])
    features, _, _ = next(iter(eval_clip_dataset(fs, "test", run.inputs)))
    # The inference shortcut, re-derived from the fine-tuned weights, equals convolving every filter.
    np.testing.assert_allclose(tuned(features["musicnn"], training=False), tuned(features["musicnn"], training=True),
                               atol=1e-4)

    assert run_cli("evaluate.py", "--run", str(musicnn_run)).returncode == 0
    table = pd.read_csv(musicnn_run / "eval" / "predictions.csv").set_index("clip_id")
    serve = tf.saved_model.load(str(musicnn_run / "serving")).signatures["serving_default"]
    files = clip_files(tiny_data)
    for clip_id in table.index[:3]:
        out = serve(waveform=tf.constant(load_audio(files[clip_id], run.cfg.audio)))
        expected = table.loc[clip_id, [f"p_{g}" for g in run.genres]].to_numpy(np.float64)
        np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-4)
