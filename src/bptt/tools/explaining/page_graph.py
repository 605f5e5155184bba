"""The explainer page's graph and step-through for each kind of model, from one real forward and
backward pass of the model's own layers:

- ``rows``: a layer's output at each of its steps (a row of nodes; ``level`` is its height in the
  drawing, ``offset`` the column of its first step), each node's value and gradient dL/d(node),
  and the layer's equations;
- ``edges``: which node feeds which (``recurrent`` along time, ``attention`` from every encoder
  state to a context vector, weighted by the mean attention weight);
- ``frames``: the step-through, forward then backward. A frame lights nodes and edges and shows
  heatmaps; where a state's gradient has two sources (from above and from the next step) the
  frame shows both and their sum, the book's figure of the branching gradient.

Three views: a language model (layers x T steps), a seq2seq model (the encoder's T_s steps,
then the decoder's T_t steps, attention between them) and a feed-forward net (one column,
layer by layer). Texts are keys of the page's translations with their arguments.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...backend import array_module, to_numpy
from ...nn.registry import spec_of
from .equations import layer_equations
from .flow import step_cell


def as_list(a: Any) -> list:
    """A JSON-able nested list of float64 values (finite; the page prints them)."""
    return np.asarray(to_numpy(a), dtype=np.float64).round(12).tolist()


def _equations(layer: Any) -> dict[str, Any]:
    eq = layer_equations(layer)
    return {"layer": eq.layer, "summary": eq.summary, "forward": eq.forward,
            "backward": eq.backward, "forward_note": eq.forward_note,
            "backward_note": eq.backward_note}


def _text(key: str, **args: Any) -> list:
    """A text of the page: a key of its translations and the arguments it fills in."""
    return [key, args]


def _heat(name: list, key: str, matrix: Any) -> dict[str, Any]:
    return {"heat": name, "key": key, "matrix": as_list(matrix)}


def _row(key: str, label: str, layer: Any, shape: str, level: int, values: list,
         grads: list | None, offset: int = 0, cell: bool = False) -> dict[str, Any]:
    return {"key": key, "label": label, "shape": shape, "level": level, "offset": offset,
            "layer": layer if isinstance(layer, str) else type(layer).__name__,
            "value": values, "grad": grads,
            "equations": None if isinstance(layer, str) else _equations(layer),
            "cell_equations": _equations(spec_of(layer).step) if cell else None}


def replay(layer: Any, xs: Any, hs: Any, dhs: Any, h0: Any = None) -> dict[str, Any]:
    """Forward and backward of ``layer`` one step at a time with its cell, from the state h0
    (zeros if None; a cell state starts at zeros): the states, and the gradient at each h_t
    split into the part from above (dhs[:, t]) and the part from h_{t+1}. ``replay_ok``: the
    replay gave the layer's own states and ``dh`` back."""
    spec = spec_of(layer)
    xp = array_module(layer.params[0])  # the cell computes where the layer's weights live
    xs, hs, dhs = (xp.asarray(a) for a in (xs, hs, dhs))
    N, T, H = xs.shape[0], xs.shape[1], hs.shape[2]
    zeros = spec.zero_state(xp, N, H, hs.dtype)
    state = (zeros[0] if h0 is None else xp.asarray(h0, dtype=hs.dtype), *zeros[1:])
    cells, states = [], []
    for t in range(T):
        cell = step_cell(spec, layer)
        state = spec.forward(cell, xs[:, t], state)
        cells.append(cell)
        states.append(state)
    dstate = zeros
    from_next, total = [None] * T, [None] * T
    for t in reversed(range(T)):
        from_next[t] = dstate[0]
        total[t] = dhs[:, t] + dstate[0]
        _, dstate = spec.backward(cells[t], (total[t], *dstate[1:]))
    same_states = all(np.allclose(to_numpy(states[t][0]), to_numpy(hs[:, t]), atol=1e-6)
                      for t in range(T))
    return {"cell": spec.step.__name__, "has_cell_state": spec.has_cell_state,
            "from_loss": [as_list(dhs[:, t]) for t in range(T)],
            "from_next": [as_list(g) for g in from_next],
            "total": [as_list(g) for g in total],
            "dh0": as_list(dstate[0]), "layer_dh": as_list(layer.dh),
            "replay_ok": bool(same_states and np.allclose(to_numpy(dstate[0]),
                                                           to_numpy(layer.dh), atol=1e-6))}


