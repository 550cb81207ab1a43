"""Resuming a run exactly: the callback state BackupAndRestore does not keep, and a check of its backup.

Keras' BackupAndRestore saves the model and optimizer at every epoch end (`latest.weights.h5`
and `training_metadata.json`, plus a `.bkp` copy of the previous pair). `CallbackState` saves
beside them what the epoch loop also depends on: ModelCheckpoint's best value, EarlyStopping's and
ReduceLROnPlateau's counters, and the state of the model's random seed generators (dropout). The data order is a pure function of (seed, epoch) (see
`pipeline.training_batches`), so a resumed seeded run repeats the uninterrupted one exactly.
"""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import h5py
import keras
import numpy as np

from gtzan_tf.errors import UserError
from gtzan_tf.files import write_json, write_text

STATE_FILE = "callback_state.json"
WEIGHTS, METADATA, PREVIOUS = "latest.weights.h5", "training_metadata.json", ".bkp"
# Callback class -> the attributes its epoch-end decisions depend on.
STATE_ATTRIBUTES = {
    keras.callbacks.ModelCheckpoint: ("best",),
    keras.callbacks.EarlyStopping: ("wait", "stopped_epoch", "best", "best_epoch"),
    keras.callbacks.ReduceLROnPlateau: ("wait", "best", "cooldown_counter"),
}


def _stateful(callbacks: list[keras.callbacks.Callback]) -> list[tuple[keras.callbacks.Callback, tuple[str, ...]]]:
    return [(cb, names) for cb in callbacks for cls, names in STATE_ATTRIBUTES.items() if isinstance(cb, cls)]


def _plain(value):
    return None if value is None else float(value) if isinstance(value, (float, np.floating)) else int(value)


class CallbackState(keras.callbacks.Callback):
    """Saves the state of `callbacks` after every epoch and restores it when a run resumes.

    Put it after those callbacks (it restores them once they have reset themselves in
    on_train_begin) and before BackupAndRestore (so the state of an epoch is on disk before the
    backup that names the epoch).
    """

    def __init__(self, backup_dir: Path, callbacks: list[keras.callbacks.Callback], first_epoch: int):
        super().__init__()
        self.path = Path(backup_dir) / STATE_FILE
        self.callbacks = _stateful(callbacks)
        self.first_epoch = first_epoch
        self.saved = json.loads(self.path.read_text()) if first_epoch and self.path.is_file() else {}

    def on_train_begin(self, logs=None):
        if not self.first_epoch:
            return
        state = self.saved.get(str(self.first_epoch))
        if state is None:
            raise UserError(f"{self.path} lacks the state of epoch {self.first_epoch}; delete {self.path.parent} to train from the start")
        for index, (callback, names) in enumerate(self.callbacks):
            for name in names:
                setattr(callback, name, state["callbacks"][index][name])
        for variable, value in zip(self._seed_states(), state["seeds"]):
            variable.assign(np.asarray(value, dtype=variable.dtype))

    def on_epoch_end(self, epoch, logs=None):
        self.saved[str(epoch + 1)] = {
            "callbacks": [{name: _plain(getattr(cb, name)) for name in names} for cb, names in self.callbacks],
            "seeds": [np.asarray(v).tolist() for v in self._seed_states()],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, self.saved)

    def _seed_states(self) -> list:
        """The model's seed-generator states: its non-trainable variables that are not weights."""
        weights = {id(v) for v in self.model.non_trainable_weights}
        return [v for v in self.model.non_trainable_variables if id(v) not in weights]


def _readable(weights: Path, metadata: Path) -> int | None:
    """The epoch of an intact weights + metadata pair, else None."""
    try:
        with h5py.File(weights, "r") as f:
            f.visititems(lambda name, item: item[()] if isinstance(item, h5py.Dataset) else None)
        return int(json.loads(metadata.read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def resume_epoch(backup_dir: Path) -> int:
    """The epoch a run resumes at (0: from the start); a damaged backup falls back to its previous copy.

    A first backup that a kill cut short (weights without metadata) is removed; a backup damaged
    with no intact previous copy (a full disk, a crash during both writes) is removed with a
    warning, and the run starts again from its first epoch.
    """
    backup_dir = Path(backup_dir)
    weights, metadata = backup_dir / WEIGHTS, backup_dir / METADATA
    if not backup_dir.is_dir() or not (weights.exists() or metadata.exists()):
        return 0
    epoch = _readable(weights, metadata)
    if epoch is not None:
        return epoch
    previous = weights.with_name(weights.name + PREVIOUS), metadata.with_name(metadata.name + PREVIOUS)
    epoch = _readable(*previous)
    if epoch is None:
        if metadata.exists() or previous[1].exists():
            warnings.warn(f"the backup in {backup_dir} is damaged, and so is its previous copy; "
                          "this run starts again from its first epoch", stacklevel=2)
        for stale in (weights, metadata, *previous, backup_dir / STATE_FILE):
            stale.unlink(missing_ok=True)
        return 0
    shutil.copyfile(previous[0], weights)
    shutil.copyfile(previous[1], metadata)
    return epoch


def keep_history(history_csv: Path, epochs: int) -> None:
    """Cut history.csv to its first `epochs` rows (rows a killed run wrote after its last backup go)."""
    if not history_csv.is_file():
        return
    lines = history_csv.read_text().splitlines(keepends=True)
    if not epochs:
        history_csv.unlink()
    elif len(lines) > epochs + 1:
        write_text(history_csv, "".join(lines[: epochs + 1]))
