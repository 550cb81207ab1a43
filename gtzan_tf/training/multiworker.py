"""Multi-worker data-parallel training: `train.py --strategy multiworker` on every machine.

Every machine runs the same command with its own `TF_CONFIG`, for example on the second of two:

    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 1}}' \
        python train.py --strategy multiworker --model resnet34_msd --data DIR --out RUN --features FEATURES

Keras 3's `model.fit` does not work under `tf.distribute.MultiWorkerMirroredStrategy`
(keras-team/keras#20585), so this is a custom loop with the single-machine path's behaviour:
the same model, optimizer, schedule, data pipeline, clip-level validation accuracy, best weights
(`best.weights.h5`), early stopping, learning-rate reduction on plateau, `history.csv` columns,
TensorBoard logs, resumption and final scoring/export (`trainer.finish_run`).

* Task 0 (the `chief` task if the cluster has one, else worker 0) is the chief: it prepares missing
  features, validates, writes everything in RUN_DIR and exports. The other workers write nothing
  there (their checkpoint copies go to a temporary folder, deleted at the end).
* FEATURES_DIR and RUN_DIR must be on a filesystem every worker sees (NFS, a mounted bucket...):
  the workers read the chief's features and, when resuming, the chief's checkpoint. DATA_DIR is
  read by the chief only.
* Each step takes one global batch of `batch_size x replicas` segments from the same seeded,
  deterministic stream on every worker; tf.data's DATA auto-sharding gives every replica its part.
  An epoch is `ceil(train segments / global batch)` steps on every worker.
* Validation runs on the chief, on a non-distributed copy of the model, and its numbers are
  broadcast so that every worker takes the same early-stopping and learning-rate decisions.
* At the end every worker prints `worker <i> final weights sha256=<hex>`: equal digests show the
  replicas stayed in sync.
"""
from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from gtzan_tf.config import Config
from gtzan_tf.data.pipeline import FeatureSet, eval_clip_dataset, load_feature_set, segment_dataset
from gtzan_tf.errors import UserError
from gtzan_tf.models import model_inputs, set_backbone_trainable
from gtzan_tf.prepare import MANIFEST
from gtzan_tf.evaluation.metrics import clip_accuracy, predict_clips
from gtzan_tf.models.registry import build_for
from gtzan_tf.training.trainer import (
    REDUCE_LR_FACTOR,
    REDUCE_LR_MIN_DELTA,
    default_features_dir,
    finish_run,
    make_optimizer,
    make_strategy,
    prepare_features,
    use_mixed_precision,
    validate,
)

# history.csv columns, as Keras' CSVLogger writes them for the single-machine path (sorted keys).
HISTORY_COLUMNS = ("epoch", "accuracy", "learning_rate", "loss", "val_accuracy", "val_clip_accuracy", "val_loss")
# How long a worker waits, after the chief is done, for the manifest to show up on a shared
# filesystem with attribute caching (NFS).
MANIFEST_VISIBLE_TIMEOUT_S = 120.0
BACKUP = "backup"
CHIEF_EXIT_GRACE_S = 2.0


@dataclass(frozen=True)
class WorkerRole:
    """This process in the cluster: index 0 is the chief."""

    index: int

    @property
    def is_chief(self) -> bool:
        return self.index == 0


def check_tf_config() -> dict:
    """The parsed TF_CONFIG (empty when unset: a one-worker cluster), or one clear error."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return {}
    try:
        tf_config = json.loads(raw)
    except ValueError as exc:
        raise UserError(f"TF_CONFIG is not valid JSON: {exc}") from None
    cluster, task = tf_config.get("cluster"), tf_config.get("task")
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise UserError('TF_CONFIG needs "cluster" and "task": {"cluster": {"worker": ["host:port", ...]}, '
                        '"task": {"type": "worker", "index": I}}')
    unknown = set(cluster) - {"chief", "worker"}
    if unknown or task.get("type") not in ("chief", "worker"):
        raise UserError(f"TF_CONFIG for --strategy multiworker has only 'chief' and 'worker' tasks, "
                        f"got cluster jobs {sorted(cluster)} and task type {task.get('type')!r}")
    jobs = cluster.get(task["type"], [])
    if not isinstance(task.get("index"), int) or not 0 <= task["index"] < len(jobs):
        raise UserError(f"TF_CONFIG task index {task.get('index')!r} is not one of the "
                        f"{len(jobs)} {task['type']} addresses in its cluster")
    return tf_config


def worker_role(tf_config: dict) -> WorkerRole:
    """Chief first, then the workers in order: TensorFlow's replica order in the cluster."""
    cluster = tf_config.get("cluster", {})
    task = tf_config.get("task", {"type": "worker", "index": 0})
    if task["type"] == "chief":
        return WorkerRole(0)
    return WorkerRole(task["index"] + len(cluster.get("chief", [])))


