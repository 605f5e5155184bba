"""Helpers shared by the tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def import_file(path: Path) -> ModuleType:
    """A Python file outside the package (docs/examples, docs/tour) imported as a module."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mpiexec_or_skip() -> str:
    """The mpiexec that runs real MPI ranks (MPICH's from the ``mpi`` extra, beside this
    Python, or one on PATH); the test skips, saying why, where there is none."""
    import pytest

    pytest.importorskip("mpi4py", reason="the [mpi] extra (mpi4py, mpich) is not installed")
    from bptt.train.comm import find_mpiexec

    found = find_mpiexec()
    if found is None:
        pytest.skip("no mpiexec (pip install 'bptt[mpi]' brings MPICH's)")
    return found


class LossOf:
    """gradcheck adapter of a language model: forward() -> its loss on fixed (xs, ts) from a
    fresh state (``seed``: the same dropout masks at every call); backward(r)."""

    def __init__(self, model, xs, ts, seed=None):
        self.model, self.xs, self.ts, self.seed = model, xs, ts, seed
        self.params, self.grads = model.params, model.grads

    def forward(self):
        import bptt

        self.model.reset_state()
        if self.seed is not None:
            bptt.seed(self.seed)
        return self.model.forward(self.xs, self.ts)

    def backward(self, dout):
        self.model.backward(dout)
        return ()


def assert_float32_near_float64(make_layer, xs, rel):
    """``make_layer(dtype)``'s forward and backward (upstream ones) on ``xs`` in float32 and in
    float64: the float32 results finite and within ``rel`` of float64's in norm."""
    import numpy as np

    out = {}
    for dtype in (np.float32, np.float64):
        layer = make_layer(dtype)
        hs = layer.forward(xs.astype(dtype))
        out[dtype] = hs, layer.backward(np.ones_like(hs))
    for ours, exact in zip(out[np.float32], out[np.float64], strict=True):
        assert np.isfinite(ours).all()
        assert np.linalg.norm(ours - exact) <= rel * np.linalg.norm(exact)


def assert_windows_carry_the_state(layer, xs, cut=3):
    """A stateful layer over ``xs`` (N, T, D) in two windows, cut at ``cut``, gives the outputs
    of one window over all of it: the state carries everything a step needs."""
    import numpy as np

    layer.reset_state()
    whole = layer.forward(xs)
    layer.reset_state()
    parts = np.concatenate([layer.forward(xs[:, :cut].copy()),
                            layer.forward(xs[:, cut:].copy())], axis=1)
    np.testing.assert_allclose(parts, whole, rtol=1e-12, atol=1e-14)
