"""Every command shown in README.md and docs/*.md runs an entry point that accepts its flags.

Commands are the lines of shell code blocks and the inline code spans that run `python SCRIPT.py`
(or `SCRIPT.py` with arguments), `python -m gtzan_tf.MODULE` or `make TARGET` (after any VAR=value
prefix, also inside `docker run`).
Each is parsed in-process by its entry point's own `build_parser()`: unknown flags, wrong choices,
values of the wrong type, unknown `--set` keys, unknown scripts, modules and make targets fail. An
upper-case placeholder (DIR, N, RUN...) stands for any value, `[...]` marks an optional flag and
`...` alone elides arguments. An inline span may leave out required arguments and a flag's value (`train.py
--config`); a code block may not.
"""
from __future__ import annotations

import argparse
import importlib.util
import re
import shlex
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from gtzan_tf.config import Config
from gtzan_tf.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console"}
FENCED_BLOCK = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]*(\.\.\.)?")
ENV_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
PYTHON = re.compile(r"(.*/)?python(3(\.\d+)?)?")
FLAG = re.compile(r"\[?--?[A-Za-z]")
LEFT_OUT = re.compile(r"the following arguments are required|one of the arguments .* is required|expected (at least )?one argument")


@dataclass(frozen=True)
class Shown:
    """A command as a page shows it. `complete`: from a code block, so no required argument may be left out."""
    page: str
    line: int
    text: str
    complete: bool

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {self.text}"


class DocCommandError(Exception):
    pass


def doc_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shown_commands(page: Path) -> list[Shown]:
    """The lines of the page's shell code blocks (continuations joined) and its inline code spans."""
    text = page.read_text(encoding="utf-8")
    name = str(page.relative_to(ROOT))
    commands = []
    for block in FENCED_BLOCK.finditer(text):
        if block.group(1).lower() not in SHELL_LANGUAGES:
            continue
        pending, start = "", None
        for number, line in enumerate(block.group(2).split("\n"), text.count("\n", 0, block.start(2)) + 1):
            start = start or number
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            if (pending + line).strip():
                commands.append(Shown(name, start, (pending + line).strip(), True))
            pending, start = "", None
    outside = FENCED_BLOCK.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    commands += [Shown(name, outside.count("\n", 0, span.start()) + 1, span.group(1).strip(), False)
                 for span in INLINE_CODE.finditer(outside)]
    return commands


def words(command: str) -> list[list[str]]:
    """The simple commands of a shell line (split at ; && || |), as words, comments dropped."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|<>()")
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError as exc:  # an unclosed quote
        raise DocCommandError(f"not a shell command: {exc}") from None
    commands, current = [], []
    for token in tokens:
        if token and set(token) <= set(";&|<>()"):
            commands.append(current)
            current = []
        else:
            current.append(token)
    return [c for c in [*commands, current] if c]


def entry_point(tokens: list[str]) -> tuple[str, str, list[str]] | None:
    """("make", "", targets), ("script", path, args) or ("module", name, args); None for other programs."""
    while tokens and ENV_ASSIGNMENT.match(tokens[0]):
        tokens = tokens[1:]
    if tokens and tokens[0] == "make":
        return "make", "", [t for t in tokens[1:] if not t.startswith("-") and "=" not in t]
    if tokens and tokens[0].endswith(".py") and any(FLAG.match(t) for t in tokens[1:]):  # `train.py --folds K`
        return "script", tokens[0], tokens[1:]
    python = next((i for i, t in enumerate(tokens) if PYTHON.fullmatch(t)), None)
    if python is None or python + 1 >= len(tokens):
        return None
    program, rest = tokens[python + 1], tokens[python + 2:]
    if program == "-m" and rest:
        return "module", rest[0], rest[1:]
    if program.endswith(".py"):
        return "script", program, rest
    return None  # python -c, python -m pip, ...


@cache
def make_targets() -> frozenset[str]:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    return frozenset(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", makefile, re.MULTILINE))


@cache
def parser_factory(kind: str, name: str):
    """The entry point's `build_parser`, or None when `name` is a module of another project (pip, pytest)."""
    if kind == "module":
        if name.split(".")[0] != "gtzan_tf":
            return None
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            spec = None
        if spec is None:
            raise DocCommandError(f"no module {name}")
        module = importlib.import_module(f"{name}.__main__" if spec.submodule_search_locations else name)
    else:
        path = (ROOT / name).resolve()
        if not path.is_file() or ROOT not in path.parents:
            raise DocCommandError(f"no script {name} in the repository")
        spec = importlib.util.spec_from_file_location(f"doc_entry_{path.stem}", path)
        module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # dataclasses look it up
        sys.path.insert(0, str(path.parent))  # benchmarks import each other as scripts do
        try:
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(path.parent))
    if not hasattr(module, "build_parser"):
        raise DocCommandError(f"{name} has no build_parser(): cannot check its flags")
    return module.build_parser


