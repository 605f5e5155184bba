"""Atomic file writes: a reader sees the old file or the new one, never half of one.

    with atomic_file("runs/lm/metrics.json") as f:
        f.write(b"...")

writes to a temporary file in the same folder, flushes it to disk, then ``os.replace``s it over
the target (atomic on one file system). On an error the temporary file is removed and the target
is left as it was.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """A binary file object whose content replaces ``path`` when the block ends without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json_atomic(path: str | os.PathLike[str], obj: Any, indent: int = 1) -> None:
    """``json.dump`` to ``path`` atomically (UTF-8, trailing newline)."""
    data = (json.dumps(obj, indent=indent, ensure_ascii=False) + "\n").encode("utf-8")
    with atomic_file(path) as f:
        f.write(data)
