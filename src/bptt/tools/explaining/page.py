"""The explainer page: one self-contained HTML file that shows a language model's forward and
backward pass through time with the real numbers of one small batch.

    page = explainer_page("rnn")          # a built-in model name, or a run / checkpoint folder
    page.save("rnn.html")                 # opens offline by double-click: nothing is fetched
    page                                  # in Jupyter: shown inline

What it shows (every number from one forward and backward pass of the model, float64 where the
model allows it):

- the unrolled graph: word ids x_t, embeddings e_t, the states h_t of each recurrent layer,
  scores s_t and the loss terms L_t, one column per time step; a click on a node shows its
  layer's equations (parsed from the docstring, as ``bptt explain`` does), its value and its
  gradient dL/d(node) as small heatmaps, each entry readable on hover;
- labels in English or Japanese (the books' terms: 順伝播, 逆伝播, 勾配, 時間方向の誤差逆伝播),
  switched by a button on the page;
- a step-through: forward t = 0..T-1, then backward t = T-1..0. At each h_t of the top
  recurrent layer the gradient from the loss at t (through the scores) and the gradient from
  h_{t+1} are shown apart, then summed: dh_t = dhs[:, t] + dh_next. The gradient that leaves
  t = 0 is the layer's ``dh``, the gradient of the initial state.

- gradient connectivity: |dL_t/dx_{t-k}| as a matrix over t and k for the model's cell and
  for RNN, LSTM and GRU side by side (fresh layers of the same sizes): how far back a loss
  reaches, the vanishing gradient seen.

The per-step gradients come from replaying the layer's one-step cell over the same inputs
(the cell the fused Time layer is tested equal to); the page records that the replay gave the
layer's own states and ``dh`` back. The data sits in the page as JSON; the script and the style
are package data (``page_assets/``), inlined.
"""

from __future__ import annotations

import html
import json
import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ...atomic import atomic_file
from ...backend import to_numpy
from ...nn.registry import spec_of
from ...nn.stacks import make_recurrent_stack
from ...train.checkpoint import read_checkpoint
from ...train.generate import sample_ids
from ...train.kinds import load_checkpoint
from ...train.progress import read_jsonl
from ...train.seq2seq import attention_map
from .equations import layer_equations
from .flow import step_cell
from .models import build
from .plots import gate_activations


def _array(a: Any) -> list:
    """A JSON-able nested list of float64 values (finite; the page prints them)."""
    return np.asarray(to_numpy(a), dtype=np.float64).round(12).tolist()


def _equations(layer: Any) -> dict[str, Any]:
    eq = layer_equations(layer)
    return {"layer": eq.layer, "summary": eq.summary, "forward": eq.forward,
            "backward": eq.backward, "forward_note": eq.forward_note,
            "backward_note": eq.backward_note}


def _replay(layer: Any, xs: Any, hs: Any, dhs: Any) -> dict[str, Any]:
    """Forward and backward of ``layer`` one step at a time with its cell: the states, and the
    gradient at each h_t split into the part from the loss (dhs[:, t]) and from h_{t+1}."""
    spec = spec_of(layer)
    N, T = xs.shape[0], xs.shape[1]
    H = hs.shape[2]
    xp_zero = np.zeros((N, H), dtype=np.float64)
    state = tuple(xp_zero.astype(hs.dtype) for _ in range(spec.num_states))
    cells, states = [], []
    for t in range(T):
        cell = step_cell(spec, layer)
        state = spec.forward(cell, xs[:, t], state)
        cells.append(cell)
        states.append(state)
    dstate = tuple(np.zeros((N, H), dtype=hs.dtype) for _ in range(spec.num_states))
    from_next, total = [None] * T, [None] * T
    for t in reversed(range(T)):
        from_next[t] = dstate[0]
        total[t] = dhs[:, t] + dstate[0]
        _, dstate = spec.backward(cells[t], (total[t], *dstate[1:]))
    same_states = all(np.allclose(to_numpy(states[t][0]), to_numpy(hs[:, t]), atol=1e-6)
                      for t in range(T))
    return {"cell": spec.step.__name__, "has_cell_state": spec.has_cell_state,
            "from_loss": [_array(dhs[:, t]) for t in range(T)],
            "from_next": [_array(g) for g in from_next],
            "total": [_array(g) for g in total],
            "dh0": _array(dstate[0]), "layer_dh": _array(layer.dh),
            "replay_ok": bool(same_states and np.allclose(to_numpy(dstate[0]),
                                                           to_numpy(layer.dh), atol=1e-6))}