def train_multiworker(cfg: Config, data_dir: Path, run_dir: Path, features_dir: Path | None = None,
                      workers: int = 1, verbose: int = 1) -> dict:
    """Train on every worker of TF_CONFIG's cluster; returns the chief's run summary (run.json).

    Same signature and result as `trainer.train`; the other workers return their index and digest.
    """
    validate(cfg)
    t = cfg.train
    if t.seeds != 1:
        raise UserError("--seeds is not supported with --strategy multiworker: start one multi-worker run per seed")
    if t.jit:
        raise UserError("--jit is not supported with --strategy multiworker (its all-reduce is not XLA-compiled)")
    role = worker_role(check_tf_config())
    # TensorFlow requires the strategy before any other TensorFlow work in the process; it
    # returns when every worker of the cluster is up.
    strategy = make_strategy("multiworker")
    run_dir = Path(run_dir)
    features_dir = Path(features_dir) if features_dir else default_features_dir(run_dir, cfg)
    collectives = Collectives(strategy)
    fs = _shared_features(collectives, role, cfg, Path(data_dir), features_dir, workers)
    if use_mixed_precision(cfg):
        keras.mixed_precision.set_global_policy("mixed_float16")
    scratch = None if role.is_chief else Path(tempfile.mkdtemp(prefix=f"gtzan-tf-worker{role.index}-"))
    try:
        return _train(strategy, collectives, role, cfg, fs, run_dir, scratch, verbose)
    finally:
        keras.mixed_precision.set_global_policy("float32")
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


# --------------------------------------------------------------------------- collectives
class Collectives:
    """Small all-reduces across the cluster, outside the training step (each traced once)."""

    def __init__(self, strategy: tf.distribute.Strategy):
        self.strategy = strategy
        spec = [tf.TensorSpec([None], tf.float64)]
        self._sum = tf.function(lambda v: self._reduce(v, chief_only=False), input_signature=spec)
        self._from_chief = tf.function(lambda v: self._reduce(v, chief_only=True), input_signature=spec)

    def _reduce(self, values, chief_only: bool):
        def replica_fn(v):
            ctx = tf.distribute.get_replica_context()
            v = tf.identity(v)  # a function input all-reduced as such has no device ("destinations can not be empty")
            if chief_only:
                v = v * tf.cast(tf.equal(ctx.replica_id_in_sync_group, 0), v.dtype)
            return ctx.all_reduce(tf.distribute.ReduceOp.SUM, v)

        return self.strategy.experimental_local_results(self.strategy.run(replica_fn, args=(values,)))[0]

    def barrier(self) -> None:
        """Returns on every worker once all have reached it (a failed worker makes it raise)."""
        self._sum(tf.zeros([1], tf.float64))

    def from_chief(self, values) -> np.ndarray:
        """The chief's `values` (a float vector of the same length everywhere), on every worker."""
        return self._from_chief(tf.constant(np.asarray(values, np.float64).reshape(-1))).numpy()

    def same_everywhere(self, value: float) -> bool:
        """Whether every replica holds the same `value` (the same answer on every worker)."""
        n = self.strategy.num_replicas_in_sync
        total, total_sq = self._sum(tf.constant([value, value * value], tf.float64)).numpy()
        return bool(np.isclose(n * total_sq, total * total))


