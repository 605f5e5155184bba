"""A device double: arrays and an array module that behave toward the code as CuPy's do, on the
CPU, so every GPU path can be tested without a GPU (``set_device("double")``, the pytest
marker ``gpu_double``).

What it enforces, as CuPy does:

- no implicit transfer: ``np.asarray(device_array)`` and any NumPy function given one raise
  ``TypeError`` (CuPy: "Implicit conversion to a NumPy array is not allowed"); a NumPy array
  (not a scalar) mixed into an operation, an ``out=`` or an assignment with device arrays
  raises ``TypeError`` ("Unsupported type <class 'numpy.ndarray'>");
- transfers are explicit: ``xp.asarray(numpy_array)`` to the device, ``xp.asnumpy(a)`` or
  ``a.get()`` back; ``float(a)``, ``int(a)``, ``a.item()`` and ``a.tolist()`` of a device array
  are allowed (CuPy synchronises and copies);
- the module has CuPy's names and not NumPy's own (``xp.add.at`` as on CuPy 14; no
  ``reduceat``, no ``np.r_``); ``xp.random.default_rng`` gives device arrays.

It computes with NumPy underneath, so results equal the host's: a test on the double checks
where arrays live, not the arithmetic.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any

import numpy as np


class DeviceArray(np.lib.mixins.NDArrayOperatorsMixin):
    """An array "on the device": a NumPy array inside, which leaves only when asked."""

    __slots__ = ("_a",)

    def __init__(self, a: np.ndarray) -> None:
        self._a = a

    # -- no implicit conversion -------------------------------------------------------------
    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use "
                        "`.get()` to construct a NumPy array explicitly.")

    def __array_function__(self, func: Any, types_: Any, args: Any, kwargs: Any) -> Any:
        raise TypeError(f"numpy.{func.__name__} was given a device array: use the device's "
                        f"module (bptt.backend.array_module) or transfer with .get()")

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        args = [_unwrap(x, ufunc.__name__) for x in inputs]
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = tuple(_unwrap(o, ufunc.__name__, need_device=True) for o in out)
        result = getattr(ufunc, method)(*args, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    # -- what an ndarray is ----------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: DeviceArray(self._a.T))
    device = property(lambda self: "double")

    def __repr__(self) -> str:
        return f"DeviceArray({self._a!r})"

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Any:
        return (_wrap(v) for v in self._a)

    def __bool__(self) -> bool:
        return bool(self._a)

    def __float__(self) -> float:
        return float(self._a)

    def __int__(self) -> int:
        return int(self._a)

    def __index__(self) -> int:
        return self._a.__index__()

    def __getitem__(self, key: Any) -> Any:
        return _wrap(self._a[_key(key)])

    def __setitem__(self, key: Any, value: Any) -> None:
        self._a[_key(key)] = _unwrap(value, "setitem")

    def __matmul__(self, other: Any) -> Any:
        return _wrap(self._a @ _unwrap(other, "matmul"))

    def __rmatmul__(self, other: Any) -> Any:
        return _wrap(_unwrap(other, "matmul") @ self._a)

    def __imatmul__(self, other: Any) -> Any:
        self._a[...] = self._a @ _unwrap(other, "matmul")
        return self

    # -- explicit transfers -----------------------------------------------------------------
    def get(self, stream: Any = None, order: str = "C", out: Any = None) -> np.ndarray:
        return np.array(self._a, order=order, copy=True)

    def item(self, *args: Any) -> Any:
        return self._a.item(*args)

    def tolist(self) -> Any:
        return self._a.tolist()

    def __getattr__(self, name: str) -> Any:
        """ndarray methods (sum, reshape, astype, copy, ...), their results on the device."""
        if name in _HOST_ONLY_METHODS or name.startswith("__"):
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if not callable(attr):
            return _wrap(attr)

        def method(*args: Any, **kwargs: Any) -> Any:
            args = tuple(_unwrap(a, name) for a in args)
            kwargs = {k: _unwrap(v, name) for k, v in kwargs.items()}
            return _wrap(attr(*args, **kwargs))
        return method


# NumPy's ndarray attributes a CuPy array lacks (13.6 and 14.2: ``scripts/cupy_names.py``), and
# those that hand out host memory
_HOST_ONLY_METHODS = {"ctypes", "tofile", "dump", "dumps", "__array_interface__", "data",
                      "byteswap", "getfield", "setfield", "setflags", "resize", "mT",
                      "to_device"}


def _key(key: Any) -> Any:
    if isinstance(key, tuple):
        return tuple(_unwrap(k, "index") for k in key)
    return _unwrap(key, "index")


def _unwrap(x: Any, where: str, need_device: bool = False) -> Any:
    """The NumPy array inside a device array; scalars pass; a host array is refused."""
    if isinstance(x, DeviceArray):
        return x._a
    if isinstance(x, np.ndarray) and (x.ndim > 0 or need_device):
        raise TypeError(f"Unsupported type {type(x)} in {where}: a host (NumPy) array met "
                        f"device arrays; transfer it with xp.asarray")
    if isinstance(x, (list, tuple)) and any(isinstance(v, (DeviceArray, np.ndarray))
                                            for v in x):
        return type(x)(_unwrap(v, where) for v in x)
    return x


def _wrap(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return DeviceArray(x)
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, np.generic):  # a 0-d result stays on the device, as in CuPy
        return DeviceArray(np.asarray(x))
    return x


def _on_device(func: Callable[..., Any]) -> Callable[..., Any]:
    """NumPy's ``func`` taking and giving device arrays (host arrays refused)."""
    def call(*args: Any, **kwargs: Any) -> Any:
        args = tuple(_unwrap(a, func.__name__) for a in args)
        kwargs = {k: _unwrap(v, func.__name__) for k, v in kwargs.items()}
        return _wrap(func(*args, **kwargs))
    call.__name__ = call.__qualname__ = getattr(func, "__name__", "function")
    call.__doc__ = func.__doc__
    return call