def with_placeholders_filled(parser: argparse.ArgumentParser, args: list[str]) -> list[str]:
    """Optional flags unbracketed, `...` dropped, a placeholder of a typed option replaced by 1."""
    filled, action = [], None
    for arg in args:
        if arg == "...":
            continue
        arg = arg.removeprefix("[") if arg.startswith("[-") else arg
        arg = arg.rstrip("]") if arg.endswith("]") and "[" not in arg else arg
        if arg.startswith("-"):
            action = parser._option_string_actions.get(arg.split("=")[0])
        elif PLACEHOLDER.fullmatch(arg) and action is not None and action.type is not None:
            try:
                action.type(arg)
            except (ValueError, TypeError, argparse.ArgumentTypeError):
                arg = "1"
        filled.append(arg)
    return filled


def check_set_overrides(assignments: list[str]) -> None:
    for item in assignments:
        key, _, value = item.partition("=")
        try:
            Config().with_overrides([item])
        except UserError as exc:
            if not (PLACEHOLDER.fullmatch(value) and str(exc).startswith("bad value")):
                raise DocCommandError(f"--set {item}: {exc}") from None


def check_command(shown: Shown) -> int:
    """Raise DocCommandError unless every project command in `shown` parses; return how many there were."""
    checked = 0
    for tokens in words(shown.text):
        found = entry_point(tokens)
        if found is None:
            continue
        kind, name, args = found
        if kind == "make":
            unknown = [t for t in args if t not in make_targets()]
            if unknown:
                raise DocCommandError(f"make: no target {', '.join(unknown)} in the Makefile")
            checked += 1
            continue
        build_parser = parser_factory(kind, name)
        if build_parser is None:
            continue
        parser = build_parser()

        def refuse(message: str) -> None:
            raise DocCommandError(f"{name}: {message}")

        parser.error = refuse
        try:
            namespace, extra = parser.parse_known_args(with_placeholders_filled(parser, args))
        except DocCommandError as exc:
            if shown.complete or not LEFT_OUT.search(str(exc)):
                raise
            continue  # an inline fragment that leaves out arguments or values
        if extra:
            raise DocCommandError(f"{name} does not accept {' '.join(extra)}")
        check_set_overrides(getattr(namespace, "set", None) or [])
        checked += 1
    return checked


def runs_a_program_it_checks(shown: Shown) -> bool:
    try:
        return any(entry_point(tokens) is not None for tokens in words(shown.text))
    except DocCommandError:
        return True  # not even a shell line: its test says so


SHOWN = [command for page in doc_pages() for command in shown_commands(page) if runs_a_program_it_checks(command)]


@pytest.mark.parametrize("shown", SHOWN, ids=str)
def test_every_command_in_the_docs_parses(shown):
    try:
        check_command(shown)
    except DocCommandError as exc:
        pytest.fail(f"{shown}\n  {exc}", pytrace=False)


def test_the_docs_show_the_entry_points():
    named = " ".join(shown.text for shown in SHOWN)
    assert len(SHOWN) > 50
    for entry in ("train.py", "evaluate.py", "predict.py", "tune.py", "gtzan_tf.prepare", "gtzan_tf.app", "make demo"):
        assert entry in named


@pytest.mark.parametrize("text, message", [
    ("python train.py --model mlp_msd --data DIR --out RUN --epoks 5", "does not accept --epoks"),
    ("python evaluate.py --run RUN --split testing", "invalid choice: 'testing'"),
    ("python predict.py --model RUN song.wav --top-k three", "invalid int value"),
    ("python train.py --data DIR --out RUN --set train.learning_rat=0.1", "unknown config key"),
    ("python tune.py --model mlp_msd --data DIR --out STUDY", "required: --trials"),
    ("python trian.py --model mlp_msd", "no script trian.py"),
    ("python -m gtzan_tf.synthesise --out DIR", "no module gtzan_tf.synthesise"),
    ("DOCKER_CHECK_IMAGES=cpu make docker-chek", "no target docker-chek"),
    ("docker run --rm gtzan-tf:cpu python -m gtzan_tf.app --model /runs/x --hots 0.0.0.0", "--hots"),
])
def test_a_command_the_code_does_not_accept_is_refused(text, message):
    with pytest.raises(DocCommandError, match=re.escape(message)):
        check_command(Shown("page.md", 1, text, complete=True))


def test_placeholders_options_and_fragments_are_read_as_a_reader_would():
    accepted = [
        "python train.py --model mlp_msd --data DIR --out RUN --folds K [--refit] [--seeds 3]   # a comment",
        "python -m gtzan_tf.prepare --data DIR --out FEATURES [--workers N] --set features.segment_frames=N",
        "TF_ENABLE_ONEDNN_OPTS=0 python benchmarks/predict.py ...",
        "python predict.py --model RUN FILE_OR_DIR... --json && python evaluate.py --compare RUN...",
    ]
    assert [check_command(Shown("page.md", 1, text, complete=True)) for text in accepted] == [1, 1, 1, 2]
    assert check_command(Shown("page.md", 1, "python tune.py --space FILE", complete=False)) == 0