def _make_moving_stats_sync(strategy: tf.distribute.Strategy, model: keras.Model):
    """A function that replaces the model's non-trainable variables by their mean over replicas.

    Keras 3 creates BatchNormalization's moving mean and variance without a tf.distribute
    aggregation, so each replica updates them from its own part of the batch and they drift
    apart. The moving mean is linear in the batch means, so averaging once per epoch gives exactly
    the moving average of the global-batch means (and the mean of the per-replica variances).
    """
    moving = [w for w in model.weights if not w.trainable]  # before any freezing: BN statistics
    if not moving:
        return lambda: None

    @tf.function
    def sync():
        def replica_fn():
            ctx = tf.distribute.get_replica_context()
            return ctx.all_reduce(tf.distribute.ReduceOp.MEAN, [tf.identity(w.value) for w in moving])

        means = strategy.run(replica_fn)
        for weight, mean in zip(moving, means):
            weight.assign(strategy.experimental_local_results(mean)[0])

    return sync


# --------------------------------------------------------------------------- features
def _shared_features(collectives: Collectives, role: WorkerRole, cfg: Config, data_dir: Path, features_dir: Path,
                     workers: int) -> FeatureSet:
    """The chief prepares missing features; the others wait for it, then read the same folder."""
    if role.is_chief:
        prepare_features(cfg, data_dir, features_dir, workers)
    elif not _manifest_ready(features_dir, cfg):
        print(f"worker {role.index}: waiting for the chief to prepare {features_dir}", file=sys.stderr, flush=True)
    collectives.barrier()
    if not role.is_chief:
        deadline = time.monotonic() + MANIFEST_VISIBLE_TIMEOUT_S
        while not _manifest_ready(features_dir, cfg):
            if time.monotonic() > deadline:
                raise UserError(f"worker {role.index} cannot see {features_dir / MANIFEST}, which the chief "
                                "prepared: --features (and --out) must be on a filesystem shared by all workers")
            time.sleep(2.0)
    return load_feature_set(features_dir)


