"""Small data sets and the download helper; never needs the network."""

from __future__ import annotations

import hashlib
import urllib.error

import numpy as np
import pytest

from bptt.data import mnist
from bptt.data.download import ChecksumError, default_cache_dir, fetch, sha256sum
from bptt.data.mnist import load_mnist, read_idx, write_idx
from bptt.data.spiral import load_spiral


def _src(tmp_path, data: bytes = b"hello bptt\n"):
    src = tmp_path / "src" / "file.txt"
    src.parent.mkdir()
    src.write_bytes(data)
    return src, hashlib.sha256(data).hexdigest()


def test_fetch_file_url_caches_and_verifies(tmp_path, monkeypatch):
    src, digest = _src(tmp_path)
    cache = tmp_path / "cache"
    got = fetch(src.as_uri(), digest, cache_dir=cache)
    assert got == cache / "file.txt" and got.read_bytes() == b"hello bptt\n"
    assert sha256sum(got) == digest
    assert [p.name for p in cache.iterdir()] == ["file.txt"]  # no temp file left

    # second call: served from the cache without opening the URL
    def no_network(*a, **k):
        raise AssertionError("should not download again")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    assert fetch(src.as_uri(), digest.upper(), cache_dir=cache, filename=None) == got


def test_fetch_redownloads_a_corrupt_cached_file(tmp_path):
    src, digest = _src(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "renamed.txt").write_bytes(b"garbage")
    got = fetch(src.as_uri(), digest, cache_dir=cache, filename="renamed.txt")
    assert got.read_bytes() == b"hello bptt\n"


def test_fetch_checksum_mismatch_leaves_nothing(tmp_path):
    src, _ = _src(tmp_path)
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError, match=r"file\.txt downloaded with SHA-256.*expected 0+"):
        fetch(src.as_uri(), "0" * 64, cache_dir=cache)
    assert list(cache.iterdir()) == []


def test_fetch_no_network_names_url_and_local_path(tmp_path, monkeypatch):
    def offline(url, timeout=None):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    cache = tmp_path / "cache"
    with pytest.raises(OSError) as e:
        fetch("https://example.invalid/data/ptb.train.txt", "a" * 64, cache_dir=cache,
              hint="or pass path= to the loader")
    msg = str(e.value)
    assert "https://example.invalid/data/ptb.train.txt" in msg
    assert "Name or service not known" in msg
    assert str(cache / "ptb.train.txt") in msg and "pass path=" in msg
    assert list(cache.iterdir()) == []


def test_default_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("BPTT_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("BPTT_CACHE")
    assert default_cache_dir().parts[-2:] == (".cache", "bptt")


# --- spiral ----------------------------------------------------------------------------------

def test_spiral_shapes_labels_and_seed():
    x, t = load_spiral()
    assert x.shape == (300, 2) and x.dtype == np.float32
    assert t.shape == (300, 3) and t.dtype == np.int32
    np.testing.assert_array_equal(t.sum(axis=1), 1)
    np.testing.assert_array_equal(t.sum(axis=0), [100, 100, 100])
    x2, ids = load_spiral(one_hot=False, dtype=np.float64)
    np.testing.assert_array_equal(ids, t.argmax(axis=1))
    np.testing.assert_allclose(x2.astype(np.float32), x)
    r = np.sqrt((x2**2).sum(axis=1))  # radius = i / n exactly
    np.testing.assert_allclose(r, np.tile(np.arange(100) / 100, 3), atol=1e-12)
    assert not np.array_equal(load_spiral(seed=1)[0], x)
    x5, t5 = load_spiral(n_per_class=7, n_classes=5)
    assert x5.shape == (35, 2) and t5.shape == (35, 5)
    with pytest.raises(ValueError, match=">= 1"):
        load_spiral(n_per_class=0)


# --- MNIST IDX files -------------------------------------------------------------------------

def _fake_mnist(directory, n_train=6, n_test=4, gz=True, size=4):
    r = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": r.integers(0, 256, (n_train, size, size), dtype=np.uint8),
        "train-labels-idx1-ubyte": r.integers(0, 10, n_train).astype(np.uint8),
        "t10k-images-idx3-ubyte": r.integers(0, 256, (n_test, size, size), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": r.integers(0, 10, n_test).astype(np.uint8),
    }
    for name, a in arrays.items():
        write_idx(directory / (name + (".gz" if gz else "")), a)
    return arrays


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32,
                                   np.float64])
def test_idx_round_trip(tmp_path, dtype):
    a = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if dtype == np.uint8:
        a = np.abs(a).astype(dtype)
    for name in ("a.idx", "a.idx.gz"):
        write_idx(tmp_path / name, a)
        b = read_idx(tmp_path / name)
        assert b.dtype == a.dtype and b.shape == a.shape
        np.testing.assert_array_equal(a, b)
    # the header is the documented big-endian one
    raw = (tmp_path / "a.idx").read_bytes()
    assert raw[:4] == bytes([0, 0, raw[2], 3]) and raw[4:8] == b"\x00\x00\x00\x02"


