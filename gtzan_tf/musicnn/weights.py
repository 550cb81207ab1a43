"""musicnn TF1 checkpoints -> Keras weights, cached as `.weights.h5` for fast later loads."""
from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
from pathlib import Path

import keras
import tensorflow as tf

from gtzan_tf.errors import UserError
from gtzan_tf.files import atomic_path
from gtzan_tf.musicnn.model import MODEL_NAMES, CheckpointScopes, build_network

MISSING_PACKAGE = "musicnn weights not found: pip install --no-deps musicnn==0.1.0"


def checkpoint_prefix(model_name: str) -> str:
    """Prefix of the checkpoint shipped in the musicnn package (files `.index`, `.data-*`)."""
    spec = importlib.util.find_spec("musicnn")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise UserError(MISSING_PACKAGE)
    folder = Path(next(iter(spec.submodule_search_locations))) / model_name
    if not (folder / ".index").is_file():
        raise UserError(MISSING_PACKAGE)
    return f"{folder}{os.sep}"


def cache_dir() -> Path:
    """`$GTZAN_TF_CACHE/musicnn`, else `~/.cache/gtzan_tf/musicnn`."""
    root = os.environ.get("GTZAN_TF_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "gtzan_tf") / "musicnn"


def cache_path(model: keras.Model) -> Path:
    """Cache file of `model`, named by a fingerprint of its weights' layout, so a changed
    architecture never loads a stale file."""
    layout = [keras.__version__] + [
        (type(layer).__name__, layer.name, v.name, tuple(v.shape)) for layer in model.layers for v in layer.weights
    ]
    fingerprint = hashlib.sha256(repr(layout).encode()).hexdigest()[:12]
    return cache_dir() / f"{model.name}-{fingerprint}.weights.h5"


def load_checkpoint(model: keras.Model, scopes: CheckpointScopes, prefix: str) -> None:
    """Copy every variable of `model` from the TF1 checkpoint at `prefix` (Adam slots are not read)."""
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    for layer in model.layers:
        for variable in layer.weights:
            value = reader.get_tensor(scopes[layer.name][variable.name])
            # 2-D kernels of full-width TF1 convolutions become Conv1D kernels: same values, reshaped.
            variable.assign(value.reshape(variable.shape))


def load_musicnn(model_name: str = "MSD_musicnn") -> keras.Model:
    """Pretrained network `model_name`: (batch, 187, 96) log-mel patches -> dict of named outputs."""
    if model_name not in MODEL_NAMES:
        raise UserError(f"unknown musicnn model {model_name!r}; choose one of {', '.join(MODEL_NAMES)}")
    model, scopes = build_network(model_name)
    cached = cache_path(model)
    if cached.is_file():
        try:
            model.load_weights(cached)
            return model
        except (OSError, ValueError, KeyError):
            pass  # stale or damaged cache: convert again
    load_checkpoint(model, scopes, checkpoint_prefix(model_name))
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cached) as tmp:
            model.save_weights(tmp)
    except OSError as exc:
        warnings.warn(f"musicnn weights not cached ({exc}); set GTZAN_TF_CACHE to a writable folder", stacklevel=2)
    return model
