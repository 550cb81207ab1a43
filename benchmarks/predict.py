"""Serving-model speed on CPU: real-time factor and clips/s.

    python benchmarks/predict.py [--run RUN_DIR] [--clips 8] [--seconds 30]

Without --run, trains a 1-epoch resnet34_msd on a small synthesised set first (speed does not
depend on the weights). Real-time factor = compute seconds per second of audio (target <= 0.01);
clips/s = 30 s clips through the serving signature back to back. predict.py's path (decode a
WAV file, then the same serving model) is timed on the same clips for comparison.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gtzan_tf  # noqa: F401  before TensorFlow: turns oneDNN on, as the entry points do
import soundfile as sf
import tensorflow as tf

from gtzan_tf.inference import Predictor, load_run
from gtzan_tf.synth import synthesize_clip

ROOT = Path(__file__).resolve().parents[1]


def train_small_run(tmp: Path) -> Path:
    from gtzan_tf.synth import generate_dataset

    data = generate_dataset(tmp / "gtzan", clips_per_genre=4, seconds=8.0, seed=0, progress=False)
    run = tmp / "runs" / "resnet34_msd"
    subprocess.run([sys.executable, str(ROOT / "train.py"), "--model", "resnet34_msd", "--data", str(data),
                    "--out", str(run), "--epochs", "1", "--quiet", "--set", "data.validation_per_genre=1",
                    "--set", "data.embeddings=MSD_musicnn"], check=True, capture_output=True)
    return run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path)
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--seconds", type=float, default=30.0)
    return p


def main():
    args = build_parser().parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run or train_small_run(Path(tmp))
        serve = tf.saved_model.load(str(run_dir / "serving")).signatures["serving_default"]
        genres = ("classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae")
        clips = [synthesize_clip(genres[i % 8], i, args.seconds, 16000) for i in range(args.clips)]
        serve(waveform=tf.constant(clips[0]))  # warm-up: first call builds kernels
        per_clip = []
        for y in clips:
            start = time.perf_counter()
            serve(waveform=tf.constant(y))["probabilities"].numpy()
            per_clip.append(time.perf_counter() - start)
        run = load_run(run_dir)
        predictor = Predictor(run)
        files = []
        for i, y in enumerate(clips):
            files.append(Path(tmp) / f"clip{i}.wav")
            sf.write(files[-1], y, 16000)
        predictor.predict_file(files[0])
        file_path = []
        for path in files:
            start = time.perf_counter()
            predictor.predict_file(path)
            file_path.append(time.perf_counter() - start)
    med, med_file = statistics.median(per_clip), statistics.median(file_path)
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    print(f"{args.clips} clips of {args.seconds:g} s, model {run.cfg.train.model}, CPU, TF_ENABLE_ONEDNN_OPTS={onednn}")
    print(f"serving SavedModel : median {med * 1000:7.1f} ms/clip, real-time factor {med / args.seconds:.4f} "
          f"(target <= 0.01), {args.clips / sum(per_clip):.2f} clips/s")
    print(f"predict.py path    : median {med_file * 1000:7.1f} ms/clip, real-time factor {med_file / args.seconds:.4f}, "
          f"{args.clips / sum(file_path):.2f} clips/s (WAV decode + the same serving model)")


if __name__ == "__main__":
    main()
