"""tune.py (Optuna studies scored by cross-validation) and the paired comparison behind accuracy.py --seeds."""
from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, run_main
from gtzan_tf.evaluation.compare import AHEAD, BEHIND, TIED, paired_comparison

# A search as small as it gets: 1 epoch of cnn1d per fold, 2 folds, no embeddings, no augmented copies.
SEARCH = ["--model", "cnn1d", "--folds", "2", "--epochs", "1", "--set", "data.embeddings=", "--set", "augment.copies=0"]
SPACE = {"learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}, "dropout": {"low": 0.0, "high": 0.5}}


def test_paired_comparison_calls_a_model_ahead_only_beyond_noise():
    baseline = np.zeros((3, 99), bool)  # 3 seeds x 99 clips: right on 80 clips in every seed
    baseline[:, :80] = True
    # Three clips that only the model gets right, in every seed: the bootstrap alone would call it
    # ahead, the sign test (3:0, p = 0.25) does not.
    few = baseline.copy()
    few[:, 80:83] = True
    assert paired_comparison(few, baseline).verdict == TIED
    # Two clips ahead: right on 8 clips the baseline misses, wrong on 6 it gets (one seed in three
    # on one more): not distinguishable.
    other = baseline.copy()
    other[:, 80:88] = True
    other[:, :6] = False
    other[0, 6] = False
    comparison = paired_comparison(other, baseline)
    assert comparison.verdict == TIED and comparison.low < 0 < comparison.high
    assert (comparison.wins, comparison.losses) == (8, 7) and abs(comparison.difference - (2 - 1 / 3) / 99) < 1e-12
    # Right on every clip: 19 clips ahead, beyond noise; the reverse is behind.
    perfect = np.ones_like(baseline)
    ahead = paired_comparison(perfect, baseline)
    assert ahead.verdict == AHEAD and ahead.low > 0 and (ahead.wins, ahead.losses) == (19, 0)
    assert paired_comparison(baseline, perfect).verdict == BEHIND
    with pytest.raises(ValueError, match="different clips"):
        paired_comparison(perfect[:, :98], baseline)


def trial_states(db) -> list[tuple[int, str]]:
    import optuna

    study = optuna.load_study(study_name=db.parent.name, storage=f"sqlite:///{db}")
    return [(t.number, t.state.name) for t in study.get_trials(deepcopy=False)]


def finished(states) -> int:
    return sum(state in ("COMPLETE", "PRUNED") for _, state in states)


def test_a_killed_search_resumes_to_its_trial_count_and_its_best_config_trains(tiny_data, tmp_path, monkeypatch, capsys):
    import optuna

    import train
    import tune
    from gtzan_tf import tuning

    # The tiny set's training clips, with an empty test list: every clip is cross-validated (and
    # no trial spends time on test clips, which a trial never uses).
    data = tmp_path / "data"
    (data / "split").mkdir(parents=True)
    (data / "wav").symlink_to(tiny_data / "wav")
    (data / "split" / "train.txt").write_text((tiny_data / "split" / "train.txt").read_text())
    (data / "split" / "test.txt").write_text("")
    tiny_data = data
    study, space = tmp_path / "study", tmp_path / "space.json"
    space.write_text(json.dumps(SPACE))
    args = ["--data", str(tiny_data), "--out", str(study), "--trials", "4", "--space", str(space), *SEARCH]
    search = subprocess.Popen([sys.executable, "tune.py", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    db = study / "study.db"
    deadline = time.monotonic() + 300
    try:  # kill it while trial 3 runs, after trials 1 and 2 finished
        while not (db.is_file() and finished(states := trial_states(db)) == 2 and ("RUNNING" in dict(states).values())):
            assert search.poll() is None, search.stderr.read()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        search.send_signal(signal.SIGKILL)
        search.wait()
    states = trial_states(db)
    killed = next(number for number, state in states if state == "RUNNING")
    assert finished(states) == 2

    # The same command resumes; the killed trial's heartbeat is stale by then (shortened here).
    monkeypatch.setattr(tuning, "HEARTBEAT_SECONDS", 1)
    monkeypatch.setattr(tuning, "GRACE_SECONDS", 2)
    time.sleep(2.5)
    result = run_main(tune.main, *args, capsys=capsys)
    assert result.returncode == 0, result.stderr[-3000:]
    states = dict(trial_states(db))
    assert finished(states.items()) == 4 and states[killed] == "FAIL"
    trials = optuna.load_study(study_name="study", storage=f"sqlite:///{db}").get_trials(deepcopy=False)
    retried = [t for t in trials if optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == killed]
    assert retried and retried[0].params == trials[killed].params  # the killed trial's values, run again
    table = (study / "trials.csv").read_text().splitlines()
    assert table[0].startswith("number,state,valid_clip_loss") and len(table) == 1 + len(trials)
    assert all((study / png).stat().st_size > 0 for png in ("history.png", "param_importances.png"))

    best = json.loads((study / "best" / "config.json").read_text())["train"]
    run = tmp_path / "best-run"
    result = run_main(train.main, "--config", str(study / "best" / "config.json"), "--data", str(tiny_data),
                      "--features", str(study / "features"), "--out", str(run), "--quiet", capsys=capsys)
    assert result.returncode == 0, result.stderr[-3000:]
    trained = json.loads((run / "config.json").read_text())["train"]
    assert trained == best and trained["model"] == "cnn1d" and trained["folds"] == 2
    summary = json.loads((run / "run.json").read_text())
    assert summary["members"] == ["fold-0", "fold-1"] and np.isnan(summary["test_clip_accuracy"])


def tree(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()} if folder.exists() else {}


@pytest.mark.parametrize("space, extra, message", [
    ({"learning_rat": {"low": 1e-4, "high": 1e-2}}, [], "unknown parameter 'learning_rat'"),
    ({"dropout": {"low": 0.4, "high": 0.1}}, [], "dropout has an empty range: low 0.4 > high 0.1"),
    ({"optimizer": {"choices": []}}, [], "optimizer has an empty list of choices"),
    ({"dropout": {"low": 0.0, "high": 1.5}}, [], "train.dropout must be in [0, 1), got 1.5"),
    (SPACE, ["--trials", "0"], "--trials must be at least 1, got 0"),
    (SPACE, ["--model", "mlp_msd"], "tunes cnn1d, not mlp_msd"),
])
def test_bad_tune_input_is_one_line_and_writes_nothing(tiny_data, tmp_path, capsys, space, extra, message):
    import optuna

    import tune

    study = tmp_path / "study"
    study.mkdir()
    existing = optuna.create_study(study_name="study", storage=f"sqlite:///{study / 'study.db'}")
    existing.set_user_attr("setup", {"model": "cnn1d", "folds": 2, "seeds": 1, "epochs": 1})
    (tmp_path / "space.json").write_text(json.dumps(space))
    before = tree(study)
    result = run_main(tune.main, "--data", str(tiny_data), "--out", str(study), "--trials", "4",
                      "--space", str(tmp_path / "space.json"), *SEARCH, *extra, capsys=capsys)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and message in result.stderr and result.stderr.count("\n") == 1
    assert tree(study) == before
