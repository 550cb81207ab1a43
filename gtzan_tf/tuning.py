"""Hyperparameter search on Optuna, every trial scored by cross-validation (never by the test split).

A study lives in a database (SQLite in STUDY/study.db by default, any SQLAlchemy URL with
--storage): a killed search resumes with the same command, and several processes (--workers) or
machines (the same --storage) work on one study. Each trial trains `train.py --folds K --seeds S`
with the trial's values in STUDY/trials/trial-N and is scored by its out-of-fold clip loss
(every training clip scored by the fold model that did not train on it; its accuracy is kept
beside it); after every fold the running loss goes to Optuna's median pruner, which stops trials
that are behind the others at the same fold. A trial of a killed process stops sending its
heartbeat: after GRACE_SECONDS the next trial to start marks it failed, and Optuna's
RetryHeartbeatStaleTrialCallback queues its values again.

The search space is a JSON object, train.* field -> {"low": a, "high": b[, "log": true][, "step": s]}
or {"choices": [...]}, each with an optional "when": {"other field": value} (suggested only then,
else the base config's value). A --space file replaces the model family's default (`default_space`).
"""
from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

from gtzan_tf.config import EMBEDDING_INPUTS, SEGMENTS, Config, TrainConfig
from gtzan_tf.errors import UserError

STORAGE_FILE = "study.db"
HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 60
# Fields a trial may not change: they define the study (model, scoring) or the machine it runs on.
FIXED = ("model", "seed", "seeds", "folds", "refit", "monitor", "strategy", "mixed_precision", "jit", "init")
ENTRY_KEYS = {"low", "high", "log", "step", "choices", "when"}


def default_space(model: str) -> dict[str, dict]:
    """The knobs the config has for `model`'s family: optimiser, learning rate, L1/L2, dropout and
    mixup for all; SpecAugment for models that read segments; fusion and the embedding stage for
    two-branch models. (Filter sizes, pooling, strides and depth are fixed per registry model: to
    compare them, tune cnn1d and cnn1d_q1, or resnet18 and resnet34, as separate studies.)"""
    from gtzan_tf.models.registry import get_spec

    inputs = get_spec(model).inputs
    space: dict[str, dict] = {
        "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
        "optimizer": {"choices": ["adam", "adamw", "sgd", "rmsprop"]},
        "l1": {"low": 1e-7, "high": 1e-3, "log": True},
        "l2": {"low": 1e-6, "high": 1e-2, "log": True},
        "dropout": {"low": 0.0, "high": 0.5},
        "mixup_alpha": {"low": 0.0, "high": 0.4},
    }
    if SEGMENTS in inputs:
        space.update(time_masks={"low": 0, "high": 2}, freq_masks={"low": 0, "high": 2})
    if SEGMENTS in inputs and EMBEDDING_INPUTS["MSD_musicnn"] in inputs:
        space.update(fusion={"choices": ["reference", "wide", "gated"]},
                     embedding_epochs={"low": 0, "high": 60, "step": 20, "when": {"fusion": "gated"}})
    return space


def load_space(path: Path, base: Config) -> dict[str, dict]:
    """Read and check a --space file (one clear line for anything wrong in it)."""
    try:
        space = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"--space {path}: cannot read it as JSON ({exc})") from None
    if not isinstance(space, dict) or not space:
        raise UserError(f"--space {path}: expected a JSON object of parameter -> range, e.g. "
                        '{"learning_rate": {"low": 1e-4, "high": 1e-2, "log": true}}')
    check_space(space, base, f"--space {path}")
    return space


