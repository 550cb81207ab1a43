"""Shared fixtures: a tiny demo dataset made by the project's own synthesiser, in the GTZAN layout."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from gtzan_tf.config import Config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

# Small but complete: 8 genres, 4 clips of 5 s each (3 train, 1 test; 1 train clip per genre held out).
TINY = Config().replace(data={"validation_per_genre": 1, "embeddings": ()})


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    from gtzan_tf.synth import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("data") / "gtzan", clips_per_genre=4, seconds=5.0, seed=0)


@pytest.fixture(scope="session")
def tiny_features(tiny_data, tmp_path_factory) -> Path:
    from gtzan_tf.prepare import prepare

    out = tmp_path_factory.mktemp("features") / "tiny"
    prepare(tiny_data, out, TINY, progress=False)
    return out


def clip_files(data: Path) -> dict[str, Path]:
    """The audio files of a GTZAN-layout folder by clip identity (`genre/name`)."""
    return {f"{path.parent.name}/{path.stem}": path for path in (data / "wav").rglob("*.wav")}


def run_main(main, *args: str, capsys) -> subprocess.CompletedProcess:
    """Call an entry point's `main` in this process (no TensorFlow start-up): its exit code and output."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


def run_cli(*args: str, cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a command-line entry point of the project as a user would."""
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


# Features with the MSD musicnn embedding, for the models that read it (resnet34_msd, mlp_msd).
MSD_SETTINGS = ["--set", "data.validation_per_genre=1", "--set", "data.embeddings=MSD_musicnn"]
TINY_MSD = TINY.replace(data={"embeddings": ("MSD_musicnn",)})


@pytest.fixture(scope="session")
def msd_features(tiny_data, tmp_path_factory) -> Path:
    from gtzan_tf.prepare import prepare

    out = tmp_path_factory.mktemp("features") / "msd"
    prepare(tiny_data, out, TINY_MSD, progress=False)
    return out


@pytest.fixture(scope="session")
def trained_run(tiny_data, msd_features, tmp_path_factory) -> Path:
    """`train.py --model resnet34_msd --epochs 2` on CPU, as a user runs it."""
    run = tmp_path_factory.mktemp("runs") / "resnet34_msd"
    result = run_cli(
        "train.py", "--model", "resnet34_msd", "--data", str(tiny_data), "--features", str(msd_features),
        "--out", str(run), "--epochs", "2", "--batch-size", "8", "--quiet", *MSD_SETTINGS,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return run