def test_idx_known_bytes(tmp_path):
    (tmp_path / "l.idx").write_bytes(bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 2, 9]))
    np.testing.assert_array_equal(read_idx(tmp_path / "l.idx"), [7, 2, 9])
    (tmp_path / "s.idx").write_bytes(bytes([0, 0, 0x0B, 1, 0, 0, 0, 1, 0x01, 0x02]))
    assert read_idx(tmp_path / "s.idx")[0] == 0x0102  # big-endian


def test_idx_corrupt_and_truncated_files(tmp_path):
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    write_idx(tmp_path / "ok.idx", a)
    raw = (tmp_path / "ok.idx").read_bytes()
    (tmp_path / "short.idx").write_bytes(raw[:-2])
    with pytest.raises(ValueError, match=r"short\.idx: truncated.*shape \(3, 4\).*holds 10"):
        read_idx(tmp_path / "short.idx")
    (tmp_path / "long.idx").write_bytes(raw + b"\x00")
    with pytest.raises(ValueError, match="trailing bytes"):
        read_idx(tmp_path / "long.idx")
    (tmp_path / "head.idx").write_bytes(raw[:6])
    with pytest.raises(ValueError, match="truncated IDX header"):
        read_idx(tmp_path / "head.idx")
    (tmp_path / "text.idx").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "text.idx")
    (tmp_path / "type.idx").write_bytes(bytes([0, 0, 0x07, 1, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="unknown IDX element type 0x07"):
        read_idx(tmp_path / "type.idx")
    write_idx(tmp_path / "ok.idx.gz", a)
    gz = (tmp_path / "ok.idx.gz").read_bytes()
    (tmp_path / "cut.idx.gz").write_bytes(gz[: len(gz) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated gzip"):
        read_idx(tmp_path / "cut.idx.gz")
    with pytest.raises(TypeError, match="IDX cannot hold dtype int64"):
        write_idx(tmp_path / "x.idx", np.zeros(2, dtype=np.int64))


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_from_directory(tmp_path, gz):
    arrays = _fake_mnist(tmp_path / "m", gz=gz)
    (x, t), (xt, tt) = load_mnist(tmp_path / "m")
    assert x.shape == (6, 16) and x.dtype == np.float32 and xt.shape == (4, 16)
    assert 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_allclose(x * 255, arrays["train-images-idx3-ubyte"].reshape(6, 16),
                               rtol=1e-6)
    assert t.dtype == np.int64
    np.testing.assert_array_equal(tt, arrays["t10k-labels-idx1-ubyte"])
    (x, t), _ = load_mnist(str(tmp_path / "m"), normalize=False, flatten=False,
                           one_hot_label=True)
    assert x.shape == (6, 1, 4, 4) and x.dtype == np.uint8
    assert t.shape == (6, 10) and t.dtype == np.int32
    np.testing.assert_array_equal(t.argmax(1), arrays["train-labels-idx1-ubyte"])
    (x64, _), _ = load_mnist(tmp_path / "m", dtype=np.float64)
    assert x64.dtype == np.float64


def test_load_mnist_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("BPTT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte\.gz.*download=True"):
        load_mnist()
    _fake_mnist(tmp_path / "m")
    write_idx(tmp_path / "m" / "t10k-labels-idx1-ubyte.gz", np.zeros(3, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"expected 4 labels.*\(3,\)"):
        load_mnist(tmp_path / "m")
    write_idx(tmp_path / "m" / "t10k-labels-idx1-ubyte.gz", np.full(4, 12, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"labels must be 0\.\.9, found 12\.\.12"):
        load_mnist(tmp_path / "m")


def test_load_mnist_download_from_a_mirror(tmp_path, monkeypatch):
    src = tmp_path / "mirror"
    arrays = _fake_mnist(src)
    files = {k: (name, sha256sum(src / name)) for k, (name, _) in mnist.MNIST_FILES.items()}
    monkeypatch.setattr(mnist, "MNIST_FILES", files)
    # the first mirror is down: the second serves the files
    monkeypatch.setattr(mnist, "MNIST_MIRRORS",
                        ((tmp_path / "down").as_uri() + "/", src.as_uri() + "/"))
    monkeypatch.setenv("BPTT_CACHE", str(tmp_path / "cache"))
    (x, t), _ = load_mnist(download=True)
    np.testing.assert_array_equal(t, arrays["train-labels-idx1-ubyte"])
    assert sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir()) == sorted(
        name for name, _ in files.values())
    # a wrong checksum on every mirror is an error naming the file
    bad = dict(files, test_label=(files["test_label"][0], "0" * 64))
    monkeypatch.setattr(mnist, "MNIST_FILES", bad)
    with pytest.raises(OSError, match=r"t10k-labels-idx1-ubyte\.gz from any mirror"):
        load_mnist(download=True)