def asarray(a: Any, dtype: Any = None, order: Any = None, copy: Any = None) -> DeviceArray:
    """To the device (an explicit host -> device transfer)."""
    if isinstance(a, DeviceArray):
        inner = a._a if dtype is None else a._a.astype(dtype, copy=False)
        return a if inner is a._a else DeviceArray(inner)
    return DeviceArray(np.array(a, dtype=dtype, order=order or "K", copy=True))


def array(a: Any, dtype: Any = None, copy: bool = True, order: Any = None, **_: Any) -> Any:
    if isinstance(a, DeviceArray):
        return DeviceArray(np.array(a._a, dtype=dtype, copy=copy, order=order or "K"))
    return DeviceArray(np.array(a, dtype=dtype, order=order or "K"))


def asnumpy(a: Any, stream: Any = None, order: str = "C", out: Any = None) -> np.ndarray:
    """Back to the host (an explicit device -> host transfer)."""
    if isinstance(a, DeviceArray):
        return a.get()
    return np.asarray(a, order=order)


class _Ufunc:
    """A ufunc of the device module: called on device arrays; ``at`` as on CuPy 14."""

    def __init__(self, ufunc: np.ufunc) -> None:
        self._u = ufunc
        self.__name__ = ufunc.__name__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _on_device(self._u)(*args, **kwargs)

    def at(self, a: DeviceArray, indices: Any, b: Any = None) -> None:
        if not isinstance(a, DeviceArray):
            raise TypeError(f"{self.__name__}.at needs a device array, got {type(a)}")
        args = (_unwrap(indices, "at"),) + (() if b is None else (_unwrap(b, "at"),))
        self._u.at(a._a, *args)

    def reduce(self, a: Any, *args: Any, **kwargs: Any) -> Any:
        return _on_device(self._u.reduce)(a, *args, **kwargs)

    def outer(self, a: Any, b: Any, **kwargs: Any) -> Any:
        return _on_device(self._u.outer)(a, b, **kwargs)


class _Generator:
    """``xp.random.default_rng(seed)``: NumPy's Generator, its arrays on the device."""

    def __init__(self, seed: Any = None) -> None:
        self._g = np.random.default_rng(seed)

    def __getattr__(self, name: str) -> Any:
        return _on_device(getattr(self._g, name))

    # NumPy's Generator state, as a checkpoint keeps it
    @property
    def bit_generator(self) -> Any:
        return self._g.bit_generator


