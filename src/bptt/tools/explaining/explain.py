"""``bptt explain``: run one small batch through a model and show what every layer does.

For each layer, in the order ``forward`` calls them and then in the reversed order of
``backward``: the shapes that really flowed in and out (with the shape letters N, T, D, H, V),
the forward and backward equations (parsed from the layer's docstring by
:mod:`bptt.tools.explaining.equations`, so they are the ones the class documents), where each
array came from and where its gradient goes. For the recurrent Time layers (TimeRNN, TimeLSTM,
TimeGRU) the backward pass is also shown one time step at a time, numbered in execution order::

    (3) t=2  dh = dhs[:, 2] from (2) + dh_next from t=3 (zero: the window ends here)
             -> dxs[:, 2] to (6) TimeEmbedding,  dh_prev to (4) t=1

The per-step numbers come from replaying the layer with the one-step cells of
:mod:`bptt.nn.cells` on the recorded inputs; the replay is checked against the layer's own
outputs and input gradients (``Call.replay_ok``).

Python::

    from bptt import explain
    ex = explain("simple-rnnlm", N=2, T=3)
    print(ex.to_text())          # or to_markdown(), to_json(); ex.forward[0].outputs[0].shape
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...backend import to_numpy
from .flow import build_calls
from .models import build
from .records import DEFAULT_DIMS, Tracer, model_layers
from .report import Explanation

__all__ = ["DEFAULT_DIMS", "Explanation", "Tracer", "explain", "model_layers", "trace"]


def _run(model: Any, batch: tuple) -> float | None:
    if hasattr(model, "forward") and hasattr(model, "backward"):
        loss = model.forward(*batch)
        model.backward()
    elif hasattr(model, "loss_and_gradient"):  # bptt's DL1 nets
        loss, _ = model.loss_and_gradient(*batch)
    elif hasattr(model, "gradient"):  # the book's nets: gradient() runs loss(), then backward
        model.gradient(*batch)
        last = getattr(model, "lastLayer", None) or getattr(model, "last_layer", None)
        loss = getattr(last, "loss", None)
    else:
        raise TypeError(f"{type(model).__name__} has neither forward/backward nor gradient")
    try:
        return float(to_numpy(loss)) if loss is not None else None
    except (TypeError, ValueError):
        return None


def trace(model: Any, batch: tuple, dims: Mapping[str, int] | None = None,
          name: str | None = None) -> Explanation:
    """Run ``model`` once forward and backward on ``batch`` and explain every layer call.

    ``batch`` is what ``model.forward`` takes, e.g. ``(xs, ts)``; ``dims`` maps shape letters
    to sizes (``{"N": 2, "T": 3, "V": 11, "D": 4, "H": 5}``) and is only used to write shapes
    with letters. The model's layers are wrapped for the run and restored afterwards.
    """
    dims = dict(dims or {})
    layers = model_layers(model)
    with Tracer(layers) as tr:
        loss = _run(model, batch)
    fwd, bwd, cells = build_calls(tr.records, dims)
    return Explanation(model=name or type(model).__name__, dims=dims, loss=loss,
                       forward=fwd, backward=bwd, cells=cells)


def explain(model: Any, batch: tuple | None = None, *, N: int | None = None,
            T: int | None = None, dims: Mapping[str, int] | None = None,
            seed: int = 0, text: str | None = None) -> Explanation:
    """Explain a model: a name (``simple-rnnlm``, ``rnnlm``, ``rnn``, ``lstm``, ``gru``,
    ``better-rnnlm``, ``two-layer-net``), a checkpoint directory, or a model object with
    ``batch``.

    N and T set the batch of the built-in models (default 2 and 3); ``dims`` overrides sizes;
    ``text`` runs a checkpoint on that sentence instead of random word ids.
    """
    if isinstance(model, str):
        obj, batch, d = build(model, N=N, T=T, dims=dims, seed=seed, text=text)
        return trace(obj, batch, d, name=model)
    if batch is None:
        raise ValueError("explain(model_object) needs the batch to run, e.g. explain(model, "
                         "(xs, ts)); or pass a model name such as 'rnnlm'")
    d = dict(dims or {})
    first = batch[0]
    if hasattr(first, "shape") and first.ndim >= 1:
        d.setdefault("N", int(first.shape[0]))
        if first.ndim >= 2 and first.dtype.kind in "iu":
            d.setdefault("T", int(first.shape[1]))
    return trace(model, tuple(batch), d)
