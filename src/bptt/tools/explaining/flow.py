"""From the calls recorded by :func:`bptt.tools.explaining.explain.trace` to numbered
forward/backward steps.

Where an array comes from is found by identity: an input of a forward call is the output
(the very same array object) of an earlier call, or else a model input. A gradient returned
by ``backward`` for input ``x`` goes to the backward of the layer that produced ``x``.

The backward of a Time RNN/LSTM/GRU layer is replayed with the one-step cells of
:mod:`bptt.nn.cells` (same parameter arrays, recorded inputs and initial state), which gives
the gradient entering and leaving every time step; the replay is compared with the layer's own
outputs and ``dxs`` (``Call.replay_ok``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import numpy as np

from ...backend import array_module, to_numpy
from ...nn.cell_spec import CellSpec, option_values
from ...nn.registry import spec_of
from .equations import layer_equations
from .records import (
    ArrayInfo,
    Call,
    Flow,
    TimeStep,
    array_info,
    letters_for,
    output_names,
    outputs_of,
)

_PARAMS = re.compile(r"Params:\s*(.*)")
_PNAME = re.compile(r"(\w+)\s*\(")


def param_names(layer: Any) -> list[str]:
    """Names of ``layer.params`` from its docstring's ``Params:`` line (W, b... as fallback)."""
    n = len(getattr(layer, "params", []))
    m = _PARAMS.search(type(layer).__doc__ or "")
    names = _PNAME.findall(m.group(1)) if m else []
    if len(names) >= n:
        return names[:n]
    fallback = {1: ["W"], 2: ["W", "b"], 3: ["Wx", "Wh", "b"]}.get(n)
    return fallback or [f"p{i}" for i in range(n)]


def _norm(a: Any) -> float:
    return float(np.linalg.norm(to_numpy(a).astype(np.float64).ravel()))


def _close(a: Any, b: Any) -> bool:
    single = np.float32 in (to_numpy(a).dtype, to_numpy(b).dtype)
    a = to_numpy(a).astype(np.float64)
    b = to_numpy(b).astype(np.float64)
    if a.shape != b.shape:
        return False
    scale = max(1.0, float(np.abs(b).max(initial=0.0)))
    tol = 1e-4 if single else 1e-9
    return bool(np.allclose(a, b, rtol=tol, atol=tol * scale))


def _is_array(a: Any) -> bool:
    return hasattr(a, "shape") and hasattr(a, "dtype")


def recurrent_spec(layer: Any) -> CellSpec | None:
    """The cell spec of a recurrent Time layer (fused or generic); None for other layers."""
    spec = spec_of(layer)
    return None if spec is None or type(layer) is spec.step else spec


def step_cell(spec: CellSpec, layer: Any) -> Any:
    """A one-step cell with the Time layer's own parameter arrays and options."""
    proto = getattr(layer, "cell", None)  # TimeCell keeps the cell it runs
    if proto is not None and type(proto) is spec.step:
        return copy.copy(proto)
    return spec.step(*layer.params, **option_values(spec, layer))


