"""Small shared helpers: atomic file writes."""
from __future__ import annotations

import json
import os
from pathlib import Path


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write to a hidden temporary file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, payload: dict) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2) + "\n").encode())
