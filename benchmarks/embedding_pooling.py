"""Does test-time overlap (or another pooling) of musicnn patches make a better clip embedding?

    python benchmarks/embedding_pooling.py --data DIR [--folds 3] [--seeds 3] [--model MSD_musicnn]

For every clip of DIR's train and test lists, the MSD musicnn network of the project's embedding
layer (`MusicnnEmbedding`: same resampling, patches and network) runs on its 3 s patches at hop 3 s
(the product's) and at hop 1.5 s (the same patches plus those of the waveform shifted by 1.5 s), and
the max-pool features are pooled over patches as the mean (the product's embedding), mean and
standard deviation, or mean of max-pool and mean-pool. Each clip vector is scored with the
baseline of `benchmarks/accuracy.py` (standardised logistic regression): out-of-fold accuracy on
the training clips (stratified K folds) and test clip accuracy, mean ± std over seeds.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from accuracy import baseline_classifier  # noqa: E402  (benchmarks/accuracy.py: the same baseline)
from gtzan_tf import import_tensorflow_quietly  # noqa: E402

HOPS = {"3 s (product)": False, "1.5 s (overlap)": True}
POOLS = {
    "max_pool mean (product)": lambda o: o["max_pool"].mean(0),
    "max_pool mean + std": lambda o: np.hstack([o["max_pool"].mean(0), o["max_pool"].std(0)]),
    "max_pool + mean_pool means": lambda o: np.hstack([o["max_pool"].mean(0), o["mean_pool"].mean(0)]),
}


def clip_vectors(embedder, network, waveform: np.ndarray, rate: int) -> dict[tuple[str, str], np.ndarray]:
    """(hop, pooling) -> the clip vector of one waveform."""
    import tensorflow as tf

    resampled = embedder.resample(tf.constant(waveform[None]))
    patches = embedder.patches(resampled)[0]
    half = embedder.patches(resampled[:, int(1.5 * 16000):])[0]
    vectors = {}
    for hop, overlap in HOPS.items():
        outputs = {k: np.asarray(v) for k, v in network(tf.concat([patches, half], 0) if overlap else patches).items()}
        vectors.update({(hop, pool): pooled(outputs) for pool, pooled in POOLS.items()})
    return vectors


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="dataset folder in the GTZAN layout, with split/{train,test}.txt")
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--model", default="MSD_musicnn")
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    import_tensorflow_quietly()
    import keras
    from sklearn.model_selection import StratifiedKFold
    from tqdm import tqdm

    from gtzan_tf.config import AudioConfig
    from gtzan_tf.data.audio import load_audio
    from gtzan_tf.musicnn.embedding import MusicnnEmbedding
    from gtzan_tf.musicnn.weights import load_musicnn

    audio = AudioConfig()
    embedder = MusicnnEmbedding(args.model, audio.sample_rate)
    full = load_musicnn(args.model)
    network = keras.Model(full.input, {k: full.output[k] for k in ("max_pool", "mean_pool")})
    data = {}
    for split in ("train", "test"):
        clips = (args.data / "split" / f"{split}.txt").read_text().split()
        rows = [clip_vectors(embedder, network, load_audio(args.data / "wav" / c, audio), audio.sample_rate)
                for c in tqdm(clips, desc=split)]
        data[split] = ({key: np.stack([r[key] for r in rows]) for key in rows[0]}, np.array([c.split("/")[0] for c in clips]))
    (train, y), (test, test_y) = data["train"], data["test"]
    print(f"{args.data}: {len(y)} train / {len(test_y)} test clips; {args.model}; logistic regression; "
          f"{args.folds}-fold out-of-fold and test accuracy, mean ± std over {args.seeds} seeds\n")
    print("| patch hop | pooling over patches | out-of-fold clip acc. (%) | test clip acc. (%) |\n|---|---|---:|---:|")
    for key in train:
        oof, tests = [], []
        for seed in range(args.seeds):
            correct, fold_tests = 0, []
            for fit, held in StratifiedKFold(args.folds, shuffle=True, random_state=seed).split(train[key], y):
                model = baseline_classifier().fit(train[key][fit], y[fit])
                correct += np.sum(model.predict(train[key][held]) == y[held])
                fold_tests.append(np.mean(model.predict(test[key]) == test_y))
            oof.append(correct / len(y))
            tests.append(np.mean(fold_tests))
        print(f"| {key[0]} | {key[1]} | {100 * np.mean(oof):.1f} ± {100 * np.std(oof):.1f} "
              f"| {100 * np.mean(tests):.1f} ± {100 * np.std(tests):.1f} |")


if __name__ == "__main__":
    main()