def build_calls(records: list, dims: Mapping[str, int]
                ) -> tuple[list[Call], list[Call], dict[str, dict[str, Any]]]:
    """Turn the raw records into numbered forward and backward :class:`Call` lists."""
    fwd_recs = [r for r in records if r.kind == "forward"]
    bwd_recs = [r for r in records if r.kind == "backward"]
    producer: dict[int, int] = {}  # id(array) -> forward number
    last_fwd: dict[int, Any] = {}  # layer index -> its (last) forward record
    fwd_number: dict[int, int] = {}  # layer index -> forward number
    forward: list[Call] = []
    for k, r in enumerate(fwd_recs, start=1):
        eq = layer_equations(r.layer)
        call = Call(number=k, layer=r.name, cls=type(r.layer).__name__, qualname=eq.qualname,
                    equations=eq.forward, note=eq.forward_note)
        for aname, a in r.args.items():
            if a is None:
                continue
            info = array_info(aname, a, dims, norm=True)
            src = producer.get(id(a))
            info.peer = f"[{src}] {forward[src - 1].layer}" if src else "model input"
            call.inputs.append(info)
        outs = outputs_of(r.result)
        for oname, o in zip(output_names(r.layer, len(outs)), outs, strict=True):
            if not getattr(o, "shape", True):  # a 0-d array: the loss
                oname = "L"
            call.outputs.append(array_info(oname, o, dims, norm=True))
            if oname == "L":
                call.outputs[-1].norm = float(to_numpy(o))
            if _is_array(o):
                producer[id(o)] = k
        for pname, p in zip(param_names(r.layer), getattr(r.layer, "params", []), strict=False):
            call.params.append(array_info(pname, p, dims, norm=True))
        forward.append(call)
        last_fwd[r.index] = r
        fwd_number[r.index] = k
    # who consumes each forward output
    for call, r in zip(forward, fwd_recs, strict=True):
        for info, o in zip(call.outputs, outputs_of(r.result), strict=True):
            users = [f"[{c.number}] {c.layer}" for c, rr in zip(forward, fwd_recs, strict=True)
                     if rr is not r and any(a is o for a in rr.args.values())]
            info.peer = ", ".join(users) if users else (
                "model output: the loss" if info.name == "L" else "model output")

    # backward: number the calls (a recurrent layer's backward takes one number per step)
    numbers: list[int] = []
    n = 1
    for r in bwd_recs:
        numbers.append(n)
        n += _span(r, last_fwd)
    bwd_number = {r.index: num for r, num in zip(bwd_recs, numbers, strict=True)}
    returned: dict[int, int] = {}  # id(gradient array) -> backward number
    backward: list[Call] = []
    cells: dict[str, dict[str, Any]] = {}
    for r, num in zip(bwd_recs, numbers, strict=True):
        eq = layer_equations(r.layer)
        call = Call(number=num, layer=r.name, cls=type(r.layer).__name__, qualname=eq.qualname,
                    equations=eq.backward, note=eq.backward_note)
        for aname, a in r.args.items():
            if a is None:
                continue
            info = array_info(aname, a, dims, norm=True)
            src = returned.get(id(a))
            if src:
                info.peer = f"({src}) {_layer_at(backward, src)}"
            elif not _is_array(a):
                info.peer = "dL/dL (the loss itself)"
            else:
                info.peer = "given to model.backward"
            call.inputs.append(info)
        if not call.inputs:  # backward() with its default dout = 1
            call.inputs.append(ArrayInfo("dout", [], "", "default", 1.0, "dL/dL = 1"))
        fr = last_fwd.get(r.index)
        fwd_args = [(k, a) for k, a in (fr.args.items() if fr else []) if a is not None]
        grads = outputs_of(r.result)
        for (aname, a), g in zip(fwd_args, grads, strict=False):
            info = array_info("d" + aname, g, dims, norm=True)
            if g is None:
                info.peer = "nowhere: integer ids have no gradient"
            else:
                src = _producer_of(a, fwd_recs, fr)
                info.peer = (f"({bwd_number[src.index]}) {src.name}"
                             if src is not None and src.index in bwd_number else
                             "dL/d(model input), not used further")
                returned[id(g)] = num + _span(r, last_fwd) - 1  # after the last step
            call.outputs.append(info)
        for pname, g in zip(param_names(r.layer), getattr(r.layer, "grads", []), strict=False):
            call.params.append(array_info("d" + pname, g, dims, norm=True))
        spec = recurrent_spec(r.layer)
        if spec is not None and fr is not None:
            _steps(call, r, fr, spec, dims)
            cells[spec.step.__name__] = asdict(layer_equations(spec.step))
        backward.append(call)
    return forward, backward, cells


def _span(r: Any, last_fwd: dict[int, Any]) -> int:
    """How many numbers a backward call takes: T for a recurrent Time layer, else 1."""
    if recurrent_spec(r.layer) is not None and r.index in last_fwd:
        xs = next(iter(last_fwd[r.index].args.values()))
        if _is_array(xs) and xs.ndim == 3:
            return int(xs.shape[1])
    return 1


def _layer_at(calls: list[Call], number: int) -> str:
    for c in calls:
        if c.number == number or any(s.number == number for s in c.steps):
            return c.layer
    return "?"


def _producer_of(a: Any, fwd_recs: list, consumer: Any) -> Any:
    """The last forward record before ``consumer`` whose output is the array ``a``."""
    found = None
    for r in fwd_recs:
        if r is consumer:
            break
        if any(o is a for o in outputs_of(r.result)):
            found = r
    return found


