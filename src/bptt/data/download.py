"""Download a file once, check its SHA-256, and keep it in a cache directory.

    path = fetch("https://.../ptb.train.txt", sha256="fcea91...")

The cache is ``$BPTT_CACHE`` or ``~/.cache/bptt``. A download goes to a temporary file in the
cache directory, is hashed while it streams, and is renamed into place only when the hash
matches: an interrupted or corrupt download never leaves a file that looks valid. Errors name
the URL and say how to use a local copy instead (for machines without network).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from urllib.parse import urlparse

__all__ = ["default_cache_dir", "fetch", "sha256sum", "ChecksumError"]

_CHUNK = 1 << 20


class ChecksumError(ValueError):
    """A file's SHA-256 is not the expected one."""


def default_cache_dir() -> Path:
    """``$BPTT_CACHE`` if set, else ``~/.cache/bptt``."""
    env = os.environ.get("BPTT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "bptt"


def sha256sum(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(url: str, sha256: str | None, cache_dir: str | os.PathLike[str] | None = None,
          filename: str | None = None, *, hint: str | None = None, timeout: float = 60.0) -> Path:
    """Return the local path of ``url``'s content, downloading it into the cache if needed.

    Args:
        url: http(s) or file:// URL.
        sha256: expected hex digest; the file is checked after download and when found in the
            cache (a cached file with another hash is downloaded again). None skips the check.
        cache_dir: directory of the cache (default :func:`default_cache_dir`).
        filename: name in the cache (default: the last part of the URL path).
        hint: appended to error messages, e.g. "or pass path=... to load_mnist".
    Raises:
        OSError: the download failed (no network, HTTP error), naming the URL.
        ChecksumError (a ValueError): the downloaded file has another SHA-256.
    """
    import urllib.error  # here, not at the top: urllib.request pulls in ssl and http
    import urllib.request

    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    name = filename or Path(urlparse(url).path).name
    if not name:
        raise ValueError(f"cannot tell a file name from the URL {url!r}; pass filename=")
    dest = cache / name
    expected = sha256.lower() if sha256 else None
    how = (f"Download it yourself and put it at {dest} (the cache: set BPTT_CACHE to move it)"
           + (f", {hint}" if hint else "") + ".")
    if dest.is_file() and (expected is None or sha256sum(dest) == expected):
        return dest
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=cache)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as r:
                for chunk in iter(lambda: r.read(_CHUNK), b""):
                    h.update(chunk)
                    out.write(chunk)
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", None) or e
            raise OSError(f"could not download {url}: {reason}. {how}") from e
        got = h.hexdigest()
        if expected is not None and got != expected:
            raise ChecksumError(f"{url} downloaded with SHA-256 {got}, expected {expected}: the "
                                f"file is corrupt or has changed. {how}")
        os.replace(tmp, dest)  # atomic on the same file system
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest
