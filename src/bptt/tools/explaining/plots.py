"""Pictures of what recurrent networks do, as PNG files.

- :func:`plot_gradient_flow`: ||dL/dh_t|| against t for RNN/LSTM/GRU at several Wh scales
  (the runs of :mod:`bptt.tools.explaining.gradflow`), and the parameter-gradient norm
  with/without clipping;
- :func:`gate_activations` + :func:`plot_gates`: an LSTM's gates f, i, o (and g, c, h) at every
  word of a sentence, one heatmap per gate (units x words);
- :func:`hidden_states` + :func:`pca_2d` + :func:`plot_states`: the hidden state h_t of a
  sentence as a path in the plane of its first two principal components.

The numbers (gates, states, projections) are computed with NumPy alone; matplotlib is imported
only to draw, through its object API (``Figure`` + Agg canvas: no pyplot, no global backend
change). Without it the plot functions raise an error saying ``pip install 'bptt[plot]'``.
Training curves are drawn by ``bptt train --plot`` (:mod:`bptt.train.plot`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...backend import array_module, to_device, to_numpy
from ...figures import new_figure, require_matplotlib, save_figure  # noqa: F401 (re-exported)
from ...train.generate import check_known, sample_ids
from ...train.lm_checkpoint import load_language_model
from .flow import recurrent_spec, step_cell
from .models import build
from .records import Tracer, model_layers


# -- gradient flow --------------------------------------------------------------------------------
def plot_gradient_flow(runs: Sequence[Any], path: str | os.PathLike[str] | None = None,
                       title: str | None = None) -> Any:
    """One panel per cell: log ||dL/dh_t|| (or ||dL/d(h_t, s_t)||, ``FlowRun.of``) against t,
    one line per Wh scale; a last panel: the global parameter-gradient norm against the scale,
    before and after clipping. Returns the PNG's path, or with no ``path`` the Figure (a
    notebook shows it inline)."""
    if not runs:
        raise ValueError("plot_gradient_flow needs at least one run")
    cells = list(dict.fromkeys(r.cell for r in runs))
    scales = sorted({r.scale for r in runs})
    ncols = len(cells) + 1
    fig = new_figure(4.2 * ncols, 4.0)
    axes = fig.subplots(1, ncols, sharey=False)
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    colors = {s: cmap(i / max(len(scales) - 1, 1) * 0.9) for i, s in enumerate(scales)}
    floor = 1e-300
    lo = min(max(min(r.norms), floor) for r in runs)
    hi = max(max(r.norms) for r in runs)
    for ax, cell in zip(axes, cells, strict=False):
        for r in (r for r in runs if r.cell == cell):
            ts = np.arange(r.T)
            ax.plot(ts, np.maximum(r.norms, floor), color=colors[r.scale],
                    label=f"Wh x {r.scale:g}: {r.per_step:.2f}/step")
        ax.set_yscale("log")
        ax.set_ylim(lo / 10, hi * 10)
        ax.set_xlabel("time step t (the loss is at the last step)")
        of = next(r.of for r in runs if r.cell == cell)
        ax.set_title(f"{cell.upper()}: ||dL/d{of}||")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    axes[0].set_ylabel("norm of the gradient reaching h_t (log)")
    ax = axes[-1]
    markers = {"rnn": "o", "lstm": "s", "gru": "^"}
    for cell in cells:
        rs = sorted((r for r in runs if r.cell == cell), key=lambda r: r.scale)
        ax.plot([r.scale for r in rs], [r.grad_norm for r in rs],
                marker=markers.get(cell, "o"), label=f"{cell} without clipping")
    max_norm = runs[0].max_norm
    ax.axhline(max_norm, color="k", ls="--", lw=1,
               label=f"with clip_grads(max_norm={max_norm:g})")
    ax.set_yscale("log")
    ax.set_xlabel("scale of Wh")
    ax.set_title("global norm of the parameter gradients")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    r0 = runs[0]
    fig.suptitle(title or f"Gradient flow back through time: adding problem, T={r0.T}, "
                 f"H={r0.H}, {r0.init} Wh; carry-gate bias {r0.carry_bias:g} (LSTM forget gate "
                 f"and GRU 1 - z start near sigmoid({r0.carry_bias:g}))")
    return save_figure(fig, path)


# -- recording a language model on a sentence -----------------------------------------------------
def _recurrent_layers(model: Any) -> list[Any]:
    return [layer for _, layer in model_layers(model) if recurrent_spec(layer) is not None]


def recurrent_layer_count(model: Any) -> int:
    """How many recurrent layers ``model`` has (``--layer`` counts them from 0, or -1 back)."""
    return len(_recurrent_layers(model))


def _record_inputs(model: Any, ids: Any) -> list[tuple[Any, Any]]:
    """Run ``model.predict`` on ids (T,) from a zero state; return (layer, xs) per recurrent
    layer, xs being what the layer received."""
    if hasattr(model, "reset_state"):
        model.reset_state()
    xs = to_device(np.asarray(ids).reshape(1, -1))
    layers = model_layers(model)
    rec = set(id(lay) for lay in _recurrent_layers(model))
    with Tracer(layers) as tr:
        model.predict(xs)
    if hasattr(model, "reset_state"):
        model.reset_state()
    return [(r.layer, next(iter(r.args.values()))) for r in tr.records
            if r.kind == "forward" and id(r.layer) in rec]


class TextIds:
    """Text <-> ids for a checkpoint (its vocabulary) or a built-in model (ids as numbers)."""

    def __init__(self, vocab: Any, V: int) -> None:
        self.vocab, self.V = vocab, V

    def encode(self, text: str, flag: str = "--text") -> list[int]:
        if self.vocab is not None:
            check_known(self.vocab, text, flag)
            ids = [int(i) for i in self.vocab.encode(text)]
        else:
            try:
                ids = [int(w) for w in text.split()]
            except ValueError:
                raise ValueError("a built-in (untrained) model has no vocabulary: give the text "
                                 "as word ids, e.g. --text '1 5 2', or use a checkpoint") from None
        if not ids:
            raise ValueError("the text is empty")
        bad = [i for i in ids if not 0 <= i < self.V]
        if bad:
            raise ValueError(f"word id {bad[0]} is outside the vocabulary [0, {self.V - 1}]")
        return ids

    def words(self, ids: list[int]) -> list[str]:
        return self.vocab.tokens(ids) if self.vocab is not None else [str(i) for i in ids]


def load_text_model(name: str) -> tuple[Any, TextIds]:
    """A language model to draw: a checkpoint directory (with its vocabulary) or a built-in
    model name (untrained; word ids as text)."""
    if Path(name).is_dir():
        ck = load_language_model(name)
        return ck.model, TextIds(ck.vocab, ck.model.vocab_size)
    model, _, d = build(name)
    if not hasattr(model, "predict"):
        raise ValueError(f"{name} is not a language model: choose a checkpoint directory or "
                         f"rnnlm, lstm, gru, rnn, simple-rnnlm, better-rnnlm")
    return model, TextIds(None, d["V"])


def sentence_ids(model: Any, words: TextIds, text: str | None, start: str | None, length: int,
                 seed: int) -> list[int]:
    """The ids of ``text``, or of a sentence the model writes after ``start`` (or a random
    word)."""
    if text:
        return words.encode(text)
    first = words.encode(start, "--start") if start else [int(np.random.default_rng(seed).integers(
        words.V))]
    unk = getattr(words.vocab, "unk_id", None)
    skip = [unk] if unk is not None else []
    return first + sample_ids(model, first, length, seed=seed, skip_ids=skip)


def recurrent_cell(model: Any, layer: int = -1) -> Any:
    """The registry's spec of a model's recurrent layer (default the last)."""
    layers = _recurrent_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no recurrent layer to show")
    if not -len(layers) <= layer < len(layers):
        raise ValueError(f"layer {layer} is out of range: the model has {len(layers)} "
                         f"recurrent layers")
    return recurrent_spec(layers[layer])


def gate_activations(model: Any, ids: Sequence[int], layer: int = -1) -> dict[str, np.ndarray]:
    """Gates and states of one recurrent layer at every step of the word ids (T,).

    Returns float64 arrays (T, H): the cell's ``activations()`` (an LSTM's ``f``, ``i``, ``o``,
    ``g``; a GRU's ``z``, ``r``; none for an RNN or a cell without that method), then ``c`` for
    a cell with a cell state, then ``h``. Computed by replaying the layer's own parameters with
    its one-step cell (the registry's) on what the layer received.
    """
    recorded = _record_inputs(model, ids)
    if not recorded:
        raise ValueError(f"{type(model).__name__} has no recurrent layer to show")
    n = len(recorded)
    if not -n <= layer < n:
        raise ValueError(f"layer {layer} is out of range: the model has {n} recurrent "
                         f"layer{'s' if n > 1 else ''} (0 to {n - 1}, or -1 for the last)")
    lay, xs = recorded[layer]
    spec = recurrent_spec(lay)
    xs = xs[0]  # (T, D)
    H = lay.H
    state = spec.zero_state(array_module(xs), 1, H, xs.dtype)
    out: dict[str, list] = {}
    for t in range(xs.shape[0]):
        cell = step_cell(spec, lay)
        state = spec.forward(cell, xs[t:t + 1], state)
        acts = spec.activations(cell)
        if spec.has_cell_state and "c" not in acts:  # a cell may show its own (sLSTM: c/n)
            acts["c"] = state[1]
        acts["h"] = state[0]
        for k, v in acts.items():
            out.setdefault(k, []).append(to_numpy(v)[0].astype(np.float64))
    return {k: np.stack(v) for k, v in out.items()}


def hidden_states(model: Any, ids: Sequence[int], layer: int = -1) -> np.ndarray:
    """h_t (T, H) of one recurrent layer (default: the last) over the word ids, from zero."""
    return gate_activations(model, ids, layer)["h"]


def pca_2d(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project the rows of X (M, H) on their first two principal components (NumPy SVD).

    Returns (Y (M, 2), explained variance ratio (2,), the mean (H,)); component signs are
    fixed so the largest loading of each component is positive (the same data, the same plot).
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 2:
        raise ValueError(f"pca_2d needs at least 2 rows (M, H), got shape {X.shape}")
    mean = X.mean(axis=0)
    Xc = X - mean
    _, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    k = min(2, Vt.shape[0])
    comps = Vt[:k]
    signs = np.sign(comps[np.arange(k), np.abs(comps).argmax(axis=1)])
    comps = comps * signs[:, None]
    Y = Xc @ comps.T
    if k < 2:
        Y = np.hstack([Y, np.zeros((Y.shape[0], 2 - k))])
    var = s**2
    ratio = var[:2] / var.sum() if var.sum() > 0 else np.zeros(2)
    if ratio.shape[0] < 2:
        ratio = np.concatenate([ratio, np.zeros(2 - ratio.shape[0])])
    return Y, ratio, mean


def plot_gates(acts: dict[str, np.ndarray], words: Sequence[str],
               path: str | os.PathLike[str] | None,
               units: int = 24, title: str | None = None) -> Any:
    """Heatmaps (units x words) of each gate in ``acts`` (from :func:`gate_activations`).

    Gates are in [0, 1] (0 = closed, 1 = open); g, c and h are in [-1, 1] (c may exceed it).
    Only the first ``units`` hidden units are drawn.
    """
    if units < 1:
        raise ValueError(f"units must be a positive integer, got {units}")
    order = [k for k in ("f", "i", "o", "g", "z", "r", "c", "h") if k in acts]
    if not order:
        raise ValueError("no activations to plot")
    T = acts[order[0]].shape[0]
    if len(words) != T:
        raise ValueError(f"{len(words)} words for {T} time steps")
    names = {"f": "forget gate f", "i": "input gate i", "o": "output gate o",
             "g": "candidate g = tanh(.)", "z": "update gate z", "r": "reset gate r",
             "c": "cell state c", "h": "hidden state h"}
    U = min(units, acts[order[0]].shape[1])
    fig = new_figure(max(6.0, 0.42 * T + 2.5), 1.0 + 1.55 * len(order))
    axes = fig.subplots(len(order), 1, sharex=True)
    axes = np.atleast_1d(axes)
    for ax, k in zip(axes, order, strict=True):
        a = acts[k][:, :U].T  # (units, T)
        gate = k in ("f", "i", "o", "z", "r")
        if gate:
            im = ax.imshow(a, aspect="auto", cmap="viridis", vmin=0, vmax=1,
                           interpolation="nearest")
        else:
            m = max(1.0, float(np.abs(a).max()))
            im = ax.imshow(a, aspect="auto", cmap="RdBu_r", vmin=-m, vmax=m,
                           interpolation="nearest")
        ax.set_ylabel(f"{names[k]}\nunit", fontsize=8)
        ax.set_yticks([0, U - 1])
        fig.colorbar(im, ax=ax, fraction=0.025, pad=0.01)
    axes[-1].set_xticks(range(T))
    axes[-1].set_xticklabels(list(words), rotation=60, ha="right", fontsize=9)
    fig.suptitle(title or "LSTM activations at each word (first units)")
    return save_figure(fig, path)


def plot_states(paths: Sequence[tuple[Sequence[str], np.ndarray]],
                path: str | os.PathLike[str] | None, title: str | None = None) -> Any:
    """Hidden-state trajectories: each (words, states (T, H)) drawn as a path in the plane of
    the first two principal components of all the states together."""
    if not paths:
        raise ValueError("plot_states needs at least one sentence")
    allh = np.concatenate([np.asarray(s, dtype=np.float64) for _, s in paths])
    Y, ratio, _ = pca_2d(allh)
    fig = new_figure(7.5, 6.0)
    ax = fig.add_subplot(1, 1, 1)
    span = np.ptp(Y, axis=0) + 1e-12
    labelled: list[np.ndarray] = []

    def taken(point: np.ndarray) -> int:
        """How many labels already sit within 3 % of the plot around ``point``: the next one
        goes that many lines higher, so words at nearby states do not overprint."""
        near = sum(1 for q in labelled if (np.abs((q - point) / span) < 0.03).all())
        labelled.append(point)
        return near

    start = 0
    for k, (words, states) in enumerate(paths):
        T = len(states)
        if len(words) != T:
            raise ValueError(f"sentence {k}: {len(words)} words for {T} states")
        y = Y[start:start + T]
        start += T
        label = " ".join(words[:5]) + (" ..." if T > 5 else "")
        line, = ax.plot(y[:, 0], y[:, 1], "-", lw=1.2, alpha=0.7, label=label)
        color = line.get_color()
        ax.scatter(y[:, 0], y[:, 1], s=18, color=color, zorder=3)
        ax.scatter(y[:1, 0], y[:1, 1], s=70, marker="o", facecolors="none",
                   edgecolors=color, zorder=4)
        for t in range(T - 1):
            ax.annotate("", xy=y[t + 1], xytext=y[t],
                        arrowprops=dict(arrowstyle="->", color=color, lw=1, alpha=0.8))
        for t, w in enumerate(words):
            ax.annotate(w, y[t], textcoords="offset points", xytext=(4, 4 + 9 * taken(y[t])),
                        fontsize=8, color=color)
    ax.legend(fontsize=8, title="sentence (o = first word)", title_fontsize=8)
    ax.set_xlabel(f"PC1 ({100 * ratio[0]:.0f}% of the variance)")
    ax.set_ylabel(f"PC2 ({100 * ratio[1]:.0f}% of the variance)")
    ax.grid(True, alpha=0.3)
    ax.set_title(title or "hidden state h_t after each word (PCA of all states)")
    return save_figure(fig, path)


# -- attention -----------------------------------------------------------------------------------
def plot_attention(weights: np.ndarray, source: Sequence[str], output: Sequence[str],
                   path: str | os.PathLike[str] | None, title: str | None = None) -> Any:
    """Heatmap of attention weights (len(output), len(source)): source characters (words) on
    the x axis, the generated ones on the y axis, as the book's ``visualize_attention``."""
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(output), len(source)):
        raise ValueError(f"attention weights of shape {w.shape} do not fit {len(output)} "
                         f"output and {len(source)} source tokens")
    fig = new_figure(max(4.0, 0.3 * len(source) + 1.5), max(3.0, 0.3 * len(output) + 1.2))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(w, cmap="gray_r", vmin=0.0, vmax=1.0, aspect="auto")
    shown = [repr(t)[1:-1] if t.strip() else "␣" for t in source]
    ax.set_xticks(range(len(source)), shown, fontsize=8)
    ax.set_yticks(range(len(output)), [t if t.strip() else "␣" for t in output], fontsize=8)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title or "attention weights", fontsize=9)
    return save_figure(fig, path)