def _manifest_ready(features_dir: Path, cfg: Config) -> bool:
    try:
        manifest = json.loads((features_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return manifest.get("fingerprint") == cfg.feature_fingerprint()


# --------------------------------------------------------------------------- datasets
def _train_stream(fs: FeatureSet, inputs: tuple[str, ...], global_batch: int, seed: int,
                  shuffle_buffer: int) -> tf.data.Dataset:
    """Endless, seeded, identically ordered global batches on every worker, sharded by element.

    DATA sharding makes each worker keep its part of every global batch, so the stream must be
    the same everywhere: the clips are read in a fixed order and shuffled with a fixed seed.
    """
    segments = segment_dataset(fs, "train", inputs, global_batch, shuffle=False).unbatch()
    stream = (
        segments.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(global_batch, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    return stream.with_options(options)


# --------------------------------------------------------------------------- training
class _State:
    """Loop state kept in the checkpoint next to the model and the optimizer."""

    def __init__(self):
        self.epochs_done = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.finished = tf.Variable(False, trainable=False)
        self.best_clip_accuracy = tf.Variable(-np.inf, dtype=tf.float64, trainable=False)
        self.stop_wait = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.best_val_loss = tf.Variable(np.inf, dtype=tf.float64, trainable=False)
        self.plateau_wait = tf.Variable(0, dtype=tf.int64, trainable=False)

    def trackables(self) -> dict:
        return dict(vars(self))


def _train(strategy, collectives: Collectives, role: WorkerRole, cfg: Config, fs: FeatureSet, run_dir: Path, scratch: Path | None,
           verbose: int) -> dict:
    t = cfg.train
    keras.utils.set_random_seed(t.seed)
    inputs = model_inputs(t.model)
    global_batch = t.batch_size * strategy.num_replicas_in_sync
    steps_per_epoch = math.ceil(fs.count("train") / global_batch)
    if role.is_chief:
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg.save(run_dir / "config.json")

    with strategy.scope():
        model = build_for(cfg, len(fs.genres))
        optimizer = make_optimizer(cfg, steps_per_epoch)
        if keras.mixed_precision.global_policy().name == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        # Built on every trainable variable up front: the backbone may be frozen for a while, and
        # a checkpoint restores into existing variables.
        optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.CategoricalCrossentropy(label_smoothing=t.label_smoothing, reduction=None)

    state = _State()
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, **state.trackables())
    backup_dir = run_dir / BACKUP
    manager = tf.train.CheckpointManager(checkpoint, str(backup_dir if role.is_chief else scratch), max_to_keep=1)
    latest = tf.train.latest_checkpoint(str(backup_dir))  # every worker resumes from the chief's backup
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
    resumed = int(state.epochs_done.numpy())
    if not collectives.same_everywhere(resumed):
        raise UserError(f"workers resume from different epochs (this one from {resumed}): RUN_DIR {run_dir} "
                        "must be on a filesystem shared by all workers")

    sync_moving_stats = _make_moving_stats_sync(strategy, model)
    eval_model = validate_segments = val_clips = writers = None
    if role.is_chief:
        # Validation and the best weights use a copy of the model outside the strategy: Keras'
        # evaluate/predict do not work on the distributed model either. Its weights are copied
        # from the trained model every epoch, so it starts from scratch (no preset download).
        eval_model = build_for(cfg, len(fs.genres), init="scratch")
        validate_segments = _segment_validation(
            eval_model, segment_dataset(fs, "valid", inputs, t.eval_batch_size, shuffle=False), loss_fn)
        val_clips = eval_clip_dataset(fs, "valid", inputs)
        writers = _summary_writers(run_dir / "logs")
        if resumed == 0:
            (run_dir / "history.csv").unlink(missing_ok=True)

    stream = _train_stream(fs, inputs, global_batch, seed=t.seed + resumed, shuffle_buffer=t.shuffle_buffer)
    iterator = iter(strategy.experimental_distribute_dataset(stream))
    frozen = None
    train_step = None
    epoch = resumed
    while epoch < t.epochs and not bool(state.finished.numpy()):
        if t.freeze_backbone_epochs and frozen != (epoch < t.freeze_backbone_epochs):
            frozen = epoch < t.freeze_backbone_epochs
            for m in (model, eval_model):
                if m is not None:
                    set_backbone_trainable(m, not frozen)
            train_step = None
        if train_step is None:
            train_step = _make_train_step(strategy, model, optimizer, loss_fn, global_batch,
                                          loss_scaling=isinstance(optimizer, keras.optimizers.LossScaleOptimizer))
        if role.is_chief and verbose:
            print(f"Epoch {epoch + 1}/{t.epochs}", flush=True)
        started = time.monotonic()
        progress = keras.utils.Progbar(steps_per_epoch, verbose=1) if role.is_chief and verbose == 1 else None
        totals = np.zeros(3)
        for step in range(steps_per_epoch):
            ce_sum, correct, regularization = (float(v) for v in train_step(iterator))
            totals += (ce_sum / global_batch + regularization, correct, global_batch)
            if progress is not None:
                progress.update(step + 1, [("accuracy", totals[1] / totals[2]), ("loss", totals[0] / (step + 1))])
        sync_moving_stats()
        learning_rate = float(np.asarray(keras.ops.convert_to_numpy(optimizer.learning_rate)))
        logs = {"epoch": epoch, "accuracy": totals[1] / totals[2], "loss": totals[0] / steps_per_epoch,
                "learning_rate": learning_rate}
        if role.is_chief:
            eval_model.set_weights([w.numpy() for w in model.weights])
            val = [*validate_segments(), clip_accuracy(*predict_clips(eval_model, val_clips))]
        else:
            val = [0.0, 0.0, 0.0]
        logs["val_loss"], logs["val_accuracy"], logs["val_clip_accuracy"] = (
            float(v) for v in collectives.from_chief(val)
        )
        improved, stop = _end_of_epoch(cfg, state, optimizer, logs, epoch)
        if role.is_chief:
            if improved:
                eval_model.save_weights(run_dir / "best.weights.h5")
            _append_history(run_dir / "history.csv", logs)
            _write_summaries(writers, logs)
            if verbose:
                _print_epoch(logs, time.monotonic() - started, steps_per_epoch, progress is None)
        epoch += 1
        state.epochs_done.assign(epoch)
        state.finished.assign(stop or epoch >= t.epochs)
        manager.save()  # on every worker: TensorFlow's multi-worker checkpointing needs all of them
        if stop and role.is_chief and verbose:
            print(f"Epoch {epoch}: early stopping", flush=True)

    digest = weights_digest(model)
    summary = {"worker": role.index, "weights_sha256": digest, "epochs_run": int(state.epochs_done.numpy())}
    if role.is_chief:
        shutil.rmtree(backup_dir, ignore_errors=True)
        for writer in writers.values():
            writer.close()
        eval_model.load_weights(run_dir / "best.weights.h5")
        summary = {**finish_run(cfg, fs, eval_model, run_dir), "worker": 0, "weights_sha256": digest}
    collectives.barrier()  # everyone leaves together, once the chief has scored and exported
    print(f"worker {role.index} final weights sha256={digest}", flush=True)
    if role.is_chief:
        # The chief leads TensorFlow's coordination service: exiting last spares the other
        # workers a "failed to send RPC to coordination service" message while they shut down.
        time.sleep(CHIEF_EXIT_GRACE_S)
    return summary


def _make_train_step(strategy, model: keras.Model, optimizer, loss_fn, global_batch: int, loss_scaling: bool):
    """One distributed step: per-replica forward/backward, gradients all-reduced by the optimizer.

    Returns the global sum of per-segment cross-entropy, the number of correct segments and the
    regularisation loss (for the logs).
    """
    trainable = model.trainable_variables

    def replica_step(batch):
        x, y = batch
        with tf.GradientTape() as tape:
            probs = model(x, training=True)
            per_example = loss_fn(y, probs)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            regularization = tf.add_n(model.losses) if model.losses else tf.zeros(())
            loss += tf.nn.scale_regularization_loss(regularization)
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, trainable)
        if loss_scaling:
            grads = _agree_on_finite(grads)
        optimizer.apply(grads, trainable)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(probs, -1), tf.argmax(y, -1)), tf.float32))
        return tf.reduce_sum(per_example), correct, tf.cast(regularization, tf.float32)

    @tf.function
    def train_step(iterator):
        ce_sum, correct, regularization = strategy.run(replica_step, args=(next(iterator),))
        return (
            strategy.reduce(tf.distribute.ReduceOp.SUM, ce_sum, axis=None),
            strategy.reduce(tf.distribute.ReduceOp.SUM, correct, axis=None),
            strategy.reduce(tf.distribute.ReduceOp.MEAN, regularization, axis=None),
        )

    return train_step


