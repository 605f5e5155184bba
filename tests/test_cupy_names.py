"""scripts/cupy_names.py: every name the device double offers must exist in CuPy (13 and 14),
so a call that passes on the double finds its name on a real CuPy; the double refuses the
NumPy-only ndarray methods CuPy lacks."""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path

import numpy as np
import pytest

from bptt import device_double
from bptt.device_double import offered_names

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "cupy_names.py"


def load_script():
    spec = importlib.util.spec_from_file_location("cupy_names", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_cupy(without=()):
    """A namespace with every offered name except ``without`` (dotted)."""
    ns = types.SimpleNamespace()
    offered = offered_names()
    for name in offered["functions"] + offered["types"] + offered["transfers"]:
        setattr(ns, name, types.SimpleNamespace(at=object()))
    ns.linalg = types.SimpleNamespace(norm=1, qr=1, svd=1)
    ns.random = types.SimpleNamespace(default_rng=1)
    ns.ndarray = type("ndarray", (), {m: None for m in offered["ndarray"]})
    for dotted in without:
        *parents, last = dotted.split(".")
        obj = ns
        for part in parents:
            obj = getattr(obj, part)
        delattr(obj, last)
    return ns


def test_the_check_names_what_a_cupy_lacks():
    check = load_script().missing_names
    assert check(fake_cupy(), offered_names()) == {}
    missing = check(fake_cupy(["einsum", "add.at", "random.default_rng"]), offered_names())
    assert missing == {"functions": ["einsum"], "ufunc.at": ["add"],
                       "submodules": ["random.default_rng"]}


def test_the_double_refuses_the_ndarray_methods_cupy_lacks():
    a = device_double.xp.zeros((2, 3))
    offered = offered_names()["ndarray"]
    for name in ("resize", "byteswap", "setflags", "ctypes", "tofile"):
        assert name not in offered
        with pytest.raises(AttributeError):
            getattr(a, name)
    assert {"sum", "reshape", "astype", "copy", "get"} <= set(offered)
    assert isinstance(a.sum(), device_double.DeviceArray) and np.ndim(a.sum().get()) == 0


def test_the_installed_cupy_has_every_name():
    pytest.importorskip("cupy", reason="needs CuPy (pip install cupy-cuda12x; no GPU needed)")
    assert load_script().main([]) == 0
