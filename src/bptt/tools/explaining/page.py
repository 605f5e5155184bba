"""The explainer page: one self-contained HTML file that shows a model's forward and backward
pass (through time, for a recurrent one) with the real numbers of one small batch.

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

- for a seq2seq model the encoder's steps, then the decoder's, attention between them, and a
  step-through forward and back through both; for a feed-forward net, the chain rule layer by
  layer (:mod:`.page_graph` builds each view);
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
from ...backend import array_module, to_numpy
from ...nn.registry import spec_of
from ...nn.stacks import make_recurrent_stack
from ...train.checkpoint import read_checkpoint
from ...train.generate import sample_ids
from ...train.kinds import load_checkpoint
from ...train.progress import read_jsonl
from ...train.seq2seq import attention_map
from .models import build
from .page_graph import as_list, lm_view, mlp_view, seq2seq_view
from .plots import gate_activations


def page_data(model: str | os.PathLike[str], N: int | None = None, T: int | None = None,
              seed: int = 0, text: str | None = None) -> dict[str, Any]:
    """The numbers the page shows: one forward and backward pass of ``model`` (a name
    ``bptt explain`` knows, or a run / checkpoint folder) on a small batch, drawn as a
    language model, a seq2seq model or a feed-forward net (:mod:`.page_graph`)."""
    obj, batch, dims = build(str(model), N=N, T=T, seed=seed, text=text)
    if callable(getattr(obj, "eval", None)):
        obj.eval()  # dropout off: the numbers of the model itself
    if hasattr(obj, "rnn_layers"):
        view = lm_view(obj, *batch)
        cell = spec_of(obj.rnn_layers[-1]).name
    elif hasattr(obj, "encoder"):
        view = seq2seq_view(obj, *batch)
        cell = spec_of(obj.encoder.rnn.layers[-1]).name
    else:
        view = mlp_view(obj, *batch)
        cell = None
    view["model"] = str(model)
    view["dims"] = {k: int(v) for k, v in dims.items()}
    if cell is not None:
        cells = list(dict.fromkeys([cell, "rnn", "lstm", "gru"]))
        view["connectivity"] = {"sizes": CONNECTIVITY,
                                "cells": {c: connectivity(c, **CONNECTIVITY) for c in cells}}
    return view


CONNECTIVITY = {"T": 12, "D": 8, "H": 8, "N": 4}  # sizes of the connectivity view's layers


def connectivity(cell: str, T: int = 12, D: int = 8, H: int = 8, N: int = 4,
                 seed: int = 0) -> list[list[float | None]]:
    """|dL_t/dx_{t-k}| for one fresh layer of ``cell`` (Xavier weights, ``seed``) on random
    inputs: row t, column k = 0..t, the mean over N sequences of the 2-norm of the gradient of
    L_t = u . h_t (u a fixed unit vector) with respect to the input k steps earlier; None
    where k > t. float64. How far back a loss reaches, in numbers."""
    g = np.random.default_rng(seed)
    layer = make_recurrent_stack(cell, D, H, dtype=np.float64, generator=g).layers[0]
    xs = array_module(layer.params[0]).asarray(g.standard_normal((N, T, D)))
    u = g.standard_normal(H)
    u /= np.linalg.norm(u)
    out: list[list[float | None]] = []
    for t in range(T):
        layer.reset_state()
        hs = layer.forward(xs)  # a fresh forward each time: a backward may use up its caches
        dhs = np.zeros_like(to_numpy(hs))
        dhs[:, t] = u
        dxs = to_numpy(layer.backward(array_module(hs).asarray(dhs)))
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
    return {"tokens": vocab.tokens(ids), "acts": {k: as_list(v) for k, v in acts.items()}}


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
                                   "weights": as_list(weights)}
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