def token_losses(scores: Any, ts: Any) -> np.ndarray:
    """-log softmax(scores)[..., t] for every position, float64 (ignored labels -1: 0)."""
    s = to_numpy(scores).astype(np.float64)
    z = s - s.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    t = to_numpy(ts).astype(np.int64)
    out = -np.take_along_axis(logp, np.maximum(t, 0)[..., None], axis=-1)[..., 0]
    return np.where(t < 0, 0.0, out)


def _columns(a: Any) -> list:
    return [as_list(a[:, t]) for t in range(a.shape[1])]


def _ids_column(ids: Any) -> list:
    ids = to_numpy(ids)
    return [as_list(ids[:, t][:, None]) for t in range(ids.shape[1])]


def _vertical_edges(rows: list[dict[str, Any]], count: int, recurrent: set[str]) -> list[dict]:
    """Each row's node at t feeds the next row's at t; a recurrent row's h_{t-1} feeds h_t."""
    edges = []
    for t in range(count):
        for lower, upper in zip(rows, rows[1:], strict=False):
            edges.append({"from": f"{lower['key']}_{t}", "to": f"{upper['key']}_{t}", "cls": ""})
        for row in rows:
            if row["key"] in recurrent and t > 0:
                edges.append({"from": f"{row['key']}_{t - 1}", "to": f"{row['key']}_{t}",
                              "cls": "recurrent"})
    return edges


def _forward_frame(t: int, nodes: list[str], edges: list[dict], panel: list,
                   title: list | None = None) -> dict[str, Any]:
    lit = [[e["from"], e["to"]] for e in edges if e["to"] in nodes]
    return {"phase": "forward", "t": t, "title": title or _text("forwardAt", t=t),
            "active": nodes, "grad": [], "edges": lit, "panel": panel}


def _backward_frame(t: int, grad: list[str], edges: list[list[str]], panel: list,
                    title: list | None = None) -> dict[str, Any]:
    return {"phase": "backward", "t": t, "title": title or _text("backwardAt", t=t),
            "active": [], "grad": grad, "edges": edges, "panel": panel}


def _gradient_sum(rep: dict[str, Any], t: int, T: int, h: str, from_above: list) -> list:
    """from above + from h_{t+1} = dL/dh_t, as heatmaps."""
    return [{"heat": from_above, "key": "from-loss", "matrix": rep["from_loss"][t]},
            {"op": "+"},
            {"heat": _text("fromNext", h=h, n=t + 1) if t + 1 < T else _text("fromNone"),
             "key": "from-next", "matrix": rep["from_next"][t]},
            {"op": "="},
            {"heat": _text("total", h=h, t=t), "key": "total", "matrix": rep["total"][t]}]


# -- a language model ---------------------------------------------------------------------------
def lm_view(obj: Any, xs: Any, ts: Any) -> dict[str, Any]:
    """Rows x, e, h (each recurrent layer), s, L over T steps; the step-through follows the top
    recurrent layer."""
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
    T = int(xs.shape[1])
    embed_i = obj.layers.index(obj.embed)
    rows = [_row("x", "x", "input", "(N,)", 0, _ids_column(xs), None),
            _row("e", "e", obj.embed, "(N, D)", 1, _columns(outs[embed_i]),
                 _columns(grads[embed_i]))]
    replays = []
    for k, rnn in enumerate(obj.rnn_layers):
        i = obj.layers.index(rnn)
        rep = replay(rnn, to_numpy(ins[i]), to_numpy(outs[i]), to_numpy(grads[i]))
        replays.append(rep)
        # dL/dh_t: from above (the scores, or the next layer) and from h_{t+1}, summed
        rows.append(_row(f"h{k}", "h" if len(obj.rnn_layers) == 1 else f"h{k + 1}", rnn,
                         "(N, H)", len(rows), _columns(outs[i]), rep["total"], cell=True))
    rows.append(_row("s", "s", obj.affine, "(N, V)", len(rows), _columns(outs[-1]),
                     _columns(grads[-1])))
    rows.append(_row("L", "L", obj.loss_layer, "(N,)", len(rows),
                     _columns(token_losses(outs[-1], ts)[:, :, None]), None))
    obj.reset_state()
    top = rows[-3]
    h, rep = top["label"], replays[-1]
    edges = _vertical_edges(rows, T, {r["key"] for r in rows[2:-2]})
    frames = []
    for t in range(T):
        frames.append(_forward_frame(t, [f"{r['key']}_{t}" for r in rows], edges, [
            _heat(_text("raw", text=f"{h}{t}"), "value", top["value"][t]),
            {"hint": _text("computedFrom", h=h, t=t, p=t - 1) if t else
             _text("computedFirst", h=h)}]))
    for t in reversed(range(T)):
        hk = top["key"]
        grad = [f"{hk}_{t}", f"s_{t}"] + ([f"{hk}_{t + 1}"] if t + 1 < T else [])
        lit = [[f"{hk}_{t}", f"s_{t}"]] + ([[f"{hk}_{t}", f"{hk}_{t + 1}"]] if t + 1 < T else [])
        panel = _gradient_sum(rep, t, T, h, _text("fromLoss", t=t))
        if t == 0:
            panel.append({"heat": _text("initial"), "key": "dh0", "matrix": rep["dh0"]})
        frames.append(_backward_frame(t, grad, lit, panel))
    return {"view": "lm", "loss": loss, "T": T, "rows": rows, "edges": edges, "frames": frames,
            "chosen": f"{top['key']}_0", "replay": rep, "replays": replays,
            "summary": _text("summary", N=int(xs.shape[0]), T=T, loss=loss, cell=rep["cell"],
                             replay=rep["replay_ok"]),
            "xs": to_numpy(xs).tolist(), "ts": to_numpy(ts).tolist()}


