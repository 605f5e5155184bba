"""The optional MKL products (bptt.mkl): equal to NumPy's for every operand layout it takes,
refusing (and leaving the output alone) the ones it does not, off when NumPy's BLAS has more
than one thread or BPTT_MKL=0, on by default on Intel CPUs only, and the Time layers equal with
and without it. The tests force it on (BPTT_MKL=1) so that they run on any x86-64 CPU."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt import mkl
from bptt.backend import matmul_into, right_product
from bptt.blas import get_blas_threads, set_blas_threads

needs_mkl = pytest.mark.skipif(not mkl.installed(),
                               reason="MKL not installed (pip install 'bptt[mkl]')")


@pytest.fixture(autouse=True)
def one_blas_thread_and_mkl_forced_on(monkeypatch):
    """MKL is used only while NumPy's BLAS runs on one thread (the tests' setting); forced on
    whatever the CPU, and the choice read again after the test."""
    before = get_blas_threads()
    set_blas_threads(1)
    monkeypatch.setenv("BPTT_MKL", "1")
    mkl.refresh()
    yield
    set_blas_threads(before)
    monkeypatch.undo()
    mkl.refresh()


@pytest.mark.parametrize(("setting", "vendor", "wanted"), [
    ("auto", "GenuineIntel", True), ("auto", "AuthenticAMD", False), ("", "", False),
    ("1", "AuthenticAMD", True), ("0", "GenuineIntel", False), ("AUTO", "GenuineIntel", True)])
def test_default_uses_mkl_on_intel_only(monkeypatch, setting, vendor, wanted):
    monkeypatch.setenv("BPTT_MKL", setting)
    monkeypatch.setattr(mkl, "cpu_vendor", lambda: vendor)
    monkeypatch.setattr(mkl, "_load", lambda: object())  # installed, without loading it
    mkl.refresh()
    assert mkl.available() is wanted
    phrase = mkl.status()
    if wanted:
        assert phrase == "active"
    else:
        assert phrase.startswith("installed, off")
        assert ("BPTT_MKL=0" in phrase) == (setting == "0")
        assert setting == "0" or (vendor or "unknown vendor") in phrase


def test_an_unknown_setting_warns_and_means_auto(monkeypatch):
    monkeypatch.setenv("BPTT_MKL", "yes")
    with pytest.warns(UserWarning, match="BPTT_MKL='yes' is not one of auto, 1, 0"):
        assert mkl.choice() == "auto"


def test_vendor_is_read_from_the_cpu():
    vendor = mkl.cpu_vendor()
    assert isinstance(vendor, str)
    if os.path.exists("/proc/cpuinfo") and "vendor_id" in open("/proc/cpuinfo").read():
        assert vendor and vendor in open("/proc/cpuinfo").read()


def laid_out(x: np.ndarray, layout: str) -> np.ndarray:
    """x with the same values in another memory layout."""
    if layout == "F":
        return np.asfortranarray(x)
    if layout == "rows":  # row-major with a longer leading dimension
        wide = np.zeros((x.shape[0], x.shape[1] + 3), dtype=x.dtype)
        wide[:, 1:1 + x.shape[1]] = x
        return wide[:, 1:1 + x.shape[1]]
    if layout == "cols":  # column-major with a longer leading dimension
        tall = np.zeros((x.shape[0] + 2, x.shape[1]), dtype=x.dtype, order="F")
        tall[2:] = x
        return tall[2:]
    return np.ascontiguousarray(x)


LAYOUTS = ["C", "F", "rows", "cols"]


@needs_mkl
@settings(max_examples=60, deadline=None)
@given(M=st.integers(1, 33), K=st.integers(1, 33), N=st.integers(2, 33),
       la=st.sampled_from(LAYOUTS), lb=st.sampled_from(LAYOUTS),
       out_rows=st.booleans(), double=st.booleans())
def test_gemm_matches_numpy_in_every_layout(M, K, N, la, lb, out_rows, double):
    rng = np.random.default_rng(M * 1000 + K * 10 + N)
    dtype = np.float64 if double else np.float32
    a = laid_out(rng.standard_normal((M, K)).astype(dtype), la)
    b = laid_out(rng.standard_normal((K, N)).astype(dtype), lb)
    out = laid_out(np.zeros((M, N), dtype=dtype), "rows" if out_rows else "C")
    assert mkl.gemm_into(out, a, b)
    want = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(out, want, rtol=1e-12 if double else 2e-5, atol=1e-12 if double
                               else 2e-5)


@needs_mkl
@pytest.mark.parametrize("case", ["1-D", "int", "mixed dtypes", "out overlaps a", "read-only",
                                  "out F-order", "strided both ways", "empty"])
def test_gemm_refuses_what_it_cannot_take_and_writes_nothing(case):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 5))
    out = np.full((4, 5), 7.0)
    if case == "1-D":
        a, out = a[0], out[0]
    elif case == "int":
        a, b, out = a.astype(int), b.astype(int), out.astype(int)
    elif case == "mixed dtypes":
        a = a.astype(np.float32)
    elif case == "out overlaps a":
        big = np.zeros((4, 8))
        a, out = big[:, :3], big[:, 3:]
    elif case == "read-only":
        out.flags.writeable = False
    elif case == "out F-order":
        out = np.asfortranarray(out)
    elif case == "strided both ways":
        a = rng.standard_normal((8, 6))[::2, ::2]
    elif case == "empty":
        a, b, out = a[:, :0], b[:0], out
    kept = out.copy()
    assert not mkl.gemm_into(out, a, b)
    np.testing.assert_array_equal(out, kept)


@needs_mkl
def test_off_with_more_than_one_blas_thread():
    a, b, out = np.ones((3, 4)), np.ones((4, 5)), np.zeros((3, 5))
    assert mkl.active()
    set_blas_threads(2)
    assert not mkl.active() and not mkl.gemm_into(out, a, b)
    assert mkl.PackedRight(b, 3).packed is None
    matmul_into(out, a, b)  # NumPy does it then
    np.testing.assert_array_equal(out, a @ b)


def test_off_when_the_environment_says_so():
    code = "from bptt import mkl; print(mkl.available(), mkl.status())"
    env = {**os.environ, "BPTT_MKL": "0"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    want = "installed, off (BPTT_MKL=0)" if mkl.installed() else "None"
    assert res.stdout.strip() == f"False {want}"


@needs_mkl
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_packed_right_factor_is_the_same_product(dtype):
    rng = np.random.default_rng(1)
    W = rng.standard_normal((40, 24)).astype(dtype)
    packed = mkl.PackedRight(W[:, :20], 6)  # a column slice: leading dimension 24
    assert packed.packed is not None
    product = right_product(W[:, :20], 6)
    for _ in range(3):
        a = rng.standard_normal((6, 40)).astype(dtype)
        out, out2 = np.empty((6, 20), dtype=dtype), np.empty((6, 20), dtype=dtype)
        assert packed.product_into(out, a)
        product(out2, a)
        want = a.astype(np.float64) @ W[:, :20].astype(np.float64)
        tol = 1e-12 if dtype == np.float64 else 2e-5
        np.testing.assert_allclose(out, want, rtol=tol, atol=tol)
        np.testing.assert_array_equal(out, out2)
    other_rows = np.empty((5, 20), dtype=dtype)
    assert not packed.product_into(other_rows, rng.standard_normal((5, 40)).astype(dtype))
    product(other_rows, np.ones((5, 40), dtype=dtype))  # falls back: any row count works
    np.testing.assert_allclose(other_rows, np.ones((5, 40)) @ W[:, :20], rtol=1e-5)


@needs_mkl
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_time_layers_agree_with_and_without_mkl(kind):
    from bptt.nn.cells import TimeGRU, TimeLSTM, TimeRNN

    rng = np.random.default_rng(2)
    N, T, D, H = 5, 6, 3, 8
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[kind]
    params = [rng.standard_normal(s) * 0.5 for s in ((D, gates * H), (H, gates * H),
                                                    (gates * H,))]
    xs, dhs = rng.standard_normal((N, T, D)), rng.standard_normal((N, T, H))
    results = []
    for threads in (1, 2):  # MKL on, then off
        set_blas_threads(threads)
        assert mkl.active() == (threads == 1)
        layer = {"lstm": TimeLSTM, "gru": TimeGRU, "rnn": TimeRNN}[kind](*params)
        hs = layer.forward(xs)
        dxs = layer.backward(dhs)
        results.append([hs, dxs, *layer.grads])
    for with_mkl, without in zip(*results, strict=True):
        np.testing.assert_allclose(with_mkl, without, rtol=1e-12, atol=1e-12)
