"""User-facing errors: one clear line, a non-zero exit code, no traceback."""
from __future__ import annotations

import contextlib
import errno
import functools
import os
import signal
import sys
import warnings
from typing import Iterator


class UserError(Exception):
    """Bad input the user can fix (missing file, corrupt audio, wrong layout, bad flag)."""


class Stopped(BaseException):
    """The process was asked to stop by a signal other than SIGINT (a scheduler's SIGTERM)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class BadAudioError(UserError):
    """An audio file that cannot be used (unreadable, empty, too short)."""


def os_error_line(exc: OSError) -> str:
    """`path: reason` for an OSError (read-only folder, disk full, not a directory, permission)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {reason}" if paths else reason


@contextlib.contextmanager
def tensorflow_io_errors(path) -> Iterator[None]:
    """TensorFlow's own file errors (disk full, read-only, permission) while writing `path`, as an
    OSError naming it: one line, like every other filesystem error."""
    import tensorflow as tf

    try:
        yield
    except tf.errors.OpError as exc:
        known = [code for code in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT) if os.strerror(code) in exc.message]
        code = known[0] if known else errno.EIO
        raise OSError(code, os.strerror(code) if known else exc.message, str(path)) from None


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def cli(main):
    """Wrap a command-line `main`: a UserError or OSError prints one line and exits with code 2, an
    interruption (Ctrl-C, `Stopped`) one line and 128 + the signal, and warnings one `warning: ...` line each."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        default_format, warnings.formatwarning = warnings.formatwarning, _one_line_warning
        try:
            return main(*args, **kwargs)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
        except OSError as exc:
            print(f"error: {os_error_line(exc)}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)
        except Stopped as exc:
            print(f"stopped by {exc}", file=sys.stderr)
            sys.exit(128 + exc.signum)
        finally:
            warnings.formatwarning = default_format

    return wrapper