# -- a seq2seq model ----------------------------------------------------------------------------
class _Recorder:
    """Records what each named layer's forward got and gave and what its backward got and gave
    (copies), while the model runs its own forward and backward."""

    def __init__(self, layers: dict[str, Any]) -> None:
        self.layers = layers
        self.ins: dict[str, tuple] = {}
        self.outs: dict[str, Any] = {}
        self.douts: dict[str, Any] = {}
        self.dins: dict[str, Any] = {}

    def __enter__(self) -> _Recorder:
        for name, layer in self.layers.items():
            forward, backward = layer.forward, layer.backward

            def fwd(*args: Any, _f: Any = forward, _n: str = name, **kw: Any) -> Any:
                self.ins[_n] = tuple(_copy(a) for a in args)
                out = _f(*args, **kw)
                self.outs[_n] = _copy(out)
                return out

            def bwd(dout: Any, *args: Any, _b: Any = backward, _n: str = name,
                    **kw: Any) -> Any:
                self.douts[_n] = _copy(dout)
                din = _b(dout, *args, **kw)
                self.dins[_n] = _copy(din)
                return din

            layer.forward, layer.backward = fwd, bwd
        return self

    def __exit__(self, *exc: Any) -> None:
        for layer in self.layers.values():
            del layer.forward, layer.backward  # the class's methods again


def _copy(a: Any) -> Any:
    if isinstance(a, tuple):
        return tuple(_copy(x) for x in a)
    return None if a is None else np.array(to_numpy(a), copy=True)


