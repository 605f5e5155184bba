"""A language model as an ONNX graph with the standard RNN/LSTM/GRU operators.

    ids (N, T) int64 -> Gather(embed.W) -> Transpose (T, N, D)
        -> [LSTM | GRU | RNN](W, R, B, initial_h[, initial_c])  per layer  -> Y (T, 1, N, H)
        -> Squeeze -> ... -> Transpose (N, T, H) -> MatMul(affine.W) + affine.b -> logits

Inputs ``ids`` and, per layer k, ``h{k}`` (and ``c{k}`` for LSTM) of shape (1, N, H); outputs
``logits`` (N, T, V) and ``h{k}_out`` (``c{k}_out``): feed the states back to generate token
by token. N and T are free (named axes). Dropout is left out (an exported model evaluates).

Weights (the cell's registry entry holds the layout, :class:`bptt.nn.cell_spec.OnnxLayout`):
ONNX keeps W (1, G*H, D), R (1, G*H, H) with gate blocks along the rows and B (1, 2*G*H) =
[input biases, recurrent biases]; bptt keeps Wx (D, G*H), Wh (H, G*H), b (G*H,). So
W = Wx.T and R = Wh.T with the blocks reordered (LSTM: ONNX i, o, f, c from bptt f, g, i, o)
and signed (GRU: ONNX's z is 1 - bptt's z, so its block is negated); B = [b, 0], except the
reset-after GRU's candidate bias bh, which is the recurrent bias of the h block
(``linear_before_reset=1``). ``onnx`` is imported only here, lazily.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ...atomic import atomic_file
from ...backend import to_numpy
from ...nn.cell_spec import option_values
from ...nn.registry import CELLS, spec_of

OPSET = 17


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ValueError("ONNX export needs the onnx package: pip install 'bptt[onnx]'") \
            from None
    return onnx


def _blocks(a: np.ndarray, order: tuple[int, ...], signs: tuple[float, ...], H: int) -> Any:
    """Rows (G*H, ...) in bptt's block order -> the operator's order and signs."""
    return np.concatenate([s * a[k * H:(k + 1) * H] for k, s in zip(order, signs, strict=True)])


def layer_tensors(layer: Any) -> tuple[dict[str, np.ndarray], str, dict[str, Any]]:
    """(W, R, B arrays, operator name, attributes) of one recurrent Time layer."""
    spec = spec_of(layer)
    if spec is None:
        raise ValueError(f"{type(layer).__name__} is not a recurrent layer of a registered cell")
    if spec.onnx is None:
        have = ", ".join(n for n, s in CELLS.items() if s.onnx is not None)
        raise ValueError(f"the {spec.name!r} cell has no standard ONNX operator (cells with "
                         f"one: {have}); it cannot be exported to ONNX")
    if getattr(layer, "mask", None) is not None or hasattr(layer, "raw"):
        raise ValueError("a weight-dropped layer cannot be exported; export the model trained "
                         "without --weight-drop")
    lay = spec.onnx
    Wx, Wh, b = (to_numpy(p).astype(np.float32) for p in layer.params[:3])
    H, G = Wh.shape[0], spec.gates
    W = _blocks(Wx.T, lay.block_order, lay.signs, H)[None]  # (1, G*H, D)
    R = _blocks(Wh.T, lay.block_order, lay.signs, H)[None]  # (1, G*H, H)
    Rb = np.zeros(G * H, dtype=np.float32)
    if len(layer.params) > 3:  # the reset-after GRU's bh: the h block's recurrent bias
        Rb[(G - 1) * H:] = to_numpy(layer.params[3])
    B = np.concatenate([_blocks(b, lay.block_order, lay.signs, H), Rb])[None]  # (1, 2*G*H)
    attrs: dict[str, Any] = {"hidden_size": int(H)}
    for key, value in option_values(spec, layer).items():
        attrs.update(lay.attributes.get((key, value), {}))
    return {"W": W, "R": R, "B": B}, lay.op, attrs


def export_onnx(model: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` (a :class:`~bptt.models.rnnlm.LanguageModel`) as an ONNX file (module
    docstring); returns the path. The graph passes ``onnx.checker``."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    inits, nodes = [], []

    def const(name: str, a: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(a), name))
        return name

    V, H_in = model.vocab_size, None
    inputs = [helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", "T"])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", "T", V])]
    const("embed.W", to_numpy(model.embed.params[0]).astype(np.float32))
    nodes.append(helper.make_node("Gather", ["embed.W", "ids"], ["x_ntd"], axis=0))
    nodes.append(helper.make_node("Transpose", ["x_ntd"], ["x0"], perm=[1, 0, 2]))
    const("axis1", np.array([1], dtype=np.int64))
    x = "x0"
    for k, layer in enumerate(model.rnn_layers):
        tensors, op, attrs = layer_tensors(layer)
        H = tensors["R"].shape[2]
        names = [const(f"rnn{k}.{n}", a) for n, a in tensors.items()]
        states = [f"h{k}"] + ([f"c{k}"] if op == "LSTM" else [])
        for s in states:
            inputs.append(helper.make_tensor_value_info(s, TensorProto.FLOAT, [1, "N", H]))
            outputs.append(helper.make_tensor_value_info(f"{s}_out", TensorProto.FLOAT,
                                                         [1, "N", H]))
        ins = [x, *names, ""] + states  # "" : no sequence_lens
        outs = [f"y{k}", f"h{k}_out"] + ([f"c{k}_out"] if op == "LSTM" else [])
        nodes.append(helper.make_node(op, ins, outs, **attrs))
        nodes.append(helper.make_node("Squeeze", [f"y{k}", "axis1"], [f"x{k + 1}"]))
        x, H_in = f"x{k + 1}", H
    nodes.append(helper.make_node("Transpose", [x], ["h_nth"], perm=[1, 0, 2]))
    const("affine.W", to_numpy(model.affine.params[0]).astype(np.float32))  # (H, V)
    const("affine.b", to_numpy(model.affine.params[1]).astype(np.float32))
    nodes.append(helper.make_node("MatMul", ["h_nth", "affine.W"], ["scores"]))
    nodes.append(helper.make_node("Add", ["scores", "affine.b"], ["logits"]))
    graph = helper.make_graph(nodes, "bptt_language_model", inputs, outputs, inits)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                   producer_name="bptt")
    onnx_model.doc_string = f"{model} (hidden {H_in}); inputs ids, h/c per layer"
    onnx.checker.check_model(onnx_model)
    path = Path(path)
    with atomic_file(path) as f:
        f.write(onnx_model.SerializeToString())
    return path


def _stack_tensors(layer: Any) -> tuple[dict[str, np.ndarray], str, dict[str, Any], int]:
    """(W, R, B, op, attributes, directions) of a Time layer or a TimeBidirectional."""
    dirs = ([layer.forward_layer, layer.backward_layer] if hasattr(layer, "forward_layer")
            else [layer])
    parts = [layer_tensors(d) for d in dirs]
    tensors = {k: np.concatenate([p[0][k] for p in parts]) for k in ("W", "R", "B")}
    _, op, attrs = parts[0]
    attrs = dict(attrs, direction="bidirectional" if len(dirs) == 2 else "forward")
    if "activations" in attrs:  # one list entry per direction
        attrs["activations"] = list(attrs["activations"]) * len(dirs)
    return tensors, op, attrs, len(dirs)


def export_estimator_onnx(estimator: Any, path: str | os.PathLike[str]) -> Path:
    """Write a fitted :class:`~bptt.train.estimators.SequenceRegressor` or
    ``SequenceClassifier`` as ONNX: input ``X`` (N, T, D) float32 (whole sequences: no
    lengths), output ``outputs`` (N, K) or per step (N, T, K) as ``_raw`` gives them, and for a
    classifier ``probabilities`` too. Bidirectional layers become one operator with
    ``direction="bidirectional"``; many-to-one reads each direction's final state (``Y_h``),
    which is what :class:`~bptt.nn.sequence_layers.LastStep` reads."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    network = getattr(estimator, "network_", None)
    stack = getattr(network, "encoder", None)
    if stack is None or not hasattr(stack, "layers"):
        raise ValueError("export a fitted SequenceRegressor/Classifier built from a registered "
                         "cell (a custom layer object has no ONNX form)")
    inits, nodes = [], []

    def const(name: str, a: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(a), name))
        return name

    D, K = estimator.n_features_, estimator.n_outputs_
    const("merge_dirs", np.array([0, 0, -1], dtype=np.int64))
    nodes.append(helper.make_node("Transpose", ["X"], ["x0"], perm=[1, 0, 2]))
    x, last_h = "x0", ""
    for k, layer in enumerate(stack.layers):
        tensors, op, attrs, nd = _stack_tensors(layer)
        names = [const(f"rnn{k}.{n}", a) for n, a in tensors.items()]
        outs = [f"y{k}", f"yh{k}"] + ([f"yc{k}"] if op == "LSTM" else [])
        nodes.append(helper.make_node(op, [x, *names], outs, **attrs))
        nodes.append(helper.make_node("Transpose", [f"y{k}"], [f"yt{k}"], perm=[0, 2, 1, 3]))
        nodes.append(helper.make_node("Reshape", [f"yt{k}", "merge_dirs"], [f"x{k + 1}"]))
        x, last_h = f"x{k + 1}", f"yh{k}"  # (T, N, nd*H); final states (nd, N, H)
    if estimator.many_to_many:
        nodes.append(helper.make_node("Transpose", [x], ["features"], perm=[1, 0, 2]))
    else:
        nodes.append(helper.make_node("Transpose", [last_h], ["h_ndh"], perm=[1, 0, 2]))
        const("batch_rows", np.array([0, -1], dtype=np.int64))
        nodes.append(helper.make_node("Reshape", ["h_ndh", "batch_rows"], ["features"]))
    W, b = (to_numpy(p).astype(np.float32) for p in network.head.params)
    nodes.append(helper.make_node("MatMul", ["features", const("head.W", W)], ["scores"]))
    nodes.append(helper.make_node("Add", ["scores", const("head.b", b)], ["outputs"]))
    out_shape = ["N", "T", K] if estimator.many_to_many else ["N", K]
    outputs = [helper.make_tensor_value_info("outputs", TensorProto.FLOAT, out_shape)]
    classes = getattr(estimator, "n_classes_", None)
    if classes == 2:  # one logit: p = sigmoid, probabilities [1 - p, p]
        nodes.append(helper.make_node("Sigmoid", ["outputs"], ["p1"]))
        const("one", np.ones(1, dtype=np.float32))
        nodes.append(helper.make_node("Sub", ["one", "p1"], ["p0"]))
        nodes.append(helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=-1))
    elif classes is not None:
        nodes.append(helper.make_node("Softmax", ["outputs"], ["probabilities"], axis=-1))
    if classes is not None:
        shape = out_shape[:-1] + [classes]
        outputs.append(helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, shape))
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", "T", D])]
    graph = helper.make_graph(nodes, f"bptt_{type(estimator).__name__}", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="bptt")
    onnx.checker.check_model(model)
    path = Path(path)
    with atomic_file(path) as f:
        f.write(model.SerializeToString())
    return path