def check_space(space: dict[str, dict], base: Config, where: str) -> None:
    """Every name a tunable train.* field, every range non-empty, every value one the config accepts."""
    tunable = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in FIXED]
    for name, entry in space.items():
        if name not in tunable:
            raise UserError(f"{where}: unknown parameter {name!r}; tunable: {', '.join(tunable)}")
        if not isinstance(entry, dict) or set(entry) - ENTRY_KEYS or ("choices" in entry) == ("low" in entry or "high" in entry):
            raise UserError(f"{where}: {name} must be {{\"low\": a, \"high\": b[, \"log\": true, \"step\": s]}} "
                            f"or {{\"choices\": [...]}}[, \"when\": {{...}}], got {json.dumps(entry)}")
        if "choices" in entry:
            values = entry["choices"]
            if not isinstance(values, list) or not values:
                raise UserError(f"{where}: {name} has an empty list of choices")
        else:
            low, high = entry.get("low"), entry.get("high")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high)):
                raise UserError(f"{where}: {name} needs numbers low and high, got {low!r} and {high!r}")
            if low > high:
                raise UserError(f"{where}: {name} has an empty range: low {low} > high {high}")
            if entry.get("log") and low <= 0:
                raise UserError(f"{where}: {name} on a log scale needs low > 0, got {low}")
            values = [low, high]
        for value in values:  # the config's own type and range checks, e.g. dropout in [0, 1)
            base.replace(train={name: value})
        if not isinstance(entry.get("when", {}), dict):
            raise UserError(f"{where}: {name}'s \"when\" must be an object, e.g. {{\"fusion\": \"gated\"}}")
        for other in entry.get("when", {}):
            if other not in space:
                raise UserError(f"{where}: {name} depends on {other!r}, which is not in the space")


def suggest(trial, space: dict[str, dict], base: Config) -> Config:
    """The trial's config: `base` with a value of every parameter of `space` (those whose `when`
    holds), suggested in the file's order."""
    values: dict[str, Any] = {}
    for name, entry in space.items():
        current = {**dataclasses.asdict(base.train), **values}
        if any(current[other] != wanted for other, wanted in entry.get("when", {}).items()):
            continue
        if "choices" in entry:
            values[name] = trial.suggest_categorical(name, entry["choices"])
        elif isinstance(entry["low"], int) and isinstance(entry["high"], int) and not entry.get("log"):
            values[name] = trial.suggest_int(name, entry["low"], entry["high"], step=entry.get("step", 1))
        elif isinstance(entry["low"], int) and isinstance(entry["high"], int):
            values[name] = trial.suggest_int(name, entry["low"], entry["high"], log=True)
        else:
            values[name] = trial.suggest_float(name, entry["low"], entry["high"], log=entry.get("log", False),
                                               step=entry.get("step"))
    return base.replace(train=values)


def storage_url(out: Path, storage: str | None) -> str:
    return storage or f"sqlite:///{(out / STORAGE_FILE).resolve()}"