def seq2seq_view(model: Any, xs: Any, ts: Any) -> dict[str, Any]:
    """Encoder rows x, e, h over T_s steps; decoder rows y, e', h', (c), s, L over T_t steps;
    the handoff of the encoder's last state, attention edges; the step-through runs forward
    through encoder and decoder, then backward through the decoder and the encoder."""
    enc, dec = model.encoder, model.decoder
    if enc.bidirectional:
        raise ValueError("the explainer page draws one-directional encoders; this model's "
                         "encoder is bidirectional: try `bptt explain` for its text")
    layers = {"enc.embed": enc.embed, "enc.rnn": enc.rnn.layers[-1], "dec.embed": dec.embed,
              "dec.rnn": dec.rnn.layers[-1], "dec.affine": dec.affine, "loss": model.loss_layer}
    attention = dec.attention
    if attention is not None:
        layers["dec.attention"] = attention
    with _Recorder(layers) as rec:
        loss = float(model.forward(xs, ts))
        model.backward()
    Ts, Tt = int(xs.shape[1]), int(ts.shape[1]) - 1
    hs_enc, hs_dec = rec.outs["enc.rnn"], rec.outs["dec.rnn"]
    enc_rep = replay(enc.rnn.layers[-1], rec.ins["enc.rnn"][0], hs_enc, rec.douts["enc.rnn"])
    h0 = hs_enc[:, -1] if dec.rnn.num_layers == 1 else None  # only layer 0 starts from h
    dec_rep = replay(dec.rnn.layers[-1], rec.ins["dec.rnn"][0], hs_dec, rec.douts["dec.rnn"],
                     h0=h0)
    off = Ts + 2  # the decoder's first column: two columns after the encoder's last
    rows = [_row("x", "x", "input", "(N,)", 0, _ids_column(xs), None),
            _row("ex", "e", enc.embed, "(N, D)", 1, _columns(rec.outs["enc.embed"]),
                 _columns(rec.douts["enc.embed"])),
            _row("h", "h", enc.rnn.layers[-1], "(N, H)", 2, _columns(hs_enc), enc_rep["total"],
                 cell=True)]
    ts_in = rec.ins["dec.embed"][0]
    dec_rows = [_row("y", "y", "input", "(N,)", 0, _ids_column(ts_in), None, off),
                _row("ey", "e'", dec.embed, "(N, D)", 1, _columns(rec.outs["dec.embed"]),
                     _columns(rec.douts["dec.embed"]), off),
                _row("d", "h'", dec.rnn.layers[-1], "(N, H)", 2, _columns(hs_dec),
                     dec_rep["total"], off, cell=True)]
    weights = None
    if attention is not None:
        weights = to_numpy(attention.attention_weights).astype(np.float64)  # (N, Tt, Ts)
        dc = rec.douts["dec.attention"]
        dec_rows.append(_row("c", "c", attention, "(N, H)", 3,
                             _columns(rec.outs["dec.attention"]), _columns(dc), off))
    dec_rows.append(_row("s", "s", dec.affine, "(N, V)", len(dec_rows),
                         _columns(rec.outs["dec.affine"]), _columns(rec.douts["dec.affine"]),
                         off))
    dec_rows.append(_row("L", "L", model.loss_layer, "(N,)", len(dec_rows),
                         _columns(token_losses(rec.outs["dec.affine"], ts[:, 1:])[:, :, None]),
                         None, off))
    edges = _vertical_edges(rows, Ts, {"h"})
    edges += [e for e in _vertical_edges(dec_rows, Tt, {"d"})
              if not (e["from"].startswith("c_") or e["to"].startswith("c_"))]
    edges.append({"from": f"h_{Ts - 1}", "to": "d_0", "cls": "recurrent handoff"})
    for t in range(Tt):
        if weights is not None:
            edges.append({"from": f"d_{t}", "to": f"c_{t}", "cls": ""})
            edges.append({"from": f"c_{t}", "to": f"s_{t}", "cls": ""})
            edges.append({"from": f"d_{t}", "to": f"s_{t}", "cls": "skip"})
            edges += [{"from": f"h_{j}", "to": f"c_{t}", "cls": "attention",
                       "weight": float(weights[:, t, j].mean())} for j in range(Ts)]
        elif model.kind == "peeky":
            edges.append({"from": f"h_{Ts - 1}", "to": f"d_{t}", "cls": "attention",
                          "weight": 1.0})
    rows += dec_rows
    frames = []
    for j in range(Ts):
        frames.append(_forward_frame(j, [f"{r['key']}_{j}" for r in rows[:3]], edges, [
            _heat(_text("raw", text=f"h{j}"), "value", hs_enc[:, j]),
            {"hint": _text("computedFrom", h="h", t=j, p=j - 1) if j else
             _text("computedFirst", h="h")}], _text("encoderAt", t=j)))
    for t in range(Tt):
        panel = [_heat(_text("raw", text=f"h'{t}"), "value", hs_dec[:, t]),
                 {"hint": _text("decoderFrom", t=t, p=t - 1) if t else
                  _text("decoderFirst", last=Ts - 1)}]
        if weights is not None:
            panel += [_heat(_text("weightsAt", t=t), "weights", weights[:, t]),
                      {"hint": _text("contextIs", t=t)}]
        frames.append(_forward_frame(t, [f"{r['key']}_{t}" for r in dec_rows], edges, panel,
                                     _text("decoderAt", t=t)))
    for t in reversed(range(Tt)):
        grad = [f"d_{t}", f"s_{t}"] + ([f"c_{t}"] if weights is not None else []) + (
            [f"d_{t + 1}"] if t + 1 < Tt else [])
        lit = ([[f"d_{t}", f"c_{t}"]] if weights is not None else []) + [[f"d_{t}", f"s_{t}"]] \
            + ([[f"d_{t}", f"d_{t + 1}"]] if t + 1 < Tt else [])
        panel = _gradient_sum(dec_rep, t, Tt, "h'", _text("fromOutput", t=t))
        if t == 0:
            panel.append({"heat": _text("toEncoder", last=Ts - 1), "key": "dh-decoder",
                          "matrix": dec_rep["dh0"]})
        frames.append(_backward_frame(t, grad, lit, panel, _text("decoderBackAt", t=t)))
    for j in reversed(range(Ts)):
        grad = [f"h_{j}"] + ([f"h_{j + 1}"] if j + 1 < Ts else ["d_0"])
        lit = [[f"h_{j}", f"h_{j + 1}" if j + 1 < Ts else "d_0"]]
        if weights is not None:
            grad += [f"c_{t}" for t in range(Tt)]
            lit += [[f"h_{j}", f"c_{t}"] for t in range(Tt)]
        last = j == Ts - 1
        above = (_text("fromAttentionAndStart" if last else "fromAttention", t=j)
                 if weights is not None else
                 _text("fromDecoderState") if last else _text("fromNothing"))
        panel = _gradient_sum(enc_rep, j, Ts, "h", above)
        if j == 0:
            panel.append({"heat": _text("initial"), "key": "dh0", "matrix": enc_rep["dh0"]})
        frames.append(_backward_frame(j, grad, lit, panel, _text("encoderBackAt", t=j)))
    ok = enc_rep["replay_ok"] and dec_rep["replay_ok"]
    return {"view": "seq2seq", "loss": loss, "T": Ts + Tt, "Ts": Ts, "Tt": Tt, "rows": rows,
            "edges": edges, "frames": frames, "chosen": "d_0",
            "replay": dec_rep, "replays": [enc_rep, dec_rep],
            "attention": None if weights is None else as_list(weights),
            "summary": _text("summarySeq2seq", kind=model.kind, N=int(xs.shape[0]), Ts=Ts,
                             Tt=Tt, loss=loss, cell=enc_rep["cell"], replay=ok),
            "xs": to_numpy(xs).tolist(), "ts": to_numpy(ts).tolist()}


