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


@pytest.fixture(params=["compiled", "numpy"])
def lstm_step_path(request, monkeypatch):
    """Run a test on both ways of the LSTM's element-wise step: the compiled kernels
    (bptt.kernels, when Numba is installed) and NumPy's ufuncs (BPTT_NUMBA=0)."""
    if request.param == "compiled":
        pytest.importorskip("numba", reason="the compiled path needs pip install 'bptt[numba]'")
    monkeypatch.setenv("BPTT_NUMBA", "1" if request.param == "compiled" else "0")
    return request.param
