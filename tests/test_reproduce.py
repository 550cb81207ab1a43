"""benchmarks/reproduce.py: the original's table from ordinary run folders, a rerun that skips the
finished cells, and bad input refused in one line with nothing written.

cnn2d_msd stands for the two-branch rows: resnet34_msd trains 40-60 s per cell on this 2-core CPU,
which would put the module far past its budget.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import sys

import librosa
import pytest

from conftest import ROOT, run_main
from gtzan_tf.config import Config
from gtzan_tf.data.audio import load_audio
from gtzan_tf.data.index import GTZAN_8_GENRES

spec = importlib.util.spec_from_file_location("reproduce", ROOT / "benchmarks" / "reproduce.py")
reproduce = sys.modules["reproduce"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reproduce)

FAST = ["--epochs", "1", "--seeds", "1", "--set", "data.embeddings=MSD_musicnn", "--set", "train.batch_size=8"]
CONDITIONS = ("plain", "augmentation", "segmentation", "both")


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """8 genres x 3 clips of 2 s (1 train, 1 validation, 1 test each), the smallest set every cell trains on."""
    from gtzan_tf.synth import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("data") / "gtzan", clips_per_genre=3, seconds=2.0, seed=1, progress=False,
                            test_fraction=0.34)


def stamps(folder):
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_table_of_two_rows_and_a_rerun_that_skips_finished_cells(small_data, tmp_path, capsys):
    out = tmp_path / "out"
    first = run_main(reproduce.main, "--data", str(small_data), "--out", str(out), "--rows", "cnn1d", *FAST, capsys=capsys)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "4 cells: 0 finished already, 4 to train" in first.stderr
    before = {condition: stamps(out / condition / "cnn1d") for condition in CONDITIONS}

    second = run_main(reproduce.main, "--data", str(small_data), "--out", str(out), "--rows", "cnn1d", "cnn2d_msd",
                      *FAST, capsys=capsys)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "8 cells: 4 finished already, 4 to train" in second.stderr
    for condition in CONDITIONS:  # the first call's run folders, untouched
        assert stamps(out / condition / "cnn1d") == before[condition]
        assert (out / condition / "cnn2d_msd" / "finished.json").is_file()

    # Each condition is the recipe through the config: the whole clip cropped to the shortest training clip.
    train_paths = [p for p in (small_data / "wav").rglob("*.wav")
                   if f"{p.parent.name}/{p.name}" not in (small_data / "split" / "test.txt").read_text().split()]
    shortest = min(librosa.feature.melspectrogram(y=load_audio(p, Config().audio), sr=16000, n_fft=1024,
                                                  hop_length=512).shape[1] for p in train_paths)
    configs = {c: Config.load(out / c / "cnn2d_msd" / "config.json") for c in CONDITIONS}
    assert [(configs[c].features.segment_frames, configs[c].features.max_segments, configs[c].augment.copies)
            for c in CONDITIONS] == [(shortest, 1, 0), (shortest, 1, 1), (125, None, 0), (125, None, 1)]
    assert {configs[c].train.monitor for c in CONDITIONS} == {"val_clip_accuracy"}
    # All four conditions share one features folder per condition between the two rows.
    for condition in CONDITIONS:
        runs = [json.loads((out / condition / row / "run.json").read_text()) for row in ("cnn1d", "cnn2d_msd")]
        assert runs[0]["features_dir"] == runs[1]["features_dir"]
        assert len(list((out / condition).glob("features-*"))) == 1

    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["row"], r["condition"]) for r in rows] == [(row, c) for row in ("cnn1d", "cnn2d_msd") for c in CONDITIONS]
    for r in rows:
        accuracy = json.loads((out / r["condition"] / r["row"] / "run.json").read_text())["test_clip_accuracy"]
        assert float(r["ours_mean"]) == pytest.approx(100 * accuracy, abs=0.006)
        original = reproduce.ORIGINAL[r["row"]][1].get(r["condition"])
        assert r["original"] == ("" if original is None else str(original))
    table = (out / "results.md").read_text()
    assert table in second.stdout
    assert "Epochs: 1 (the original: 100)" in table and f"N = {shortest} frames" in table
    cnn2d_msd = next(line for line in table.splitlines() if line.startswith("| 2D CNN + MSD |"))
    assert [cell.strip().rsplit("(", 1)[1] for cell in cnn2d_msd.split("|")[2:6]] == ["69.11)", "79.33)", "81.0)", "84.0)"]
    assert (out / "results.png").stat().st_size > 0


def test_backbone_cells_are_marked_as_trained_from_scratch(small_data):
    args = reproduce.build_parser().parse_args(["--data", str(small_data), "--out", "unused", "--rows", "vgg13", "resnet34_msd", "cnn2d"])
    cells = reproduce.plan_cells(args, Config(), 936)
    assert [(c.row, c.condition, c.from_scratch) for c in cells] == [  # in the original's order
        *(("cnn2d", c, False) for c in CONDITIONS), *(("resnet34_msd", c, True) for c in CONDITIONS), ("vgg13", "both", True)]
    imagenet = reproduce.plan_cells(reproduce.build_parser().parse_args([*map(str, ["--data", small_data, "--out", "x"]), "--rows", "vgg13",
                                                          "--init", "imagenet"]), Config(), 936)
    assert [(c.cfg.train.init, c.from_scratch) for c in imagenet] == [("imagenet", False)]


@pytest.fixture(scope="module")
def seven_genres(tmp_path_factory):
    from gtzan_tf.synth import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("data") / "seven", clips_per_genre=2, seconds=1.5, seed=1,
                            genres=GTZAN_8_GENRES[1:], test_fraction=0.5, progress=False)


@pytest.mark.parametrize("flags, message", [
    (["--rows", "cnn1d", "musicnn_msd"], "error: unknown row 'musicnn_msd'"),
    (["--conditions", "plain", "mixup"], "error: unknown condition 'mixup'"),
    (["--seeds", "0"], "error: train.seeds must be an integer >= 1, got 0"),
    (["--set", "augment.copies=2"], "error: --set augment.copies is part of every cell's recipe"),
    (["--rows", "vgg13", "--conditions", "plain"], "error: no cells"),
    (["--rows", "mlp_mtt", "--set", "data.embeddings=MSD_musicnn"], "error: row mlp_mtt reads the MTT_musicnn embedding"),
    (["SEVEN"], "has no training clips of classical"),
])
def test_bad_input_is_one_line_and_writes_nothing(flags, message, small_data, seven_genres, tmp_path, capsys):
    data = str(seven_genres if flags == ["SEVEN"] else small_data)
    flags = [] if flags == ["SEVEN"] else flags
    out = tmp_path / "out"
    result = run_main(reproduce.main, "--data", data, "--out", str(out), *flags, capsys=capsys)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not out.exists()