# -- a feed-forward net ---------------------------------------------------------------------------
def mlp_view(net: Any, x: Any, t: Any) -> dict[str, Any]:
    """One column: x, then each layer's output, then the loss of each example; the
    step-through is the chain rule, layer by layer."""
    net.eval()
    outs, grads = [x], []
    for layer in net.layers.values():
        outs.append(layer.forward(outs[-1]))
    loss = float(net.last_layer.forward(outs[-1], t))
    dout = net.last_layer.backward(1)
    for layer in reversed(net.layers.values()):
        grads.append(to_numpy(dout).copy())
        dout = layer.backward(dout)
    grads.append(to_numpy(dout).copy())
    grads.reverse()  # dL/dx, then dL/d(each layer's output)
    rows = [_row("x", "x", "features", "(N, D)", 0, [as_list(x)], [as_list(grads[0])])]
    for k, (name, layer) in enumerate(net.layers.items()):
        rows.append(_row(f"a{k}", name.lower(), layer, f"(N, {outs[k + 1].shape[1]})", k + 1,
                         [as_list(outs[k + 1])], [as_list(grads[k + 1])]))
    rows.append(_row("L", "L", net.last_layer, "(N,)", len(rows),
                     [as_list(token_losses(outs[-1], t)[:, None])], None))
    edges = _vertical_edges(rows, 1, set())
    frames = []
    for k, row in enumerate(rows):
        prev = rows[k - 1]["label"] if k else None
        frames.append(_forward_frame(k, [f"{row['key']}_0"], edges, [
            _heat(_text("raw", text=row["label"]), "value", row["value"][0]),
            {"hint": _text("layerOf", out=row["label"], layer=row["layer"], x=prev) if prev
             else _text("theInput")}], _text("layerForward", layer=row["label"])))
    for k in reversed(range(len(rows) - 1)):
        row, above = rows[k], rows[k + 1]
        frames.append(_backward_frame(k, [f"{row['key']}_0", f"{above['key']}_0"],
                                      [[f"{row['key']}_0", f"{above['key']}_0"]], [
            _heat(_text("grad", label=row["label"]), "grad", row["grad"][0]),
            {"hint": _text("chainRule", x=row["label"], y=above["label"],
                           layer=above["layer"])}], _text("layerBackward", layer=row["label"])))
    return {"view": "mlp", "loss": loss, "T": 1, "rows": rows, "edges": edges,
            "frames": frames, "chosen": f"{rows[1]['key']}_0",
            "summary": _text("summaryMlp", N=int(x.shape[0]), loss=loss),
            "ts": to_numpy(t).tolist()}
