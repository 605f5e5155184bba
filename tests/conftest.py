"""Test-wide settings.

One BLAS thread: the tests use small matrices, where OpenBLAS's threads cost far more than they
give (8-25x slower on a busy 2-core machine). Set before anything imports NumPy.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import pytest  # noqa: E402  (after the thread settings, which must precede NumPy)


@pytest.fixture(autouse=True)
def _run_in_a_temporary_directory(tmp_path, monkeypatch):
    """Every test runs in its own empty folder: a `runs/lm` that `bptt train` left in the
    checkout (the README's first command) must not change what a test sees."""
    monkeypatch.chdir(tmp_path)