def _replay_forward(layer: Any, spec: CellSpec, xs: Any, state0: tuple, hs_real: Any
                    ) -> tuple[list, tuple] | None:
    """Run one cell per step from the layer's initial state; None if it does not reproduce."""
    xp = array_module(xs)
    N, T, _ = xs.shape
    H = layer.H
    zeros = spec.zero_state(xp, N, H, xs.dtype)
    candidates = [zeros]
    given = tuple(s for s in state0[:spec.num_states])
    if all(_is_array(s) and tuple(s.shape) == (N, H) for s in given[:1]):
        candidates.insert(0, tuple(s if _is_array(s) else z for s, z in zip(given, zeros,
                                                                              strict=False)))
    for start in candidates:
        state, cells, outs = start, [], []
        for t in range(T):
            cell = step_cell(spec, layer)
            state = spec.forward(cell, xs[:, t], state)
            cells.append(cell)
            outs.append(state[0])
        if _close(xp.stack(outs, axis=1), hs_real):
            return cells, start
    return None


def _steps(call: Call, r: Any, fr: Any, spec: CellSpec, dims: Mapping[str, int]) -> None:
    """Fill ``call.steps`` with the per-time-step gradient flow of a recurrent layer."""
    layer = r.layer
    call.cell = spec.step.__name__
    xs = next(iter(fr.args.values()))
    dhs = next(iter(r.args.values()), None)
    if not (_is_array(xs) and _is_array(dhs)) or fr.args.get("mask") is not None:
        call.replay_ok = False
        return
    replay = _replay_forward(layer, spec, xs, fr.state0, fr.result)
    lstm = spec.has_cell_state  # a cell state c flows back beside h
    N, T, _ = xs.shape
    xp = array_module(xs)
    H = layer.H
    hl = letters_for((N, H), dims)
    xl = letters_for((N, xs.shape[2]), dims)
    up = call.inputs[0].peer
    down = call.outputs[0].peer if call.outputs else "the layer below"
    dh = r.args.get("dh_last")
    dc = r.args.get("dc_last")
    zeros = spec.zero_state(xp, N, H, xs.dtype)  # (h,) or (h, c)
    dh = zeros[0] if dh is None else dh
    dc = zeros[-1] if dc is None else dc
    given_h = r.args.get("dh_last") is not None
    given_c = r.args.get("dc_last") is not None
    dxs = []
    first = call.number
    for k, t in enumerate(reversed(range(T))):
        num = first + k
        step = TimeStep(number=num, t=t)
        if t == T - 1:
            nxt = "dh_last (given)" if given_h else f"zero: t={T - 1} is the last step here"
        else:
            nxt = f"({num - 1}) t={t + 1}"
        step.receives.append(Flow(f"dhs[:, {t}]", hl, up, _norm(dhs[:, t])))
        step.receives.append(Flow("dh", hl, nxt, _norm(dh)))
        if lstm:
            cnxt = nxt.replace("dh_last", "dc_last") if (t < T - 1 or given_c) else nxt
            step.receives.append(Flow("dc", hl, cnxt, _norm(dc)))
        step.dh_next = _norm(dhs[:, t] + dh)
        if replay is not None:
            cells = replay[0]
            dx, dstate = spec.backward(cells[t], (dhs[:, t] + dh, dc)[:spec.num_states])
            dh, dc = dstate[0], dstate[-1]
            dxs.append(dx)
        else:
            dx = None
        prev = (f"({num + 1}) t={t - 1}, its dh" if t > 0
                else "layer.dh = dL/dh0, the initial state's gradient")
        step.sends.append(Flow(f"dxs[:, {t}]", xl, f"{down} (after the loop)",
                               _norm(dx) if dx is not None else None))
        step.sends.append(Flow("dh_prev", hl, prev, _norm(dh) if dx is not None else None))
        if lstm:
            cprev = prev.replace("dh", "dc")
            step.sends.append(Flow("dc_prev", hl, cprev, _norm(dc) if dx is not None else None))
        call.steps.append(step)
    if replay is None:
        call.replay_ok = False
        return
    got = xp.stack(dxs[::-1], axis=1)
    call.replay_ok = _close(got, r.result) if _is_array(r.result) else False
