"""Files the project writes: atomic writes, folder replacement, the marker of folders it owns and
the lock of the one process writing one.

Every write goes to a hidden temporary file beside its target and is renamed into place, so an
interrupted run never leaves a half-written file under the real name. A folder the project made
carries `OWNER_MARKER`, naming the project and what the folder is; only such a folder is ever
cleared, and then only of the files the project writes there. A process writes into such a folder
only while it holds the folder's lock (`owned_folder`, `folder_lock`).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Callable, Iterator

from gtzan_tf.errors import UserError

OWNER_MARKER = ".gtzan-tf.json"
LOCK_FILE = ".gtzan-tf.lock"
PROJECT = "gtzan-tf"
TEMPORARY_GLOB = ".*.tmp-*"
_locked: set[Path] = set()  # the lock files this process holds


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed over `path` on success, removed on failure.

    It ends with the suffixes of `path` (`.weights.h5`, `.png`) for writers that check them.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(3)}{''.join(path.suffixes)}")
    try:
        yield tmp
        if tmp.is_file():
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename in (None, str(tmp), tmp):  # name the file the user asked for, not its temporary
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_bytes(path: str | Path, payload: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: str | Path, payload: dict, indent: int = 2) -> None:
    write_text(path, json.dumps(payload, indent=indent) + "\n")


def replace_dir(target: str | Path, write: Callable[[Path], None]) -> None:
    """`write(tmp)` fills a temporary folder beside `target`, which then replaces `target`."""
    target = Path(target)
    tmp, old = (target.with_name(f".{target.name}.tmp-{os.getpid()}-{kind}") for kind in ("new", "old"))
    try:
        write(tmp)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
    except OSError as exc:  # name the file the user asked for, not its temporary
        if exc.filename is not None and str(exc.filename).startswith(str(tmp)):
            raise OSError(exc.errno, exc.strerror, str(target) + str(exc.filename)[len(str(tmp)):]) from None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def remove_temporaries(folder: Path) -> None:
    """Delete this project's temporary files in `folder` (left by an interrupted run)."""
    for stale in Path(folder).glob(TEMPORARY_GLOB):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def owner_kind(folder: Path) -> str | None:
    """What the project made `folder` as ("features", "run"), or None if it did not make it."""
    marker = Path(folder) / OWNER_MARKER
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return info.get("kind") if isinstance(info, dict) and info.get("project") == PROJECT else None


def claim_folder(folder: Path, kind: str, what: str) -> bool:
    """Make `folder` ours (create it or mark an empty one) and remove temporaries an interrupted
    run left; True if it was ours already. Call it holding the lock of the folder or of the run it
    is part of (`owned_folder`).

    A folder that is not empty and not marked as `kind` is refused: the project never writes
    into, or deletes from, a folder that holds someone else's files.
    """
    ours = _make_ours(folder, kind, what)
    if ours:
        remove_temporaries(folder)
    return ours


@contextlib.contextmanager
def owned_folder(folder: Path, kind: str, what: str) -> Iterator[bool]:
    """`claim_folder` with the folder's lock held for the block (yields whether it was ours already):
    one writer per folder at a time."""
    ours = _make_ours(folder, kind, what)
    with folder_lock(folder):
        if ours:
            remove_temporaries(folder)
        yield ours


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold the lock of our `folder`: an exclusive `flock` of FOLDER/LOCK_FILE, which the OS drops when
    the process ends, even by kill -9, so no lock outlives its holder. A lock another process holds
    is one error naming the folder; this process may take a lock it holds again."""
    path = Path(folder).resolve() / LOCK_FILE
    if path in _locked:
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UserError(f"{folder} is being written by another process right now; wait for it to finish, "
                        "or choose another folder") from None
    _locked.add(path)
    try:
        yield
    finally:
        _locked.discard(path)
        os.close(fd)


def _make_ours(folder: Path, kind: str, what: str) -> bool:
    """Create `folder` or mark an empty one as ours (`claim_folder`'s rules); True if it was ours already."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file, not a folder; choose a folder for {what}")
    if folder.is_dir():
        found = owner_kind(folder)
        if found == kind:
            return True
        if any(folder.iterdir()):
            made = f"a gtzan-tf {found} folder" if found else "not a folder gtzan-tf made"
            raise UserError(f"{folder} is not empty and is {made}; choose a new or empty folder for {what}")
    existed = folder.is_dir()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        write_json(folder / OWNER_MARKER, {"project": PROJECT, "kind": kind})
    except OSError:
        if not existed:
            folder.rmdir()
        raise
    return False


def clear_owned(folder: Path, is_ours: Callable[[Path], bool]) -> None:
    """Delete the entries of our `folder` that `is_ours` recognises; anything else stays."""
    for entry in Path(folder).iterdir():
        if entry.name == OWNER_MARKER or not is_ours(entry):
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
