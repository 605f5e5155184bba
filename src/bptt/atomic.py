"""Files: atomic writes (a reader sees the old file or the new one, never half of one), strict
JSON, and ``.npz`` reading without pickles.

    with atomic_file("runs/lm/metrics.json") as f:
        f.write(b"...")

writes to a temporary file in the same folder, flushes it to disk, then ``os.replace``s it over
the target (atomic on one file system), with the permissions the umask gives a new file. On an
error the temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` less what the process's umask removes (what ``open`` would give a new file)."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


@contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """A binary file object whose content replaces ``path`` when the block ends without error
    (written under a fresh temporary name beside it, never a file of the user's; a crash
    leaves the old file or the new one)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(21, "is a folder: give a file name to write", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, umask_mode())  # mkstemp makes 0600 files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def json_safe(obj: Any) -> Any:
    """``obj`` with NaN and infinities written as strings ("nan", "inf"): valid JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def json_text(obj: Any, indent: int | None = 1) -> str:
    """Strict JSON (no bare NaN/Infinity, see :func:`json_safe`), UTF-8 kept as is."""
    return json.dumps(json_safe(obj), indent=indent, ensure_ascii=False, allow_nan=False)


def write_json_atomic(path: str | os.PathLike[str], obj: Any, indent: int = 1) -> None:
    """Strict JSON (:func:`json_text`) to ``path`` atomically (UTF-8, trailing newline)."""
    data = (json_text(obj, indent) + "\n").encode("utf-8")
    with atomic_file(path) as f:
        f.write(data)


def read_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """All arrays of an .npz (pickles refused), with one clear error for a corrupt or foreign
    file (ValueError naming it)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "no such file or directory", str(path))
    try:
        with np.load(path, allow_pickle=False) as f:
            if not hasattr(f, "files"):
                raise ValueError("a single array, not an .npz archive")
            return {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError,
            NotImplementedError, RuntimeError) as e:  # a flipped byte may name no compression
        raise ValueError(f"{path} is not a readable .npz file ({e}); corrupt or truncated?") \
            from None
