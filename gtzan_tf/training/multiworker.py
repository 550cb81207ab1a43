"""Multi-worker data-parallel training: `train.py --strategy multiworker` on every machine.

Every machine runs the same command with its own `TF_CONFIG`, for example on the second of two:

    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 1}}' \
        python train.py --strategy multiworker --model resnet34_msd --data DIR --out RUN --features FEATURES

Keras 3's `model.fit` does not run under `tf.distribute.MultiWorkerMirroredStrategy`
(keras-team/keras#20585), so a custom loop calls the single-machine path's own Keras callbacks
(`callbacks.make_callbacks`) at `model.fit`'s hooks. Each replica trains on its part of every global
batch (`batch_size x replicas` segments); the optimizer all-reduces the gradients. Custom here:
chief-only writing (task 0 writes RUN_DIR, the others' callbacks a temporary folder), validation on
the chief with its numbers and restored backup broadcast, and BatchNorm on global-batch statistics.
FEATURES_DIR must be on a filesystem every worker sees.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from typing import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.distribute import multi_worker_util
from tensorflow.python.eager import context

from gtzan_tf import native_stderr_silenced
from gtzan_tf.config import Config
from gtzan_tf.data.index import DatasetIndex
from gtzan_tf.data.pipeline import FeatureSet, eval_clip_dataset, load_feature_set, segment_dataset
from gtzan_tf.errors import UserError
from gtzan_tf.models.registry import build_for, run_inputs
from gtzan_tf.prepare import MANIFEST
from gtzan_tf.training.callbacks import BACKUP, ClipMetrics, check_finite_loss, make_callbacks
from gtzan_tf.training.trainer import (
    finish_run,
    locate_features,
    make_optimizer,
    make_strategy,
    owned_run_folder,
    prepare_features,
    use_mixed_precision,
    validate,
)

VALIDATION_KEYS = ("val_loss", "val_accuracy", "val_clip_accuracy", "val_clip_loss", "val_clip_rank")
# How long a worker waits, after the chief is done, for the manifest to show up on a shared
# filesystem with attribute caching (NFS).
MANIFEST_VISIBLE_TIMEOUT_S = 120.0
CHIEF_EXIT_GRACE_S = 2.0
TASK_NAME = re.compile(r"/job:(chief|worker)/replica:\d+/task:(\d+)")  # a task in TensorFlow's messages


def local_tf_configs(workers: int) -> list[str]:
    """The TF_CONFIG (JSON) of each worker of a `workers`-process cluster on this machine, on free
    127.0.0.1 ports: to try --strategy multiworker on one machine (the tests and the benchmark do)."""
    sockets = [socket.socket() for _ in range(workers)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        cluster = {"worker": [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]}
    finally:
        for s in sockets:
            s.close()
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}) for i in range(workers)]


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


def _form_cluster(tf_config: dict, index: int, timeout_s: float) -> tf.distribute.Strategy:
    """The strategy, once every worker of TF_CONFIG has started; one line naming the workers that
    have not after `timeout_s` (train.worker_timeout_seconds).

    The wait is TensorFlow's: its coordination service (configured as MultiWorkerMirroredStrategy
    would, before it does) with a registration barrier that times out.
    """
    if tf_config:
        cluster = tf.train.ClusterSpec(tf_config["cluster"])
        print(f"worker {index}: waiting up to {timeout_s:g} s for the workers of TF_CONFIG", file=sys.stderr, flush=True)
        context.context().configure_coordination_service(
            "standalone", service_leader=multi_worker_util.coordination_leader(cluster),
            cluster_register_timeout_in_ms=math.ceil(timeout_s * 1000))
        service = context.context().coordination_service
        service.cluster_register_with_barrier = True  # without it, the first worker waits forever
        for job in ("chief", "worker"):
            if job in cluster.jobs:
                service.coordinated_job_list.add(name=job, num_tasks=cluster.num_tasks(job))
    # TensorFlow logs a failed start-up at length, also when its half-made context goes: one line says it.
    with native_stderr_silenced():
        try:
            return make_strategy("multiworker")
        except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError) as exc:
            failure = exc.message
    raise UserError(f"worker {index}: gave up after {timeout_s:g} s waiting for "
                    f"{', '.join(_missing_workers(failure, tf_config, index))} of TF_CONFIG; start every worker "
                    "within train.worker_timeout_seconds (--worker-timeout) of the others")


def _missing_workers(message: str, tf_config: dict, index: int) -> list[str]:
    """host:port of the workers a failed cluster start-up waited for.

    TensorFlow's message names them: the leader (the first worker) lists the tasks that never
    registered; any other worker names the leader it could not register with. Else: all the others.
    """
    listed = message.split("timed out task names:", 1)
    if len(listed) == 2:
        tasks = TASK_NAME.findall(listed[1].split("\n\n", 1)[0])
    else:
        tasks = TASK_NAME.findall(message.split("remote target", 1)[-1])[:1]
    cluster = tf_config["cluster"]
    named = [cluster[job][int(task)] for job, task in tasks if job in cluster and int(task) < len(cluster[job])]
    everyone = [address for job in ("chief", "worker") for address in cluster.get(job, [])]
    return named or [address for i, address in enumerate(everyone) if i != index]


def worker_index(tf_config: dict) -> int:
    """This process's replica in the cluster, chief first (TensorFlow's order): 0 is the chief."""
    if not tf_config or tf_config["task"]["type"] == "chief":
        return 0
    return tf_config["task"]["index"] + len(tf_config["cluster"].get("chief", []))


def train_multiworker(cfg: Config, data_dir: Path, run_dir: Path, features_dir: Path | None = None,
                      workers: int = 1, verbose: int = 1, skip_bad: bool = False,
                      finish: Callable[[Path], object] | None = None) -> dict:
    """Train on every worker of TF_CONFIG's cluster; returns the chief's run summary (run.json).

    Same signature and result as `experiment.train` (the chief locks the run folder and runs
    `finish`); the other workers return their index and digest.
    """
    validate(cfg)
    t = cfg.train
    if t.seeds != 1:
        raise UserError("--seeds is not supported with --strategy multiworker: start one multi-worker run per seed")
    if t.jit:
        raise UserError("--jit is not supported with --strategy multiworker (its all-reduce is not XLA-compiled)")
    if features_dir is None:
        raise UserError("--strategy multiworker needs --features: a features folder on a filesystem every worker sees")
    tf_config = check_tf_config()
    index = worker_index(tf_config)
    strategy = _form_cluster(tf_config, index, t.worker_timeout_seconds)
    print(f"worker {index}: num_replicas_in_sync={strategy.num_replicas_in_sync}", flush=True)
    run_dir = Path(run_dir)
    features_dir, data_index = locate_features(cfg, Path(data_dir), run_dir, Path(features_dir), skip_bad)
    collectives = Collectives(strategy)
    fs = _shared_features(collectives, index, cfg, data_index, features_dir, workers, skip_bad)
    if use_mixed_precision(cfg):
        keras.mixed_precision.set_global_policy("mixed_float16")
    out_dir = run_dir if index == 0 else Path(tempfile.mkdtemp(prefix=f"gtzan-tf-worker{index}-"))
    try:
        if index:
            return _train(strategy, collectives, index, cfg, fs, out_dir, verbose)
        with owned_run_folder(run_dir, finish, cfg):
            return _train(strategy, collectives, index, cfg, fs, out_dir, verbose)
    except (tf.errors.UnavailableError, tf.errors.AbortedError) as exc:  # a collective lost a peer
        raise UserError(f"worker {index}: another worker of the cluster stopped ({type(exc).__name__}); "
                        f"start every worker again to resume from {run_dir / BACKUP}") from None
    finally:
        keras.mixed_precision.set_global_policy("float32")
        if index:
            shutil.rmtree(out_dir, ignore_errors=True)


class Collectives:
    """Small all-reduces across the cluster, outside the training step (each traced once)."""

    def __init__(self, strategy: tf.distribute.Strategy):
        self.strategy = strategy
        self._from_chief = tf.function(self._chief_values, input_signature=[tf.TensorSpec([None], tf.float64)])

    def _chief_values(self, values):
        def replica_fn(v):
            ctx = tf.distribute.get_replica_context()
            v = tf.identity(v)  # a function input all-reduced as such has no device ("destinations can not be empty")
            return ctx.all_reduce(tf.distribute.ReduceOp.SUM, v * tf.cast(ctx.replica_id_in_sync_group == 0, v.dtype))

        return self.strategy.experimental_local_results(self.strategy.run(replica_fn, args=(values,)))[0]

    def barrier(self) -> None:
        """Returns on every worker once all have reached it (a failed worker makes it raise)."""
        self._from_chief(tf.zeros([1], tf.float64))

    def from_chief(self, values) -> np.ndarray:
        """The chief's `values` (a float vector of the same length everywhere), on every worker."""
        return self._from_chief(tf.constant(np.asarray(values, np.float64).reshape(-1))).numpy()

    def broadcast_variables(self, variables: list) -> None:
        """Give every worker the chief's values of `variables` (after the chief restored a backup)."""
        @tf.function
        def broadcast():
            def replica_fn():
                ctx = tf.distribute.get_replica_context()
                keep = ctx.replica_id_in_sync_group == 0
                return [ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.where(keep, v.value, tf.zeros_like(v.value)))
                        for v in variables]

            values = self.strategy.run(replica_fn)
            for variable, value in zip(variables, values):
                variable.assign(self.strategy.experimental_local_results(value)[0])

        broadcast()


