"""MNIST from the standard IDX files (the book's ``load_mnist``, without pickle).

    (x_train, t_train), (x_test, t_test) = load_mnist(path="~/data/mnist")
    (x_train, t_train), (x_test, t_test) = load_mnist(download=True)   # cached, SHA-256 checked

``path`` is a directory holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally ``.gz``. Without
``path`` the cache directory ``$BPTT_CACHE/mnist`` (default ``~/.cache/bptt/mnist``) is used, and
``download=True`` fills it from a public mirror, checking each file's SHA-256.

IDX format (big-endian): bytes 0-1 zero, byte 2 the element type (0x08 uint8, 0x09 int8,
0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), byte 3 the number of axes k, then k uint32
sizes, then the elements in C order.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import default_dtype
from .download import default_cache_dir, fetch

__all__ = ["load_mnist", "read_idx", "write_idx", "MNIST_FILES", "MNIST_MIRRORS"]

# torchvision's mirror first, then TensorFlow's; yann.lecun.com no longer serves the files.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
# name -> (file, sha256 of the .gz)
MNIST_FILES = {
    "train_img": ("train-images-idx3-ubyte.gz",
                  "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    "train_label": ("train-labels-idx1-ubyte.gz",
                    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    "test_img": ("t10k-images-idx3-ubyte.gz",
                 "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    "test_label": ("t10k-labels-idx1-ubyte.gz",
                   "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
}

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_CODES = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_TYPES.items()}


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":  # not gzip
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: corrupt or truncated gzip file ({e}); delete it and "
                         f"download it again") from e


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a NumPy array in native byte order."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (it must start with two zero bytes, a type "
                         f"code and the number of axes)")
    code, ndim = data[2], data[3]
    if code not in _IDX_TYPES:
        raise ValueError(f"{path}: unknown IDX element type 0x{code:02X}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(data)} bytes, {ndim} axes need "
                         f"{header})")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_TYPES[code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header
    if got != expected:
        what = "truncated" if got < expected else "has trailing bytes"
        raise ValueError(f"{path}: {what}: the header says shape {shape} ({expected} bytes of "
                         f"data) but the file holds {got}")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike[str], array: Any) -> None:
    """Write an array as an IDX file; gzip-compressed when ``path`` ends in ``.gz``."""
    a = np.asarray(array)
    code = _IDX_CODES.get(a.dtype.newbyteorder("="))
    if code is None:
        raise TypeError(f"IDX cannot hold dtype {a.dtype}; use uint8, int8, int16, int32, "
                        f"float32 or float64")
    body = bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    body += a.astype(a.dtype.newbyteorder(">")).tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(body, mtime=0) if path.suffix == ".gz" else body)


def _find(directory: Path, gz_name: str) -> Path | None:
    for name in (gz_name, gz_name[:-3]):
        if (directory / name).is_file():
            return directory / name
    return None


def _download(directory: Path, gz_name: str, sha256: str) -> Path:
    errors = []
    for mirror in MNIST_MIRRORS:
        try:
            return fetch(mirror + gz_name, sha256, cache_dir=directory,
                         hint="or pass path=DIR to load_mnist")
        except (OSError, ValueError) as e:
            errors.append(str(e))
    raise OSError(f"could not download {gz_name} from any mirror:\n  " + "\n  ".join(errors))


def load_mnist(path: str | os.PathLike[str] | None = None, normalize: bool = True,
               flatten: bool = True, one_hot_label: bool = False, download: bool = False, *,
               dtype: Any = None) -> tuple[tuple[np.ndarray, np.ndarray],
                                           tuple[np.ndarray, np.ndarray]]:
    """((x_train, t_train), (x_test, t_test)) as in the book, as NumPy arrays.

    Args:
        path: directory of the four IDX files (default: the cache, ``$BPTT_CACHE/mnist``).
        normalize: images as ``dtype`` (default float32) in [0, 1]; else uint8 in [0, 255].
        flatten: images (N, 784); else (N, 1, 28, 28).
        one_hot_label: labels one-hot (N, 10) int32; else class ids (N,) int64.
        download: fetch missing files (into ``path`` or the cache) from a public mirror, with
            a SHA-256 check.
    """
    directory = (Path(path).expanduser() if path is not None
                 else default_cache_dir() / "mnist")
    files = {}
    for key, (gz_name, sha256) in MNIST_FILES.items():
        found = _find(directory, gz_name)
        if download and (found is None or found.name == gz_name):
            found = _download(directory, gz_name, sha256)
        if found is None:
            raise FileNotFoundError(
                f"MNIST file {gz_name} (or {gz_name[:-3]}) not found in {directory}; pass "
                f"path=DIR with the four IDX files, or download=True to fetch them")
        files[key] = found

    def images(key: str) -> np.ndarray:
        x = read_idx(files[key])
        if x.ndim != 3:
            raise ValueError(f"{files[key]}: images must have 3 axes (N, rows, cols), got "
                             f"shape {x.shape}")
        x = x.reshape(x.shape[0], -1) if flatten else x[:, None]  # (N, 784) or (N, 1, 28, 28)
        if normalize:
            x = x.astype(dtype if dtype is not None else default_dtype())
            x /= 255.0
        return x

    def labels(key: str, n: int, n_classes: int = 10) -> np.ndarray:
        t = read_idx(files[key])
        if t.ndim != 1 or t.shape[0] != n:
            raise ValueError(f"{files[key]}: expected {n} labels (one per image), got shape "
                             f"{t.shape}")
        t = t.astype(np.int64)
        if t.size and (t.min() < 0 or t.max() >= n_classes):
            raise ValueError(f"{files[key]}: labels must be 0..{n_classes - 1}, found "
                             f"{t.min()}..{t.max()}")
        if one_hot_label:
            oh = np.zeros((n, n_classes), dtype=np.int32)
            oh[np.arange(n), t] = 1
            return oh
        return t

    x_train, x_test = images("train_img"), images("test_img")
    t_train = labels("train_label", x_train.shape[0])
    t_test = labels("test_label", x_test.shape[0])
    return (x_train, t_train), (x_test, t_test)
