"""Backend: device choice and its errors, seeding, host/device copies, scatter_add_rows."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt import backend, kernels
from bptt.backend import (
    BackendError,
    array_module,
    default_dtype,
    get_device,
    get_xp,
    rng,
    scatter_add_rows,
    seed,
    set_default_dtype,
    set_device,
    to_device,
    to_numpy,
)

HAS_CUPY = importlib.util.find_spec("cupy") is not None


@pytest.fixture(autouse=True)
def _restore_backend():
    saved = dict(backend._state)
    yield
    backend._state.clear()
    backend._state.update(saved)


@pytest.mark.skipif(HAS_CUPY, reason="CuPy is installed here: the no-CuPy message is not shown")
def test_gpu_without_cupy_says_how_to_install():
    with pytest.raises(BackendError) as e:
        set_device("gpu")
    msg = str(e.value)
    assert "CuPy" in msg and "pip install" in msg and "--device cpu" in msg
    assert isinstance(e.value, RuntimeError)  # the CLI turns it into one line + exit 2


def test_unknown_device():
    with pytest.raises(BackendError, match="unknown device 'tpu': choose one of cpu, gpu"):
        set_device("tpu")


def test_cpu_device_and_array_module():
    assert set_device("CPU") is np
    assert get_device() == "cpu" and get_xp() is np
    assert array_module(np.ones(2)) is np and array_module(1.0, [1]) is np


def test_env_variable_read(monkeypatch):
    backend._state["device"] = None
    monkeypatch.setenv("BPTT_DEVICE", "tpu")
    with pytest.raises(BackendError, match="'tpu'"):
        get_device()
    monkeypatch.setenv("BPTT_DEVICE", "cpu")
    assert get_device() == "cpu"


def test_env_variable_in_a_fresh_process():
    code = "import bptt.backend as b; print(b.get_device())"
    env = dict(os.environ, BPTT_DEVICE="cpu")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "cpu"


def test_seed_reproducible():
    seed(5)
    a = rng().standard_normal(4)
    seed(5)
    b = rng().standard_normal(4)
    np.testing.assert_array_equal(a, b)
    seed(6)
    assert not np.array_equal(a, rng().standard_normal(4))


def test_default_dtype_policy():
    assert default_dtype() == np.float32
    set_default_dtype("float64")
    assert default_dtype() == np.float64
    with pytest.raises(TypeError, match="floating"):
        set_default_dtype(np.int32)


def test_to_device_and_to_numpy():
    set_device("cpu")
    a = to_device([1, 2, 3], dtype=np.float32)
    assert isinstance(a, np.ndarray) and a.dtype == np.float32
    pair = to_device((np.ones(2), np.zeros(3)))
    assert isinstance(pair, tuple) and len(pair) == 2
    back = to_numpy([a, pair[0]])
    assert isinstance(back, list) and isinstance(back[0], np.ndarray)
    np.testing.assert_array_equal(back[0], [1, 2, 3])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scatter_add_rows_matches_add_at(dtype):
    r = np.random.default_rng(0)
    target = r.standard_normal((6, 3)).astype(dtype)
    idx = r.integers(0, 6, size=(4, 5))  # many repeats
    values = r.standard_normal((20, 3)).astype(dtype)
    ref = target.copy()
    np.add.at(ref, idx.reshape(-1), values)
    scatter_add_rows(target, idx, values)
    assert target.dtype == dtype
    np.testing.assert_array_equal(target, ref)  # np.add.at's order: its bits
    empty = target.copy()
    scatter_add_rows(empty, np.array([], dtype=np.int64), np.zeros((0, 3), dtype))
    np.testing.assert_array_equal(empty, target)


@settings(max_examples=40, deadline=None)
@given(V=st.integers(1, 8), D=st.integers(1, 4), M=st.integers(0, 60), seed=st.integers(0, 99),
       double=st.booleans())
def test_scatter_add_rows_property(V, D, M, seed, double):
    """Any ids (few or many repeats, in any order): np.add.at's bits, in both dtypes."""
    dtype = np.float64 if double else np.float32
    r = np.random.default_rng(seed)
    target = r.standard_normal((V, D)).astype(dtype)
    idx = r.integers(0, V, size=M)
    values = (r.standard_normal((M, D)) * 10.0 ** r.integers(-3, 4, size=(M, 1))).astype(dtype)
    ref = target.copy()
    np.add.at(ref, idx, values)
    scatter_add_rows(target, idx, values)
    np.testing.assert_array_equal(target, ref)


