"""Throughput of our musicnn extractor against the original musicnn 0.1.0 and the compute floor.

    python benchmarks/musicnn.py [--clips 16] [--repeats 3] [--batch-size 32]

On the same synthetic 30 s clips (22.05 kHz WAV, as GTZAN), per repeat:
- ours, end to end: MusicnnExtractor.extract_files (decode, resample, spectrogram, all outputs);
- floor: our network alone on precomputed patches, same batches and outputs;
- original: musicnn.extractor.extractor(file, model, extract_features=True) called per file in
  its own process (needs `pip install --no-deps tf_keras==<TF major.minor>`; run with
  TF_USE_LEGACY_KERAS=1), after one untimed warm-up call.
Prints medians over repeats, the ratios, and max |diff| of max_pool between ours and the original.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

CLIP_SECONDS, CLIP_RATE = 30, 22050


def write_clips(folder: Path, n: int) -> list[Path]:
    """n deterministic 30 s clips: harmonic notes, a click track and noise."""
    paths = []
    t = np.arange(CLIP_SECONDS * CLIP_RATE) / CLIP_RATE
    for i in range(n):
        rng = np.random.default_rng(i)
        notes = rng.choice([110, 147, 196, 220, 262, 330, 392, 440], size=CLIP_SECONDS * 4)
        f0 = np.repeat(notes, len(t) // len(notes) + 1)[: len(t)]
        phase = 2 * np.pi * np.cumsum(f0) / CLIP_RATE
        y = sum(0.1 / h * np.sin(h * phase) for h in range(1, 5))
        y += 0.3 * (np.sin(2 * np.pi * 2 * t) > 0.995) * rng.standard_normal(len(t))
        y += 0.01 * rng.standard_normal(len(t))
        path = folder / f"clip{i:02d}.wav"
        sf.write(path, (0.9 * y / np.abs(y).max()).astype(np.float32), CLIP_RATE, subtype="PCM_16")
        paths.append(path)
    return paths


def run_original(model: str, paths: list[str]) -> None:
    """Subprocess entry: time the original extractor per file; print JSON (seconds, max_pool)."""
    import warnings

    warnings.filterwarnings("ignore")
    from musicnn.extractor import extractor

    def call(path: str):
        with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per call
            return extractor(path, model=model, extract_features=True)

    call(paths[0])
    seconds, max_pool = [], []
    for path in paths:
        start = time.perf_counter()
        _, _, features = call(path)
        seconds.append(time.perf_counter() - start)
        max_pool.append(features["max_pool"].tolist())
    print(json.dumps({"seconds": seconds, "max_pool": max_pool}))


def original_literal_input(path: Path) -> np.ndarray:
    """The original's network input under this numpy (numpy>=2: its log compression in float16)."""
    import librosa

    from gtzan_tf.musicnn import PARAMS, load_audio, patches

    mel = librosa.feature.melspectrogram(y=load_audio(path), sr=PARAMS.sample_rate, n_fft=PARAMS.n_fft,
                                         hop_length=PARAMS.hop_length, n_mels=PARAMS.n_mels)
    with np.errstate(over="ignore"):
        return patches(np.log10(10000 * mel.T.astype(np.float16) + 1).astype(np.float32))


def original_available() -> str | None:
    """Why the original cannot run here, or None."""
    if importlib.util.find_spec("musicnn") is None:
        return "musicnn is not installed"
    if importlib.util.find_spec("tf_keras") is None:
        return "tf_keras is not installed (pip install --no-deps tf_keras==<TF major.minor>)"
    return None


def time_original(model: str, paths: list[Path], user_env: dict[str, str]) -> dict:
    env = {**user_env, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, __file__, "--run-original", model, *map(str, paths)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"the original extractor failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", default="MSD_musicnn")
    parser.add_argument("--skip-original", action="store_true")
    return parser


def main() -> None:
    args = build_parser().parse_args()

    user_env = dict(os.environ)  # the original runs as a user would run it, without our settings
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from gtzan_tf.musicnn import PARAMS, MusicnnExtractor, load_audio, musicnn_spectrogram, patches

    import tensorflow as tf

    skip_reason = "--skip-original" if args.skip_original else original_available()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_clips(Path(tmp), args.clips)
        start = time.perf_counter()
        extractor = MusicnnExtractor(args.model, batch_size=args.batch_size)
        print(f"model load: {time.perf_counter() - start:.2f} s; {tf.config.list_logical_devices()[-1].name}; "
              f"oneDNN {os.environ.get('TF_ENABLE_ONEDNN_OPTS')} (original: {user_env.get('TF_ENABLE_ONEDNN_OPTS')}); "
              f"{args.clips} clips of {CLIP_SECONDS} s; batch {args.batch_size}")
        inputs = np.concatenate([patches(musicnn_spectrogram(load_audio(p))) for p in paths])
        extractor.extract_files(paths[:2])  # traces the network once

        timings: dict[str, list[float]] = {"ours": [], "floor": [], "original": []}
        ours_max_pool = original_max_pool = None
        for repeat in range(args.repeats):
            start = time.perf_counter()
            results = extractor.extract_files(paths)
            timings["ours"].append(time.perf_counter() - start)
            ours_max_pool = [r["max_pool"] for r in results]
            start = time.perf_counter()
            extractor.predict_patches(inputs)
            timings["floor"].append(time.perf_counter() - start)
            if skip_reason is None:
                original = time_original(args.model, paths, user_env)
                timings["original"].append(statistics.median(original["seconds"]) * len(paths))
                original_max_pool = original["max_pool"]
            print(f"repeat {repeat + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in timings.items() if v))
        if original_max_pool is not None:
            same_input = [extractor.predict_patches(original_literal_input(p), ["max_pool"])["max_pool"]
                          for p in paths]
            parity = [max(np.abs(np.asarray(o) - ours).max() for o, ours in zip(original_max_pool, mine))
                      for mine in (ours_max_pool, same_input)]

    n_patches = len(inputs)
    median = {k: statistics.median(v) for k, v in timings.items() if v}
    print(f"\n{args.clips} clips ({n_patches} patches of {PARAMS.patch_frames} frames), medians of {args.repeats}:")
    ours, floor = median["ours"], median["floor"]
    print(f"  ours end to end : {args.clips / ours:7.2f} clips/s ({1000 * ours / args.clips:.0f} ms/clip)")
    print(f"  network floor   : {args.clips / floor:7.2f} clips/s ({1000 * floor / n_patches:.1f} ms/patch)")
    print(f"  end to end / floor time: {median['ours'] / median['floor']:.2f}x (target <= 1.25)")
    if "original" in median:
        print(f"  original        : {args.clips / median['original']:7.2f} clips/s "
              f"({1000 * median['original'] / args.clips:.0f} ms/clip, median per file)")
        print(f"  ours / original throughput: {median['original'] / median['ours']:.1f}x (target >= 7)")
        print(f"  max |max_pool ours - original|: {parity[0]:.1e} end to end, {parity[1]:.1e} on the original's input"
              f" (numpy {np.__version__}: float16 log compression when >= 2)")
    else:
        print(f"  original: not run ({skip_reason})")


if __name__ == "__main__":
    # This file is named like the musicnn package: keep its folder off the import path.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    if len(sys.argv) > 1 and sys.argv[1] == "--run-original":
        run_original(sys.argv[2], sys.argv[3:])
    else:
        main()
