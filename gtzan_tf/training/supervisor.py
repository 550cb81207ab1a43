"""A multi-worker process under a light parent that SIGINT and SIGTERM always stop.

A worker of `train.py --strategy multiworker` spends its waits inside TensorFlow's C++ runtime: while
MultiWorkerMirroredStrategy waits for its peers it holds the interpreter lock (no Python signal
handler or watchdog thread runs), and TensorFlow's coordination service takes SIGTERM over (it only
logs it, for its preemption handling). So train.py runs each worker as the child of a parent that
imports no TensorFlow and waits. On SIGINT or SIGTERM the parent kills the child's process group at
once, as kill -9 would (the run resumes from its backup), and exits with one line: `interrupted`
(code 130) or `stopped by SIGTERM` (143). Otherwise it exits with the child's code. The child runs in
its own session (a Ctrl-C in the terminal reaches the parent only), dies with the parent (Linux's
parent-death signal), and keeps its temporary files in a folder the parent removes.

This module imports no TensorFlow.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import tempfile

from gtzan_tf.errors import Stopped, UserError

PARENT_ENV = "GTZAN_TF_WORKER_PARENT"  # set in the child: its parent's process id
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def supervise(script: str) -> None:
    """Run this command-line process (`python script ARGS`) as a stoppable child.

    In the parent: runs the child and exits with its code (never returns). In the child: returns,
    once the child is set to die with its parent.
    """
    parent = os.environ.get(PARENT_ENV)
    if parent is None:
        sys.exit(run_child([sys.executable, script, *sys.argv[1:]]))
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(parent):  # the parent ended before the line above
        sys.exit(1)


def run_child(cmd: list[str]) -> int:
    """Run `cmd` as a child in its own session and return its exit code; SIGINT and SIGTERM kill it
    and raise (KeyboardInterrupt, Stopped), which `errors.cli` prints as one line."""
    with tempfile.TemporaryDirectory(prefix="gtzan-tf-worker-") as scratch:
        child = subprocess.Popen(cmd, env={**os.environ, PARENT_ENV: str(os.getpid()), "TMPDIR": scratch},
                                 start_new_session=True)
        # Both handlers set here: a shell that starts a job in the background (`cmd &`) has it ignore SIGINT.
        previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, _raise_stopped),
                    signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler)}
        try:
            code = child.wait()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError):  # it may have ended meanwhile
                    os.killpg(child.pid, signal.SIGKILL)  # its session is its process group
                child.wait()
    if code < 0:
        raise UserError(f"the worker process was killed by {signal.Signals(-code).name}")
    return code


def _raise_stopped(signum, frame):
    raise Stopped(signum)