def _shared_features(collectives: Collectives, index: int, cfg: Config, data_index: DatasetIndex | None,
                     features_dir: Path, workers: int, skip_bad: bool) -> FeatureSet:
    """The chief prepares missing features; the others wait for it, then read the same folder."""
    if index == 0:
        fs = prepare_features(cfg, data_index, features_dir, workers, skip_bad)
    elif not _manifest_ready(features_dir, cfg):
        print(f"worker {index}: waiting for the chief to prepare {features_dir}", file=sys.stderr, flush=True)
    collectives.barrier()
    if index:
        deadline = time.monotonic() + MANIFEST_VISIBLE_TIMEOUT_S
        while not _manifest_ready(features_dir, cfg):
            if time.monotonic() > deadline:
                raise UserError(f"worker {index} cannot see {features_dir / MANIFEST}, which the chief "
                                "prepared: --features must be on a filesystem shared by all workers")
            time.sleep(2.0)
        fs = load_feature_set(features_dir)
    return fs


def _manifest_ready(features_dir: Path, cfg: Config) -> bool:
    try:
        manifest = json.loads((features_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return manifest.get("fingerprint") == cfg.feature_fingerprint()


def _train(strategy, collectives: Collectives, index: int, cfg: Config, fs: FeatureSet, out_dir: Path,
           verbose: int) -> dict:
    """model.fit's loop and callback hooks under the strategy; `out_dir` is RUN_DIR on the chief."""
    t = cfg.train
    keras.utils.set_random_seed(t.seed)
    inputs = run_inputs(cfg)
    global_batch = t.batch_size * strategy.num_replicas_in_sync
    steps_per_epoch = math.ceil(fs.count("train") / global_batch)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(out_dir / "config.json")
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=t.label_smoothing)
    with strategy.scope():
        model = build_for(cfg, len(fs.genres))
        for layer in model._flatten_layers():
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True
        model.compile(optimizer=make_optimizer(cfg, steps_per_epoch), loss=loss, metrics=["accuracy"])
        model.optimizer.build(model.trainable_variables)  # a backup restores into existing variables
    validate_on_chief = _chief_validation(cfg, fs, model, loss) if index == 0 else None
    callbacks = keras.callbacks.CallbackList(
        make_callbacks(cfg, out_dir, val_clips=None), add_history=True, add_progbar=index == 0 and verbose != 0,
        model=model, verbose=verbose, epochs=t.epochs, steps=steps_per_epoch,
    )
    callbacks.on_train_begin()
    # The chief's BackupAndRestore may have restored weights, optimizer state and epoch: share them.
    collectives.broadcast_variables(model.weights + model.optimizer.variables)
    initial_epoch = int(collectives.from_chief([model._initial_epoch or 0])[0])
    read, read_ids = 0, hashlib.sha256()  # the training segments this worker read, their clip ids in order
    train_step, trainable = None, None
    logs, losses = {}, []
    for epoch in range(initial_epoch, t.epochs):
        callbacks.on_epoch_begin(epoch)
        if trainable != [id(v) for v in model.trainable_variables]:  # FreezeBackbone changed them
            trainable = [id(v) for v in model.trainable_variables]
            train_step = _make_train_step(strategy, model, keras.losses.CategoricalCrossentropy(
                label_smoothing=t.label_smoothing, reduction=None))
        totals = np.zeros(3)  # loss x segments, correct segments, segments
        batches = segment_dataset(fs, "train", inputs, global_batch, seed=t.seed + epoch,
                                  shuffle_buffer=t.shuffle_buffer, clip_ids=True)
        for step, (x, y, clip_ids) in enumerate(strategy.experimental_distribute_dataset(_sharded(batches))):
            callbacks.on_train_batch_begin(step)
            totals += train_step(x, y).numpy()
            for ids in strategy.experimental_local_results(clip_ids):
                read += len(ids)
                read_ids.update(b"\n".join(ids.numpy().tolist()) + b"\n")
            callbacks.on_train_batch_end(step, {"loss": totals[0] / totals[2], "accuracy": totals[1] / totals[2]})
        logs = {"loss": totals[0] / totals[2], "accuracy": totals[1] / totals[2]}
        losses.append(logs["loss"])
        chief_logs = validate_on_chief(epoch) if index == 0 else np.zeros(len(VALIDATION_KEYS))
        logs.update(zip(VALIDATION_KEYS, map(float, collectives.from_chief(chief_logs))))
        callbacks.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callbacks.on_train_end(logs)
    check_finite_loss(losses, out_dir, initial_epoch)

    digest = weights_digest(model)
    summary = {"worker": index, "weights_sha256": digest}
    if index == 0:
        best = build_for(cfg, len(fs.genres), init="scratch")
        best.load_weights(out_dir / "best.weights.h5")
        summary = {**finish_run(cfg, fs, best, out_dir), **summary}
    collectives.barrier()  # everyone leaves together, once the chief has scored its best weights
    print(f"worker {index} read {read} training segments, clip ids sha256={read_ids.hexdigest()}")
    print(f"worker {index} final weights sha256={digest}", flush=True)
    if index == 0:
        # The chief leads TensorFlow's coordination service: exiting last spares the other
        # workers a "failed to send RPC to coordination service" message while they shut down.
        time.sleep(CHIEF_EXIT_GRACE_S)
    return summary


def _sharded(batches: tf.data.Dataset) -> tf.data.Dataset:
    """The same seeded global batches on every worker, each replica keeping its part of every batch."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    return batches.with_options(options)


def _chief_validation(cfg: Config, fs: FeatureSet, model: keras.Model, loss):
    """A function scoring `model`'s current weights on the validation split: VALIDATION_KEYS' values.

    Keras' evaluate and predict do not run on the distributed model either, so they run on a copy
    (built from scratch: its weights come from the trained model every epoch).
    """
    inputs = run_inputs(cfg)
    copy = build_for(cfg, len(fs.genres), init="scratch")
    copy.compile(loss=loss, metrics=["accuracy"])
    segments = segment_dataset(fs, "valid", inputs, cfg.train.eval_batch_size, shuffle=False)
    clip_scores = ClipMetrics(eval_clip_dataset(fs, "valid", inputs))
    clip_scores.set_model(copy)

    def validate_on_chief(epoch: int) -> list[float]:
        copy.set_weights(model.get_weights())
        logs = {f"val_{k}": v for k, v in copy.evaluate(segments, verbose=0, return_dict=True).items()}
        clip_scores.on_epoch_end(epoch, logs)
        return [logs[key] for key in VALIDATION_KEYS]

    return validate_on_chief


def _make_train_step(strategy, model: keras.Model, per_segment_loss):
    """One distributed step: per-replica forward/backward, gradients all-reduced by the optimizer.

    The loss is the mean over the whole global batch (a short last batch too, as model.fit does).
    Returns [loss x segments, correct segments, segments] summed over the global batch.
    """
    optimizer, trainable = model.optimizer, model.trainable_variables
    loss_scaling = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    def replica_step(x, y):
        ctx = tf.distribute.get_replica_context()
        segments = tf.cast(tf.shape(y)[0], tf.float32)
        global_segments = tf.maximum(ctx.all_reduce(tf.distribute.ReduceOp.SUM, segments), 1.0)
        with tf.GradientTape() as tape:
            probs = model(x, training=True)
            per_segment = tf.cast(per_segment_loss(y, probs), tf.float32)
            regularization = tf.cast(tf.add_n(model.losses), tf.float32) if model.losses else tf.zeros(())
            loss = tf.reduce_sum(per_segment) / global_segments + regularization / strategy.num_replicas_in_sync
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, trainable)
        if loss_scaling:
            grads = _agree_on_finite(grads)
        optimizer.apply(grads, trainable)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(probs, -1), tf.argmax(y, -1)), tf.float32))
        return tf.stack([tf.reduce_sum(per_segment) + regularization * segments, correct, segments])

    @tf.function(reduce_retracing=True)
    def train_step(x, y):
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica_step, args=(x, y)), axis=None)

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


def weights_digest(model: keras.Model) -> str:
    """sha256 over every weight of the model (values, shapes, dtypes), in `model.weights` order."""
    digest = hashlib.sha256()
    for weight in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight.value))
        digest.update(f"{value.dtype}{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()