def open_storage(url: str):
    """The study database, with heartbeats (a killed trial is failed, then retried)."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats, the matplotlib plots
    return RDBStorage(url, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS,
                      heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2))


def study_setup(cfg: Config) -> dict:
    """What makes two runs of tune.py the same study: the model and how trials are scored."""
    t = cfg.train
    return {"model": t.model, "folds": t.folds, "seeds": t.seeds, "epochs": t.epochs}


def check_existing_study(url: str, name: str, setup: dict) -> None:
    """Refuse, before writing anything, a study of the same name in that database set up otherwise."""
    import optuna

    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return
    try:
        found = optuna.load_study(study_name=name, storage=url).user_attrs.get("setup")
    except KeyError:  # no study of that name there yet
        return
    if found is None:
        raise UserError(f"study {name!r} in {url} was not made by tune.py; choose another --out or --study-name")
    if found["model"] != setup["model"]:
        raise UserError(f"study {name!r} in {url} tunes {found['model']}, not {setup['model']}: "
                        "choose another --out or --study-name for a study of another model")
    changed = [f"--{key} {found[key]} (not {setup[key]})" for key in setup if found[key] != setup[key]]
    if changed:
        raise UserError(f"study {name!r} in {url} was run with {', '.join(changed)}: rerun it with those, "
                        "or choose another --out or --study-name")


def objective(trial, space: dict, base: Config, data: Path, features: Path, out: Path) -> float:
    """Train the trial's config with K-fold cross-validation; its out-of-fold clip loss, with the
    running loss reported to the pruner after every fold."""
    import optuna

    from gtzan_tf.training.experiment import train

    cfg = suggest(trial, space, base)
    folds: list[dict] = []

    def report(fold: dict) -> None:
        folds.append(fold)
        clips = sum(f["valid_clips"] for f in folds)
        trial.report(sum(f["valid_clip_loss"] * f["valid_clips"] for f in folds) / clips, len(folds) - 1)
        if trial.should_prune():
            raise optuna.TrialPruned(f"out-of-fold clip loss behind the median after {len(folds)} folds")

    summary = train(cfg, data, out / "trials" / f"trial-{trial.number}", features_dir=features, verbose=0,
                    on_fold=report)
    key = "" if cfg.train.seeds == 1 else "_mean"
    trial.set_user_attr("valid_clip_accuracy", summary[f"valid_clip_accuracy{key}"])
    return summary[f"valid_clip_loss{key}"]


def search(base: Config, data: Path, out: Path, trials: int, space: dict, storage: str | None = None,
           study_name: str | None = None, features: Path | None = None, workers: int = 1, argv: list[str] = ()) -> Any:
    """Run (or resume, or join) the study until `trials` trials have finished (completed or pruned);
    `workers` - 1 more processes (`tune.py argv --workers 1`) join it. Returns the study."""
    import optuna

    from gtzan_tf.files import claim_folder
    from gtzan_tf.training.trainer import locate_features, prepare_features, validate

    validate(base)
    if base.train.folds < 2:
        raise UserError(f"--folds must be at least 2 (every trial is cross-validated), got {base.train.folds}")
    url, name = storage_url(out, storage), study_name or out.resolve().name
    check_existing_study(url, name, study_setup(base))
    features, index = locate_features(base, data, out, features or out / "features")
    claim_folder(out, "study", "--out")
    prepare_features(base, index, features, workers=1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=open_storage(url), study_name=name, direction="minimize", load_if_exists=True,
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0))
    study.set_user_attr("setup", study_setup(base))
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    helpers = [subprocess.Popen([sys.executable, *argv, "--workers", "1"], stdout=subprocess.DEVNULL)  # one table
               for _ in range(workers - 1)]
    remaining = trials - len(study.get_trials(deepcopy=False, states=finished))
    if remaining > 0:
        study.optimize(lambda trial: objective(trial, space, base, data, features, out), n_trials=remaining,
                       catch=(UserError,), callbacks=[optuna.study.MaxTrialsCallback(trials, states=finished)])
    for helper in helpers:
        helper.wait()
    return study


def write_outputs(study, base: Config, out: Path) -> str:
    """STUDY/trials.csv, the plots (history.png, param_importances.png, intermediate_values.png) and
    STUDY/best/config.json (the best trial's config, for train.py --config); returns the table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as plots

    from gtzan_tf.files import atomic_path, write_json

    table = study.trials_dataframe(attrs=("number", "state", "value", "duration", "params", "user_attrs"))
    table["duration"] = table["duration"].dt.total_seconds().round()
    table = table.rename(columns={"value": "valid_clip_loss", "duration": "seconds",
                                  "user_attrs_valid_clip_accuracy": "valid_clip_accuracy"})
    table.columns = [column.removeprefix("params_") for column in table.columns]
    with atomic_path(out / "trials.csv") as path:
        table.to_csv(path, index=False)
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    drawings = {"history.png": plots.plot_optimization_history,
                "intermediate_values.png": plots.plot_intermediate_values}
    if len(complete) >= 2 and any(t.params for t in complete):
        drawings["param_importances.png"] = plots.plot_param_importances
    for file, plot in drawings.items():
        axes = plot(study)
        with atomic_path(out / file) as path:
            axes.figure.savefig(path, bbox_inches="tight", format="png")
        plt.close(axes.figure)
    if complete:
        best = study.best_trial
        (out / "best").mkdir(exist_ok=True)
        base.replace(train=best.params).save(out / "best" / "config.json")
        write_json(out / "best" / "trial.json", {"number": best.number, "valid_clip_loss": best.value,
                                                 **best.user_attrs, "params": best.params})
    return table.to_string(index=False)