def _agree_on_finite(grads: list) -> list:
    """Make every replica see non-finite gradients when any replica has some.

    LossScaleOptimizer checks its local (not yet all-reduced) gradients: on overflow in one
    replica only, that replica would skip the update while the others enter the gradient
    all-reduce and wait for it forever. One scalar all-reduce makes the decision common.
    """
    ctx = tf.distribute.get_replica_context()
    dense = [None if g is None else tf.convert_to_tensor(g) for g in grads]
    bad = tf.add_n([tf.reduce_sum(tf.cast(tf.logical_not(tf.math.is_finite(g)), tf.float32)) for g in dense if g is not None])
    bad = ctx.all_reduce(tf.distribute.ReduceOp.SUM, bad)
    return [None if g is None else g + tf.cast(tf.where(bad > 0, np.nan, 0.0), g.dtype) for g in dense]


def _segment_validation(eval_model: keras.Model, val_ds: tf.data.Dataset, loss_fn):
    """A function computing (val_loss, val_accuracy) over the validation segments, as Keras'
    evaluate reports them (mean cross-entropy plus regularisation, segment accuracy)."""

    @tf.function(reduce_retracing=True)
    def batch_sums(x, y):
        probs = eval_model(x, training=False)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(probs, -1), tf.argmax(y, -1)), tf.float64))
        return tf.reduce_sum(tf.cast(loss_fn(y, probs), tf.float64)), correct, tf.cast(tf.shape(y)[0], tf.float64)

    def validate_segments() -> tuple[float, float]:
        totals = np.zeros(3)
        for x, y in val_ds:
            totals += [float(v) for v in batch_sums(x, y)]
        regularization = float(sum(float(v) for v in eval_model.losses))
        return totals[0] / max(totals[2], 1) + regularization, totals[1] / max(totals[2], 1)

    return validate_segments