# the functions of CuPy's namespace the library may use (NumPy's, computed on the device)
_FUNCTIONS = (
    "abs", "absolute", "all", "allclose", "any", "arange", "argmax", "argmin", "argsort",
    "array_equal", "broadcast_to", "ceil", "clip", "concatenate", "copyto", "cos", "cumsum",
    "diag", "diff", "dot", "einsum", "empty", "empty_like", "equal", "exp", "expand_dims",
    "eye", "flatnonzero", "floor", "full", "full_like", "isfinite", "isinf", "isnan", "linspace",
    "log", "log1p", "logaddexp", "logical_and", "logical_not", "logical_or", "matmul", "max",
    "maximum", "mean", "min", "minimum", "moveaxis", "nonzero", "ones", "ones_like", "outer",
    "pad", "prod", "ravel", "repeat", "reshape", "round", "sign", "sin", "sort", "split",
    "sqrt", "square", "squeeze", "stack", "std", "sum", "swapaxes", "take", "take_along_axis",
    "tanh", "tensordot", "tile", "transpose", "tril", "triu", "unique", "var", "vstack", "where",
    "zeros", "zeros_like", "cumprod", "exp2", "expm1", "log2", "log10", "power", "negative",
    "reciprocal", "sinh", "cosh", "arctanh", "count_nonzero", "ascontiguousarray", "hstack",
    "atleast_1d", "atleast_2d", "searchsorted", "isclose", "average", "multiply", "divide",
    "subtract", "add", "true_divide", "greater", "less", "greater_equal", "less_equal",
    "not_equal", "vdot", "inner", "trace", "argwhere", "roll", "flip", "bincount", "diagonal",
    "nan_to_num", "cross", "histogram", "indices", "meshgrid", "asfortranarray", "fmax", "fmin",
    "sigmoid",
)
_UFUNCS = ("add", "subtract", "multiply", "divide", "maximum", "minimum", "logaddexp",
           "exp", "log", "tanh", "negative", "true_divide")
_TYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool_",
          "intp", "dtype", "ndarray", "newaxis", "inf", "nan", "pi", "e", "finfo", "iinfo",
          "result_type", "float_", "integer", "floating", "issubdtype", "can_cast",
          "promote_types")


def _make_module() -> types.ModuleType:
    xp = types.ModuleType("bptt.device_double.xp", "CuPy's namespace, on the CPU (a double)")
    for name in _FUNCTIONS:
        if hasattr(np, name):
            setattr(xp, name, _on_device(getattr(np, name)))
    for name in _UFUNCS:
        setattr(xp, name, _Ufunc(getattr(np, name)))
    for name in _TYPES:
        if hasattr(np, name):
            setattr(xp, name, getattr(np, name))
    xp.ndarray = DeviceArray
    xp.asarray, xp.array, xp.asnumpy = asarray, array, asnumpy
    xp.get_array_module = lambda *arrays: xp if any(
        isinstance(a, DeviceArray) for a in arrays) else np
    random = types.ModuleType("bptt.device_double.xp.random")
    random.default_rng = _Generator
    random.Generator = _Generator
    xp.random = random
    linalg = types.ModuleType("bptt.device_double.xp.linalg")
    linalg.norm = _on_device(np.linalg.norm)
    linalg.qr = _on_device(np.linalg.qr)
    linalg.svd = _on_device(np.linalg.svd)
    xp.linalg = linalg
    xp.float_ = np.float64
    return xp


xp = _make_module()
sys.modules.setdefault("bptt.device_double.xp", xp)


def offered_names() -> dict[str, list[str]]:
    """Every name the double lets device code use, by kind: what CuPy must have for code that
    runs on the double to find its names on CuPy (``scripts/cupy_names.py`` checks them)."""
    methods = sorted(m for m in dir(np.ndarray) if not m.startswith("_")
                     and m not in _HOST_ONLY_METHODS)
    return {
        "functions": sorted(n for n in (*_FUNCTIONS, *_UFUNCS) if hasattr(xp, n)),
        "types": sorted(n for n in _TYPES if hasattr(xp, n)),
        "ufunc.at": sorted(_UFUNCS),
        "submodules": ["linalg.norm", "linalg.qr", "linalg.svd", "random.default_rng"],
        "transfers": ["asarray", "array", "asnumpy", "get_array_module"],
        "ndarray": methods + ["get"],
    }


def is_device_array(a: Any) -> bool:
    return isinstance(a, DeviceArray)