def page_data(model: str | os.PathLike[str], N: int | None = None, T: int | None = None,
              seed: int = 0, text: str | None = None) -> dict[str, Any]:
    """The numbers the page shows: one forward and backward pass of ``model`` (a built-in
    language-model name, or a run / checkpoint folder) on a small batch."""
    obj, (xs, ts), dims = build(str(model), N=N, T=T, seed=seed, text=text)
    if not hasattr(obj, "rnn_layers"):
        raise ValueError(f"the explainer page draws language models (a recurrent layer between "
                         f"an embedding and the scores); {model} is not one: try "
                         f"`bptt explain {model}`")
    if callable(getattr(obj, "eval", None)):
        obj.eval()  # dropout off: the numbers of the model itself
    obj.reset_state()
    outs, ins = [], []  # each layer's output, and the input it got
    out = xs
    for layer in obj.layers:
        ins.append(out)
        out = layer.forward(out)
        outs.append(out)
    loss = float(obj.loss_layer.forward(out, ts))
    grads = []  # dL/d(each layer's output)
    dout = obj.loss_layer.backward(1)
    for layer in reversed(obj.layers):
        grads.append(dout)
        dout = layer.backward(dout)
    grads.reverse()
    scores = to_numpy(outs[-1]).astype(np.float64)
    z = scores - scores.max(axis=2, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=2, keepdims=True))
    t_ids = to_numpy(ts).astype(np.int64)
    token_loss = -np.take_along_axis(logp, t_ids[:, :, None], axis=2)[:, :, 0]  # (N, T)
    nT = int(xs.shape[1])

    def columns(a: Any) -> list:
        return [_array(a[:, t]) for t in range(nT)]

    embed_i = obj.layers.index(obj.embed)
    rows = [{"key": "x", "label": "x", "layer": "input", "shape": "(N,)",
             "value": [_array(to_numpy(xs)[:, t][:, None]) for t in range(nT)], "grad": None,
             "equations": None}]
    rows.append({"key": "e", "label": "e", "layer": type(obj.embed).__name__, "shape": "(N, D)",
                 "value": columns(outs[embed_i]), "grad": columns(grads[embed_i]),
                 "equations": _equations(obj.embed)})
    replays = []
    for k, rnn in enumerate(obj.rnn_layers):
        i = obj.layers.index(rnn)
        replay = _replay(rnn, to_numpy(ins[i]), to_numpy(outs[i]), to_numpy(grads[i]))
        replays.append(replay)
        # dL/dh_t: from above (the scores, or the next layer) and from h_{t+1}, summed
        rows.append({"key": f"h{k}", "label": "h" if len(obj.rnn_layers) == 1 else f"h{k + 1}",
                     "layer": type(rnn).__name__, "shape": "(N, H)", "value": columns(outs[i]),
                     "grad": replay["total"], "equations": _equations(rnn),
                     "cell_equations": _equations(spec_of(rnn).step)})
    rows.append({"key": "s", "label": "s", "layer": type(obj.affine).__name__, "shape": "(N, V)",
                 "value": columns(outs[-1]), "grad": columns(grads[-1]),
                 "equations": _equations(obj.affine)})
    rows.append({"key": "L", "label": "L", "layer": type(obj.loss_layer).__name__,
                 "shape": "(N,)", "value": [_array(token_loss[:, t][:, None])
                                            for t in range(nT)],
                 "grad": None, "equations": _equations(obj.loss_layer)})
    obj.reset_state()
    cells = list(dict.fromkeys([spec_of(obj.rnn_layers[-1]).name, "rnn", "lstm", "gru"]))
    return {"connectivity": {"sizes": CONNECTIVITY,
                             "cells": {c: connectivity(c, **CONNECTIVITY) for c in cells}},
            "model": str(model), "dims": {k: int(v) for k, v in dims.items()}, "T": nT,
            "loss": loss, "xs": to_numpy(xs).tolist(), "ts": t_ids.tolist(), "rows": rows,
            "replay": replays[-1], "replays": replays}


CONNECTIVITY = {"T": 12, "D": 8, "H": 8, "N": 4}  # sizes of the connectivity view's layers


def connectivity(cell: str, T: int = 12, D: int = 8, H: int = 8, N: int = 4,
                 seed: int = 0) -> list[list[float | None]]:
    """|dL_t/dx_{t-k}| for one fresh layer of ``cell`` (Xavier weights, ``seed``) on random
    inputs: row t, column k = 0..t, the mean over N sequences of the 2-norm of the gradient of
    L_t = u . h_t (u a fixed unit vector) with respect to the input k steps earlier; None
    where k > t. float64. How far back a loss reaches, in numbers."""
    g = np.random.default_rng(seed)
    layer = make_recurrent_stack(cell, D, H, dtype=np.float64, generator=g).layers[0]
    xs = g.standard_normal((N, T, D))
    u = g.standard_normal(H)
    u /= np.linalg.norm(u)
    out: list[list[float | None]] = []
    for t in range(T):
        layer.reset_state()
        hs = layer.forward(xs)  # a fresh forward each time: a backward may use up its caches
        dhs = np.zeros_like(to_numpy(hs))
        dhs[:, t] = u
        dxs = to_numpy(layer.backward(dhs))
        out.append([float(np.linalg.norm(dxs[:, t - k], axis=1).mean()) if k <= t else None
                    for k in range(T)])
    return out