def _end_of_epoch(cfg: Config, state: _State, optimizer, logs: dict, epoch: int) -> tuple[bool, bool]:
    """Best weights and early stopping on val_clip_accuracy, LR reduction on val_loss, as the
    Keras callbacks of the single-machine path decide them.

    Every worker runs this on the same (broadcast) numbers, so all take the same decisions.
    Returns (val_clip_accuracy improved: save the best weights, stop training).
    """
    t = cfg.train
    improved = stop = False
    # EarlyStopping(monitor="val_clip_accuracy", mode="max", patience) and
    # ModelCheckpoint(save_best_only) on the same quantity.
    # Compared with keras.ops like the callbacks do (in float32), so that ties go the same way.
    state.stop_wait.assign_add(1)
    if bool(keras.ops.greater(logs["val_clip_accuracy"], float(state.best_clip_accuracy.numpy()))):
        state.best_clip_accuracy.assign(logs["val_clip_accuracy"])
        state.stop_wait.assign(0)
        improved = True
    elif state.stop_wait.numpy() >= t.early_stopping_patience and epoch > 0:
        stop = True
    # trainer.py's ReduceLROnPlateau on val_loss.
    if bool(keras.ops.less(logs["val_loss"] + REDUCE_LR_MIN_DELTA, float(state.best_val_loss.numpy()))):
        state.best_val_loss.assign(logs["val_loss"])
        state.plateau_wait.assign(0)
    else:
        state.plateau_wait.assign_add(1)
        if state.plateau_wait.numpy() >= t.reduce_lr_patience:
            state.plateau_wait.assign(0)
            try:
                optimizer.learning_rate = logs["learning_rate"] * REDUCE_LR_FACTOR
            except TypeError:
                pass  # a learning-rate schedule (--schedule cosine/step) is not settable
    return improved, stop


def weights_digest(model: keras.Model) -> str:
    """sha256 over every weight of the model (values, shapes, dtypes), in `model.weights` order."""
    digest = hashlib.sha256()
    for weight in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight.value))
        digest.update(f"{value.dtype}{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- chief-side logs
def _append_history(path: Path, logs: dict) -> None:
    """One CSVLogger-style row per epoch (0-based epoch, the header written once)."""
    new = not path.is_file()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow({key: logs[key] for key in HISTORY_COLUMNS})


def _summary_writers(logs_dir: Path) -> dict:
    """TensorBoard writers for logs/train and logs/validation; none without the tensorboard package,
    which tf.summary needs (TensorFlow 2.21 does not install it)."""
    if importlib.util.find_spec("tensorboard") is None:
        return {}
    return {name: tf.summary.create_file_writer(str(logs_dir / name)) for name in ("train", "validation")}


def _write_summaries(writers: dict, logs: dict) -> None:
    """The epoch scalars Keras' TensorBoard callback writes, in logs/train and logs/validation."""
    if not writers:
        return
    step = logs["epoch"]
    with writers["train"].as_default():
        for key in ("loss", "accuracy", "learning_rate"):
            tf.summary.scalar(f"epoch_{key}", logs[key], step=step)
    with writers["validation"].as_default():
        for key in ("loss", "accuracy", "clip_accuracy"):
            tf.summary.scalar(f"epoch_{key}", logs[f"val_{key}"], step=step)
    for writer in writers.values():
        writer.flush()


def _print_epoch(logs: dict, seconds: float, steps: int, with_steps: bool) -> None:
    metrics = " - ".join(f"{key}: {logs[key]:.4f}" for key in HISTORY_COLUMNS[1:] if key != "learning_rate")
    prefix = f"{steps}/{steps} - " if with_steps else ""
    print(f"{prefix}{seconds:.0f}s - {metrics} - learning_rate: {logs['learning_rate']:.4g}", flush=True)
