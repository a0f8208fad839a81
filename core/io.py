"""Atomic file writes: a reader (or a resumed run after a kill) sees the old file or the
new one, never a torn one. Write to a temporary file in the same directory, flush it to
disk, then ``os.replace`` it over the target."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable


def atomic_write(path: str | Path, write: Callable[[BinaryIO], Any]) -> Path:
    """``write(f)`` fills a binary file object that replaces ``path`` once complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()))


def atomic_json(path: str | Path, obj: Any) -> Path:
    return atomic_text(path, json.dumps(obj, indent=1, default=str) + "\n")


def atomic_torch(path: str | Path, obj: Any) -> Path:
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f))


def read_parquet(path: str | Path):
    """The Parquet file at ``path`` as one ``pyarrow.Table``, read from a single open of one
    file. ``pq.read_table(path)`` sizes the file and then reads it in separate calls, so a
    concurrent ``atomic_write`` renaming a new version in between yields a torn read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with open(path, "rb") as f:
        data = f.read()
    return pq.read_table(pa.BufferReader(data))


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
