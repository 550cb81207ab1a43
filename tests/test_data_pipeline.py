"""The data path: index -> audio -> augmentation -> features -> sharded records -> tf.data."""
from __future__ import annotations

import json

import librosa
import numpy as np
import pytest

from gtzan_tf.config import Config
from gtzan_tf.data.audio import load_audio
from gtzan_tf.data.augment import augmented_copies
from gtzan_tf.data.index import load_index
from gtzan_tf.data.pipeline import eval_clip_dataset, load_feature_set, segment_dataset
from gtzan_tf.errors import UserError

from conftest import TINY


def records_by_clip(fs, split):
    import tensorflow as tf

    from gtzan_tf.data.records import clip_parser

    parse = clip_parser(fs.segment_shape, fs.embedding_dims)
    out = {}
    for ex in tf.data.TFRecordDataset(fs.files(split)).map(parse).as_numpy_iterator():
        out[ex["clip_id"].decode()] = ex
    return out


def test_index_splits_and_validation_hold_out(tiny_data):
    index = load_index(tiny_data, TINY.data)
    assert len(index.genres) == 8
    counts = {s: len(index.split(s)) for s in ("train", "valid", "test")}
    assert counts == {"train": 16, "valid": 8, "test": 8}
    assert sorted(c.genre for c in index.split("valid")) == sorted(index.genres)
    again = load_index(tiny_data, TINY.data)
    assert [c.clip_id for c in again.split("valid")] == [c.clip_id for c in index.split("valid")]
    other_seed = load_index(tiny_data, TINY.replace(data={"split_seed": 1}).data)
    assert {c.clip_id for c in other_seed.split("valid")} != {c.clip_id for c in index.split("valid")}


def test_shipped_gtzan8_lists_have_the_reference_counts():
    from importlib import resources

    splits = resources.files("gtzan_tf.data") / "splits"
    train = (splits / "train.txt").read_text().split()
    test = (splits / "test.txt").read_text().split()
    assert (len(train), len(test)) == (580, 150)
    assert not set(train) & set(test)
    assert {line.split("/")[0] for line in train} == {
        "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae"}


def test_prepared_features_equal_librosa_log_mel(tiny_data, tiny_features):
    fs = load_feature_set(tiny_features)
    cfg = fs.config.features
    records = records_by_clip(fs, "test")
    index = load_index(tiny_data, TINY.data)
    for clip in index.split("test")[:3]:
        y, sr = librosa.load(clip.path, sr=16000, mono=True, res_type="soxr_hq")
        mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=1024, hop_length=512, n_mels=96)
        expected = librosa.power_to_db(mel, ref=1.0, top_db=80.0).T
        got = records[clip.clip_id]["features"]
        n = len(expected) // cfg.segment_frames
        assert got.shape == (n, 125, 96)
        np.testing.assert_allclose(got.reshape(-1, 96), expected[: n * 125], atol=1e-4)


def test_segment_counts_and_clip_ids(tiny_data, tiny_features):
    fs = load_feature_set(tiny_features)
    index = load_index(tiny_data, TINY.data)
    # 5 s at 16 kHz, hop 512, centred: 157 frames -> 1 whole 125-frame segment per clip.
    for split in ("train", "valid", "test"):
        records = records_by_clip(fs, split)
        originals = {c.clip_id for c in index.split(split)}
        expected = originals | ({f"{c}.aug1" for c in originals} if split != "test" else set())
        assert set(records) == expected
        assert all(r["n_segments"] == 1 and r["features"].shape[0] == 1 for r in records.values())
        assert fs.count(split, "clips") == len(expected)
        assert all(r["source_id"].decode() == r["clip_id"].decode().split(".aug")[0] for r in records.values())
    labels = {r["clip_id"].decode(): (r["genre"].decode(), r["label"]) for r in records_by_clip(fs, "train").values()}
    assert all(fs.genres[label] == genre and cid.startswith(genre) for cid, (genre, label) in labels.items())