needs_numba = pytest.mark.skipif(kernels.update_kernels(np, np.float32) is None,
                                 reason="the compiled sum needs pip install 'bptt[numba]'")


@needs_numba
@settings(max_examples=40, deadline=None)
@given(V=st.integers(1, 70), D=st.integers(1, 20), M=st.integers(1, 400),
       seed=st.integers(0, 999), double=st.booleans(), ids=st.sampled_from(["int64", "int32"]),
       layout=st.sampled_from(["C", "strided", "3-D"]))
def test_compiled_scatter_add_rows_is_numpys_bit_for_bit(V, D, M, seed, double, ids, layout):
    """The compiled loop (Numba) and NumPy's sorted passes give np.add.at's bits, whatever the
    repeats, the ids' integer type and the values' layout (a decoder's slice of dx)."""
    from bptt import numba_updates

    dtype = np.float64 if double else np.float32
    r = np.random.default_rng(seed)
    target = r.standard_normal((V, D)).astype(dtype)
    idx = r.integers(0, V, size=M).astype(ids)
    wide = (r.standard_normal((M, 2 * D)) * 10.0 ** r.integers(-3, 4, size=(M, 1))).astype(dtype)
    values = {"C": np.ascontiguousarray(wide[:, :D]), "strided": wide[:, D:],
              "3-D": np.ascontiguousarray(wide[:, :D]).reshape(1, M, D)}[layout]
    ref = target.copy()
    np.add.at(ref, idx, values.reshape(M, D))
    calls = []
    real = kernels.update_kernels(np, dtype)

    class Counting:
        def __getattr__(self, name):
            return getattr(real, name)

        def scatter_add_rows(self, *args):
            calls.append(1)
            return numba_updates.scatter_add_rows(*args)

    before = os.environ.get("BPTT_NUMBA")
    os.environ["BPTT_NUMBA"] = "0"
    try:
        numpy_way = target.copy()
        scatter_add_rows(numpy_way, idx, values)
    finally:
        if before is None:
            del os.environ["BPTT_NUMBA"]
        else:
            os.environ["BPTT_NUMBA"] = before
    compiled = target.copy()
    saved = kernels.update_kernels
    kernels.update_kernels = lambda xp, dt: Counting()
    try:
        scatter_add_rows(compiled, idx, values)
    finally:
        kernels.update_kernels = saved
    assert calls == [1]
    np.testing.assert_array_equal(compiled, ref)
    np.testing.assert_array_equal(numpy_way, ref)


@needs_numba
def test_compiled_scatter_add_rows_leaves_odd_ids_to_numpy():
    """Negative ids wrap as NumPy's indexing does, and an id past the rows is NumPy's
    IndexError: the compiled loop never writes outside the array."""
    target = np.zeros((4, 2), np.float32)
    scatter_add_rows(target, np.array([-1, 0, -1]), np.ones((3, 2), np.float32))
    np.testing.assert_array_equal(target, [[1, 1], [0, 0], [0, 0], [2, 2]])
    with pytest.raises(IndexError):
        scatter_add_rows(target, np.array([0, 4]), np.ones((2, 2), np.float32))
    np.testing.assert_array_equal(target, [[1, 1], [0, 0], [0, 0], [2, 2]])
