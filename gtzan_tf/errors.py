"""User-facing errors: one clear line, a non-zero exit code, no traceback."""
from __future__ import annotations

import functools
import sys


class UserError(Exception):
    """Bad input the user can fix (missing file, corrupt audio, wrong layout, bad flag)."""


class BadAudioError(UserError):
    """An audio file that cannot be used (unreadable, empty, too short)."""


def cli(main):
    """Wrap a command-line `main` so that a UserError prints one line and exits with code 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper
