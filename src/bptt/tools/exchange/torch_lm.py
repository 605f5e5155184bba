"""Whole language models to and from PyTorch, laid out like PyTorch's word_language_model.

PyTorch's example (``examples/word_language_model/model.py``, ``RNNModel``) names its parts
``encoder`` (nn.Embedding), ``rnn`` (one nn.LSTM/GRU/RNN of ``nlayers``), ``decoder``
(nn.Linear, its weight the encoder's when tied), with dropout between them. The map:

    encoder.weight (V, D)          = embed.W
    rnn.weight_ih_l{k}, ...        = rnn{k}.Wx, Wh, b  (blocks reordered: tools.exchange.interop)
    decoder.weight (V, H)          = affine.W.T        (the encoder's weight when tied)
    decoder.bias (V,)              = affine.b

:func:`torch_language_model` builds such a module holding a bptt model's weights;
:func:`state_dict_of` gives the ``state_dict`` as NumPy arrays; :func:`from_state_dict`
builds a :class:`~bptt.models.rnnlm.LanguageModel` from one (its sizes and layers read from
the shapes; the cell from the gate count unless given). ``torch`` is imported only inside the
functions that build torch objects. A cell without a PyTorch module is refused in one line;
PyTorch's GRU is bptt's ``reset_after=True`` variant (``LanguageModel(cell="gru",
cell_options={"reset_after": True})``), and the book's GRU is refused with that hint.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ...backend import to_numpy
from ...models.rnnlm import LanguageModel
from ...nn.registry import CELLS, get_cell
from .interop import import_torch, params_from_torch, to_torch, torch_mode_of


def state_dict_of(model: LanguageModel) -> dict[str, np.ndarray]:
    """The word_language_model ``state_dict`` of ``model`` as NumPy arrays (module docstring)."""
    if model.weight_drop or model.last_hidden:
        raise ValueError("a model with weight drop or a narrower last layer has no "
                         "word_language_model layout (one nn.LSTM of equal layers)")
    out = {"encoder.weight": np.array(to_numpy(model.embed.params[0]))}
    for k, layer in enumerate(model.rnn_layers):
        for key, value in to_torch(layer).items():
            out[f"rnn.{key.replace('_l0', f'_l{k}')}"] = value
    out["decoder.weight"] = np.ascontiguousarray(to_numpy(model.affine.params[0]).T)
    out["decoder.bias"] = np.array(to_numpy(model.affine.params[1]))
    return out


def torch_language_model(model: LanguageModel) -> Any:
    """A torch ``nn.Module`` laid out like word_language_model's RNNModel, with the weights of
    ``model`` (its dtype; dropout ratio kept; tied when the model is)."""
    torch = import_torch()
    nn = torch.nn
    spec, mode = torch_mode_of(model.rnn_layers[0])  # one clear line if torch has no such layer
    kind = mode.split("_")[0]  # RNN_TANH -> nn.RNN(nonlinearity="tanh"), LSTM, GRU
    extra = {k: v for k, v in spec.torch.modes[mode].items() if k == "nonlinearity"}
    V, D, H, L = model.vocab_size, model.embed_size, model.hidden_size, model.num_layers

    class RNNModel(nn.Module):
        """word_language_model's RNNModel: encoder -> dropout -> rnn -> dropout -> decoder."""

        def __init__(self) -> None:
            super().__init__()
            self.drop = nn.Dropout(model.dropout)
            self.encoder = nn.Embedding(V, D)
            self.rnn = getattr(nn, kind)(D, H, L, dropout=model.dropout if L > 1 else 0.0,
                                         batch_first=True, **extra)
            self.decoder = nn.Linear(H, V)
            if model.tie_weights:
                self.decoder.weight = self.encoder.weight

        def forward(self, xs: Any, state: Any = None) -> tuple[Any, Any]:
            h, state = self.rnn(self.drop(self.encoder(xs)), state)
            return self.decoder(self.drop(h)), state

    module = RNNModel()
    dtype = torch.float64 if model.dtype == np.float64 else torch.float32
    module.to(dtype)
    module.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)).to(dtype)
                            for k, v in state_dict_of(model).items()})
    return module


def from_state_dict(state: dict[str, Any], cell: str | None = None, tie: bool = False,
                    dtype: Any = "float32", source: Any = "the state_dict") -> LanguageModel:
    """A LanguageModel from a word_language_model ``state_dict`` (tensors or arrays).

    ``cell``: a registered cell with a PyTorch layout (default: the first with as many gate
    blocks: lstm for 4, gru for 3, rnn for 1); ``tie``: tie the
    output to the embedding (a state_dict cannot say that the two are one array: only that
    their values are equal, which is checked)."""
    arrays = {k: np.asarray(to_numpy(v.detach().cpu().numpy() if hasattr(v, "detach") else v))
              for k, v in state.items()}
    for key in ("encoder.weight", "rnn.weight_ih_l0", "rnn.weight_hh_l0", "decoder.weight"):
        if key not in arrays:
            raise ValueError(f"{source} has no {key!r}: not a word_language_model state_dict "
                             f"(keys: {', '.join(sorted(arrays)[:6])}...)")
    layers = sorted({int(m.group(1)) for k in arrays
                     if (m := re.fullmatch(r"rnn\.weight_ih_l(\d+)", k))})
    if layers != list(range(len(layers))) or any(k.endswith("_reverse") for k in arrays):
        raise ValueError(f"{source}: the rnn layers are {layers} (or bidirectional); a language "
                         f"model needs layers 0..L-1 in one direction")
    for k, a in arrays.items():
        if a.dtype.kind not in "fiu" or a.size == 0:
            raise ValueError(f"{source}: {k} is an empty or non-numeric array ({a.dtype}, "
                             f"{a.shape})")
        if not np.isfinite(a).all():
            raise ValueError(f"{source}: {k} holds NaN or infinite values; the model diverged "
                             f"before it was saved (or the file was edited)")
        if (k.startswith("rnn.weight_") or k in ("encoder.weight", "decoder.weight")) \
                and a.ndim != 2:
            raise ValueError(f"{source}: {k} has shape {a.shape}; a weight matrix is 2-D")
    V, D = arrays["encoder.weight"].shape
    H = arrays["rnn.weight_hh_l0"].shape[1]
    if arrays["rnn.weight_hh_l0"].shape[0] % H:
        raise ValueError(f"{source}: rnn.weight_hh_l0 has shape "
                         f"{arrays['rnn.weight_hh_l0'].shape}: not gate blocks of (H, H)")
    G = arrays["rnn.weight_hh_l0"].shape[0] // H
    if cell is None:
        cell = next((n for n, s in CELLS.items() if s.torch is not None and s.gates == G), None)
    if cell is None or get_cell(cell).gates != G:
        raise ValueError(f"{source}: {G} gate blocks of H={H} do not fit the cell {cell!r}")
    if tie and not np.array_equal(arrays["decoder.weight"], arrays["encoder.weight"]):
        raise ValueError(f"{source}: tie asked for, but decoder.weight is not encoder.weight")
    spec = get_cell(cell)
    if spec.torch is None:
        raise ValueError(f"the {cell!r} cell has no PyTorch counterpart")
    options = next(iter(spec.torch.modes.values()))  # torch's variant: GRU reset_after...
    model = LanguageModel(V, D, H, cell=cell, num_layers=len(layers), tie_weights=tie,
                          dtype=dtype, seed=0, cell_options=options or None)
    named = {"embed.W": arrays["encoder.weight"]}
    for k in layers:
        ps = params_from_torch(cell, *(arrays.get(f"rnn.{n}_l{k}") for n in
                                       ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
        for n, p in zip(("Wx", "Wh", "b", "bh"), ps, strict=False):
            named[f"rnn{k}.{n}"] = p
    if not tie:
        named["affine.W"] = arrays["decoder.weight"].T
    named["affine.b"] = arrays.get("decoder.bias", np.zeros(V))
    model.set_params(named, source=source)
    return model
