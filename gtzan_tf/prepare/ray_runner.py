"""The Ray runner: the plan's shards as a Ray Dataset, built by a pool of actors that each load the
model frontend once (gtzan_tf.prepare.worker.build_shard, the local runner's code).

The same code runs on one machine (a local Ray instance) and on a Ray cluster (`address`). On a
cluster every node needs gtzan-tf installed and must see the output folder at the same path (a
shared filesystem): the driver writes config.json, plan.json and manifest.json, the actors the
shards and their sidecars. Ray Data restarts an actor that dies and reruns its shard (its actor
pools default to max_restarts=-1, max_task_retries=-1); every shard is written atomically from its
clips in plan order, so a rerun writes the same bytes.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from gtzan_tf import native_stderr_silenced
from gtzan_tf.errors import UserError, os_error_line
from gtzan_tf.prepare.plan import ShardTask
from gtzan_tf.prepare.worker import build_shard, init_worker

INSTALL = "the ray runner needs Ray: pip install 'gtzan-tf[cluster]'"


@dataclass(frozen=True)
class RayOptions:
    """Where and how the actors run: `address` of a running cluster (None starts Ray on this
    machine), keywords for `ray.init`, and each actor's resources (`num_cpus`, also its TensorFlow
    threads; `num_gpus`, `memory`, ...)."""

    address: str | None = None
    init: dict = field(default_factory=dict)
    actor: dict = field(default_factory=dict)


def parse_options(pairs: list[str], flag: str) -> dict:
    """KEY=VALUE pairs as keywords; a VALUE that is JSON (2, true, {"a": 1}) is decoded, others stay strings."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"{flag} takes KEY=VALUE, got {pair!r}")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options


class ShardBuilder:
    """One Ray actor: loads the model frontend once, then builds the shards it is given. A bad
    audio file or a file system error comes back as the shard's error line, as the local runner
    would print it."""

    def __init__(self, tasks: list[ShardTask], cfg_dict: dict, out_dir: str, skip_bad: bool, threads: int):
        from gtzan_tf.config import Config
        from gtzan_tf.features.frontend import frontend_function

        init_worker(threads)
        frontend_function(Config.from_dict(cfg_dict))  # the model and its weights, once per actor
        self.tasks, self.cfg_dict, self.out_dir, self.skip_bad = tasks, cfg_dict, out_dir, skip_bad

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        errors = []
        for number in batch["task"]:
            try:
                build_shard(self.tasks[number], self.cfg_dict, self.out_dir, self.skip_bad)
                errors.append("")
            except UserError as exc:
                errors.append(str(exc))
            except OSError as exc:
                errors.append(os_error_line(exc))
        return {"task": batch["task"], "error": np.array(errors, dtype=object)}


def build_shards_on_ray(todo: list[ShardTask], cfg_dict: dict, out: Path, workers: int, skip_bad: bool,
                        options: RayOptions) -> Iterator[ShardTask]:
    """Build the shards `todo` with `workers` actors; yields each shard when it is written."""
    with ray_session(options) as ray:
        actor = {"num_cpus": 1, **options.actor}
        try:
            ray.remote(**actor)(ShardBuilder)  # Ray checks the options here; Ray Data only once its actors start
        except (ValueError, TypeError) as exc:
            raise UserError(f"--ray-actor: {exc}") from None
        threads = max(1, int(actor["num_cpus"]))
        shards = ray.data.from_items([{"task": i} for i in range(len(todo))], override_num_blocks=len(todo))
        built = shards.map_batches(
            ShardBuilder, batch_size=1, compute=ray.data.ActorPoolStrategy(size=workers),
            fn_constructor_kwargs={"tasks": todo, "cfg_dict": cfg_dict, "out_dir": str(out),
                                   "skip_bad": skip_bad, "threads": threads},
            **actor,
        )
        for row in built.iter_rows():
            if row["error"]:
                raise UserError(row["error"])
            yield todo[row["task"]]


@contextlib.contextmanager
def ray_session(options: RayOptions):
    """The `ray` module, connected to the cluster of `options` (or to a Ray this process started
    already), quiet: no dashboard, no progress bars, Ray's own logs only in its session folder."""
    # Ray's C++ core logs an error-level line on every actor pool start (ray#53727) unless told otherwise.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    try:
        import ray
        import ray.data
    except ImportError:
        raise UserError(INSTALL) from None
    for logger in ("ray", "ray.data"):
        logging.getLogger(logger).setLevel(logging.ERROR)
    ray.data.DataContext.get_current().enable_progress_bars = False
    started = not ray.is_initialized()
    if started:
        local = {"include_dashboard": False} if options.address is None else {}
        kwargs = {"logging_level": logging.ERROR, "log_to_driver": False, **local, **options.init}
        try:
            with native_stderr_silenced():  # the C++ core's line announcing its log level
                ray.init(address=options.address, **kwargs)
        except (ValueError, TypeError, ConnectionError, RuntimeError) as exc:
            what = f"join the Ray cluster at {options.address}" if options.address else "start Ray on this machine"
            raise UserError(f"cannot {what}: {exc}") from None
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()

