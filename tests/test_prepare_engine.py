"""prepare --runner ray: a real local Ray instance with 2 CPUs and 1 or 2 actors writes the local
runner's bytes, survives a killed actor, and reports a bad file in one line."""
from __future__ import annotations

import contextlib
import filecmp
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

pytest.importorskip("ray")

from gtzan_tf.prepare import prepare

from conftest import ROOT, TINY, run_cli, run_main

# Two clips per shard: many small tasks, so an actor can be killed while most of the work is left.
TWO_CLIP_SHARDS = TINY.replace(data={"clips_per_shard": 2})
SETTINGS = ["--set", "data.validation_per_genre=1", "--set", "data.embeddings=", "--set", "data.clips_per_shard=2"]
RAY = ["--runner", "ray", "--ray-init", "num_cpus=2"]


def prepare_cli(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "gtzan_tf.prepare", "--data", str(data), "--out", str(out), *SETTINGS, *extra]


def assert_same_folders(ours: Path, reference: Path) -> None:
    """Every file prepare wrote (shards, sidecars, config.json, plan.json, manifest.json) is byte-equal."""
    names = sorted(p.name for p in reference.iterdir() if not p.name.startswith("."))
    assert sorted(p.name for p in ours.iterdir() if not p.name.startswith(".")) == names
    match, mismatch, errors = filecmp.cmpfiles(ours, reference, names, shallow=False)
    assert (mismatch, errors) == ([], [])
    assert {"manifest.json", "plan.json", "config.json"} <= set(match) and any(n.endswith(".tfrecord") for n in match)


def message_lines(stderr: str) -> list[str]:
    """What a command printed to stderr, less its progress bar."""
    return [line for line in re.split(r"[\r\n]+", stderr) if line.strip() and not line.startswith("prepare:")]


@pytest.fixture(scope="module")
def local_run(tiny_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "features"
    prepare(tiny_data, out, TWO_CLIP_SHARDS, progress=False)
    return out


def descendants(root: int) -> dict[int, str]:
    """The live processes under `root` (by parent links in /proc) with their command lines."""
    parents, commands = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                commands[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = {}, {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier and pid not in found}
        found.update({pid: commands[pid] for pid in frontier})
    return found


@contextlib.contextmanager
def running(cmd: list[str]) -> Iterator[subprocess.Popen]:
    """The command running in the background; killed if the test ends before it does."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return False


def test_an_actor_killed_mid_run_is_restarted_and_the_bytes_equal_the_local_runner(tiny_data, local_run, tmp_path):
    out = tmp_path / "features"
    with running(prepare_cli(tiny_data, out, *RAY, "--workers", "2")) as proc:
        deadline, sidecars = time.time() + 240, []
        while time.time() < deadline and not sidecars and proc.poll() is None:
            sidecars = list(out.glob("*-00*.json"))
            time.sleep(0.02)
        ray_processes = descendants(proc.pid)
        actors = [pid for pid, command in ray_processes.items() if "ShardBuilder" in command]
        assert actors, f"no actor process found among {sorted(ray_processes.values())}"
        os.kill(actors[0], signal.SIGKILL)
        killed_before_the_end = not (out / "manifest.json").exists()
        stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr
    assert killed_before_the_end, "the run finished before an actor could be killed"
    assert "Traceback" not in stderr and "manifest.json" in stdout
    assert_same_folders(out, local_run)
    time.sleep(1)
    assert not [pid for pid in ray_processes if alive(pid)], "Ray processes outlived the command"


def test_one_actor_with_skip_bad_skips_as_the_local_runner_does(tiny_data, tmp_path):
    from test_prepare import copy_dataset, corrupt

    data = copy_dataset(tiny_data, tmp_path / "gtzan")
    corrupt(data / "wav" / "jazz" / "jazz.00001.wav")
    with pytest.warns(UserWarning, match="jazz.00001.wav"):
        prepare(data, tmp_path / "local", TWO_CLIP_SHARDS, skip_bad=True, progress=False)
    result = run_cli(*prepare_cli(data, tmp_path / "ray", *RAY, "--workers", "1", "--skip-bad")[1:])
    assert result.returncode == 0, result.stderr
    assert "warning: skipped" in result.stderr and "jazz.00001.wav" in result.stderr
    assert_same_folders(tmp_path / "ray", tmp_path / "local")
    skipped = json.loads((tmp_path / "ray" / "manifest.json").read_text())["skipped"]
    assert [Path(entry["path"]).name for entry in skipped] == ["jazz.00001.wav"]


def test_a_file_an_actor_cannot_read_is_one_line_and_nothing_is_left(tiny_data, tmp_path):
    """The file is there when the driver checks the headers and gone when an actor decodes it (a
    cluster node that does not see the data folder): one line naming it, no Ray traceback."""
    from test_prepare import copy_dataset

    data = copy_dataset(tiny_data, tmp_path / "gtzan")
    victim = data / "wav" / "jazz" / "jazz.00002.wav"
    out = tmp_path / "features"
    with running(prepare_cli(data, out, *RAY, "--workers", "2")) as proc:
        deadline = time.time() + 120
        while time.time() < deadline and not (out / "plan.json").exists() and proc.poll() is None:
            time.sleep(0.01)
        victim.unlink()  # the plan is written after the header check and before Ray starts
        _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 2
    lines = message_lines(stderr)
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0] == f"error: {victim}: file not found"
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["--ray-address", "auto"], "--ray-address, --ray-init and --ray-actor go with --runner ray"),
    (["--runner", "ray", "--ray-init", "num_cpus"], "--ray-init takes KEY=VALUE, got 'num_cpus'"),
])
def test_ray_options_without_their_runner_or_value_are_one_line(tiny_data, tmp_path, capsys, args, message):
    from gtzan_tf.prepare.__main__ import main

    result = run_main(main, "--data", str(tiny_data), "--out", str(tmp_path / "features"), *args, capsys=capsys)
    assert result.returncode == 2 and result.stderr.strip() == f"error: {message}"
    assert not (tmp_path / "features").exists()


def test_an_unknown_actor_option_is_one_line_and_nothing_is_left(tiny_data, tmp_path):
    result = run_cli(*prepare_cli(tiny_data, tmp_path / "features", *RAY, "--ray-actor", "cpus=1")[1:])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = message_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: --ray-actor: Invalid option keyword cpus"), result.stderr
    assert not (tmp_path / "features").exists()
