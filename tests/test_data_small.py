"""Small data sets and the download helper; never needs the network."""

from __future__ import annotations

import hashlib
import urllib.error

import pytest

from bptt.data import download
from bptt.data.download import ChecksumError, default_cache_dir, fetch, sha256sum


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

    monkeypatch.setattr(download.urllib.request, "urlopen", no_network)
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

    monkeypatch.setattr(download.urllib.request, "urlopen", offline)
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