def test_long_clip_gives_one_segment_per_four_seconds_and_short_clip_is_repeat_padded():
    from gtzan_tf.config import SEGMENTS
    from gtzan_tf.features.frontend import frontend_function

    cfg = Config().replace(data={"embeddings": ()})
    frontend = frontend_function(cfg)
    sr = cfg.audio.sample_rate
    long_clip = np.random.default_rng(0).standard_normal(30 * sr).astype(np.float32) * 0.1
    assert frontend(long_clip)[SEGMENTS].shape == (7, 125, 96)
    short = long_clip[: 2 * sr]
    padded = np.concatenate([short, short])[: cfg.features.segment_samples]
    np.testing.assert_array_equal(frontend(short)[SEGMENTS], frontend(padded)[SEGMENTS])
    assert frontend(short)[SEGMENTS].shape == (1, 125, 96)


def test_augmentation_is_deterministic_and_seed_dependent(tiny_data):
    index = load_index(tiny_data, TINY.data)
    clip = index.split("train")[0]
    y = load_audio(clip.path, TINY.audio)
    a = augmented_copies(y, 16000, clip.clip_id, TINY.augment)
    b = augmented_copies(y, 16000, clip.clip_id, TINY.augment)
    c = augmented_copies(y, 16000, clip.clip_id, TINY.replace(augment={"seed": 1}).augment)
    assert len(a) == 1 and a[0].shape == y.shape
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.allclose(a[0], c[0])
    assert not np.allclose(a[0], y)


def test_augmentation_never_touches_test(tiny_data, tiny_features):
    fs = load_feature_set(tiny_features)
    test_records = records_by_clip(fs, "test")
    assert not any(".aug" in cid for cid in test_records)
    with pytest.raises(UserError, match="never touch the test split"):
        Config().replace(augment={"splits": ("train", "test")})


def test_pipeline_batches_are_normalised_and_clip_groups_complete(tiny_features):
    fs = load_feature_set(tiny_features)
    batches = list(segment_dataset(fs, "train", ("logmel",), batch_size=8, seed=0).as_numpy_iterator())
    x = np.concatenate([b[0]["logmel"] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    assert x.shape == (fs.count("train"), 125, 96) and y.shape == (fs.count("train"), 8)
    assert abs(x.mean()) < 1e-3 and abs(x.std() - 1) < 1e-2
    np.testing.assert_array_equal(y.sum(axis=1), 1)
    clips = list(eval_clip_dataset(fs, "test", ("logmel",)).as_numpy_iterator())
    assert len(clips) == fs.count("test", "source_clips")
    assert all(features["logmel"].shape[1:] == (125, 96) for features, _, _ in clips)


def test_shuffled_segment_stream_depends_on_the_seed_only(tiny_features):
    fs = load_feature_set(tiny_features)

    def epochs(seed, n=2):
        dataset = segment_dataset(fs, "train", ("logmel",), batch_size=8, seed=seed, shuffle_buffer=64)
        iterator = iter(dataset.repeat(n))  # reshuffled every epoch, as model.fit iterates it
        return np.concatenate([batch[0]["logmel"][:, 0, 0] for batch in iterator])

    first = epochs(seed=0)
    for _ in range(3):
        np.testing.assert_array_equal(epochs(seed=0), first)
    assert not np.array_equal(epochs(seed=1), first)


def test_manifest_records_checksums_and_normalisation(tiny_features):
    from gtzan_tf.files import sha256_file

    manifest = json.loads((tiny_features / "manifest.json").read_text())
    for split in manifest["splits"].values():
        for shard in split["shards"]:
            assert sha256_file(tiny_features / shard["file"]) == shard["sha256"]
    assert manifest["normalization"]["std"] > 0
    assert manifest["config"] == json.loads((tiny_features / "config.json").read_text())