@dataclass
class ExplainerPage:
    """The page: ``html`` (one self-contained file), ``data`` (its numbers)."""

    html: str
    data: dict[str, Any]

    def save(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        with atomic_file(path) as f:
            f.write(self.html.encode("utf-8"))
        return path

    def _repr_html_(self) -> str:
        return inline_html(self.html)


def inline_html(page: str) -> str:
    """A page for a notebook cell: in a sandboxed frame, its script in its own document."""
    return (f'<iframe srcdoc="{html.escape(page, quote=True)}" '
            f'style="width:100%;height:760px;border:0" sandbox="allow-scripts"></iframe>')


def _asset(name: str) -> str:
    return (resources.files("bptt.tools.explaining") / "page_assets" / name).read_text(
        encoding="utf-8")


LANGUAGES = ("en", "ja")
# what an "epoch" record of log.jsonl holds besides the metrics
_NOT_METRICS = {"event", "time", "epoch", "step", "lr", "best", "partial", "train_time_s",
                "eval_time_s"}


def training_curves(log: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The curves of a run's ``log.jsonl``: the training loss of every logged window (x: the
    step), then each metric of the evaluations (the loss, perplexities, accuracies...)."""
    records = read_jsonl(log)
    curves: dict[str, list[list[float]]] = {}
    for r in records:
        if r.get("event") == "train" and isinstance(r.get("loss"), (int, float)):
            curves.setdefault("train loss (window)", []).append([r["step"], r["loss"]])
        elif r.get("event") == "epoch":
            for k, v in r.items():
                if k not in _NOT_METRICS and isinstance(v, (int, float)) \
                        and not isinstance(v, bool) and math.isfinite(v):
                    curves.setdefault(k, []).append([r["step"], v])
    return [{"key": k, "points": pts} for k, pts in curves.items()]


def units_over_text(ck: Any, length: int = 40, seed: int = 1) -> dict[str, Any]:
    """The gates and states of a trained language model's last recurrent layer at every word of
    a text it writes itself (``length`` tokens after an end of line, ``seed``): for the page's
    unit picker."""
    vocab = ck.vocab
    newline = vocab.eos if vocab.level == "word" else "\n"
    first = vocab.stoi[newline] if newline in vocab else 0
    skip = [vocab.stoi[vocab.unk]] if vocab.unk in vocab else []
    ids = [first] + sample_ids(ck.model, [first], length, seed=seed, skip_ids=skip)
    acts = gate_activations(ck.model, ids)
    ck.model.reset_state()
    return {"tokens": vocab.tokens(ids), "acts": {k: _array(v) for k, v in acts.items()}}


def report_data(run: str | os.PathLike[str]) -> dict[str, Any]:
    """What ``bptt report RUN --html`` shows: the training curves of any run, the explainer
    views of a language model, the attention of an attention seq2seq model."""
    run = Path(run)
    ck = load_checkpoint(run)
    log = run / "log.jsonl"
    curves = training_curves(log) if log.exists() else []
    data: dict[str, Any] = {}
    report: dict[str, Any] = {"kind": ck.kind, "run": str(run), "curves": curves,
                              "attention": None, "units": None}
    if ck.kind == "language-model":
        data = page_data(run)
        report["units"] = units_over_text(ck)
    if ck.kind == "seq2seq" and ck.model.kind == "attention":
        stored = read_checkpoint(ck.directory, kind="seq2seq")
        test = stored.document("test_pairs.json")["pairs"] if stored.has(
            "test_pairs.json") else []
        text = (test[0][0] if test else "").strip()
        if text:
            source, output, weights = attention_map(ck.directory, text)
            report["attention"] = {"text": text, "source": source, "output": output,
                                   "weights": _array(weights)}
    data["report"] = report
    data["model"] = run.name or str(run)
    return data


def explainer_page(model: str | os.PathLike[str], N: int | None = None, T: int | None = None,
                   seed: int = 0, text: str | None = None, lang: str = "en") -> ExplainerPage:
    """The explainer page of ``model`` (module docstring), its labels in English or Japanese
    (``lang``; a button on the page switches)."""
    _check_language(lang)
    return _page(page_data(model, N=N, T=T, seed=seed, text=text), str(model), lang)


def report_page(run: str | os.PathLike[str], lang: str = "en") -> ExplainerPage:
    """``bptt report RUN --html``: the page of a trained run of any kind (:func:`report_data`)."""
    _check_language(lang)
    return _page(report_data(run), str(run), lang)


def _check_language(lang: str) -> None:
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}: choose one of {', '.join(LANGUAGES)}")


def _page(data: dict[str, Any], model: str, lang: str) -> ExplainerPage:
    data["lang"] = lang
    payload = json.dumps(data, allow_nan=False).replace("</", "<\\/")  # safe inside <script>
    title = f"bptt: backprop through time in {html.escape(Path(str(model)).name)}"
    page = (_asset("explainer.html")
            .replace("{{title}}", title)
            .replace("{{lang}}", lang)
            .replace("{{style}}", _asset("explainer.css"))
            .replace("{{data}}", payload)
            .replace("{{script}}", _asset("explainer.js")))
    return ExplainerPage(page, data)
