"""``bptt explain``: equations from the docstrings, the real shapes, the backward order."""

from __future__ import annotations

import inspect
import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt.cli import main
from bptt.nn import layers, time_layers
from bptt.nn.cells import gru, lstm, rnn
from bptt.tools.explaining.equations import layer_equations, parse_docstring
from bptt.tools.explaining.explain import explain, model_layers, trace
from bptt.tools.explaining.models import build
from bptt.tools.explaining.records import letters_for


def _classes(mod):
    return [c for _, c in inspect.getmembers(mod, inspect.isclass)
            if c.__module__ == mod.__name__ and not c.__name__.startswith("_")
            and hasattr(c, "forward") and hasattr(c, "backward")]


LAYER_CLASSES = [c for m in (layers, time_layers, rnn, lstm, gru) for c in _classes(m)]


# -- equations: one source, the docstring ---------------------------------------------------------
@pytest.mark.parametrize("cls", LAYER_CLASSES, ids=lambda c: c.__name__)
def test_every_layer_docstring_has_forward_and_backward_equations(cls):
    eq = layer_equations(cls)
    assert eq.forward and eq.backward, f"{cls.__name__}: {eq}"
    doc = cls.__doc__
    for line in eq.forward + eq.backward:  # every parsed line is in the docstring
        text = re.sub(r"^\((train|eval)\)\s*", "", line.strip())  # label "forward (train):"
        assert text in doc, line
    assert not any("Params:" in ln for ln in eq.forward + eq.backward)


def test_parse_docstring_style_md_layout():
    doc = '''One step of a vanilla RNN.

            a      = x @ Wx + h_prev @ Wh + b        (N, H)
            h_next = tanh(a)
        backward, with dh_next = dL/dh_next:
            da = dh_next * (1 - h_next**2)
            dx = da @ Wx.T

        Params: Wx (D, H), Wh (H, H), b (H,)
        '''
    summary, fwd, bwd, notes = parse_docstring(doc)
    assert summary == "One step of a vanilla RNN."
    assert fwd == ["a      = x @ Wx + h_prev @ Wh + b        (N, H)", "h_next = tanh(a)"]
    assert bwd == ["da = dh_next * (1 - h_next**2)", "dx = da @ Wx.T"]
    assert notes == {"backward": "with dh_next = dL/dh_next"}


def test_parse_docstring_labelled_layout_keeps_alignment_and_skips_prose():
    doc = '''Fully connected layer.

            forward:  out = x @ W + b
            backward: dx = dout @ W.T
                      dW = x.T @ dout

        Some prose that is not an equation.

            an indented example that is not either
        '''
    _, fwd, bwd, _ = parse_docstring(doc)
    assert fwd == ["out = x @ W + b"]
    assert bwd == ["dx = dout @ W.T", "dW = x.T @ dout"]


def test_parse_docstring_header_over_two_lines_and_inline_qualifier():
    doc = '''T steps.

            forward, t = 0..T-1:   a_t = x_t @ Wx        h_t = tanh(a_t)
            backward, t = T-1..0, with dh = dL/dh_t from step t+1 (at t = T-1: 0, or
            dh_last) and dh_tot = dhs_t + dh:
                da_t = dh_tot * (1 - h_t**2)
                dh_{t-1} = da_t @ Wh.T

        xs (N, T, D) -> hs (N, T, H). Params: Wx (D, H)
        '''
    _, fwd, bwd, notes = parse_docstring(doc)
    assert fwd == ["a_t = x_t @ Wx        h_t = tanh(a_t)"]
    assert bwd == ["da_t = dh_tot * (1 - h_t**2)", "dh_{t-1} = da_t @ Wh.T"]
    assert notes["forward"] == "t = 0..T-1"
    assert notes["backward"].endswith("(at t = T-1: 0, or dh_last) and dh_tot = dhs_t + dh")


def test_explain_prints_the_docstring_equations_verbatim():
    ex = explain("simple-rnnlm")
    text = ex.to_text()
    for cls in (time_layers.TimeEmbedding, rnn.TimeRNN, time_layers.TimeAffine,
                time_layers.TimeSoftmaxWithLoss, rnn.RNN):
        eq = layer_equations(cls)
        for line in eq.backward:
            assert line in text, (cls.__name__, line)
    for line in layer_equations(rnn.TimeRNN).forward:
        assert line in text


# -- shapes: what the layers really produce -------------------------------------------------------
def _expected_lm_shapes(N, T, V, D, H):
    """Independent expectation for embedding -> recurrent -> affine -> softmax-with-loss."""
    fwd = [([(N, T)], [(N, T, D)]), ([(N, T, D)], [(N, T, H)]), ([(N, T, H)], [(N, T, V)]),
           ([(N, T, V), (N, T)], [()])]
    bwd = [[(N, T, V)], [(N, T, H)], [(N, T, D)], [()]]  # the last: ids get no gradient
    return fwd, bwd


def _shapes(call_list, attr):
    return [[tuple(a.shape) for a in getattr(c, attr)] for c in call_list]


@pytest.mark.parametrize("name", ["simple-rnnlm", "rnnlm", "rnn", "lstm", "gru"])
def test_recorded_shapes_match_independent_expectations(name):
    ex = explain(name, N=2, T=3)
    fwd, bwd = _expected_lm_shapes(2, 3, 11, 4, 5)
    assert [c.cls for c in ex.forward][0] == "TimeEmbedding"
    assert _shapes(ex.forward, "inputs") == [f[0] for f in fwd]
    assert _shapes(ex.forward, "outputs") == [f[1] for f in fwd]
    assert _shapes(ex.backward, "outputs") == bwd
    assert [c.layer for c in ex.backward] == [c.layer for c in ex.forward][::-1]


@settings(max_examples=12, deadline=None)
@given(N=st.integers(1, 4), T=st.integers(1, 6), H=st.integers(1, 7),
       cell=st.sampled_from(["rnn", "lstm", "gru"]))
def test_shapes_match_a_manual_layer_by_layer_run(N, T, H, cell):
    model, (xs, ts), d = build(cell, N=N, T=T, dims={"H": H})
    ex = trace(model, (xs, ts), d)
    # run the same layers by hand, without the tracer, from the same initial state
    model.reset_state()
    x = xs
    produced = []
    for layer in model.layers:
        x = layer.forward(x)
        produced.append(tuple(x.shape))
    assert [tuple(c.outputs[0].shape) for c in ex.forward[:-1]] == produced
    assert ex.forward[1].outputs[0].letters in ("(N, T, H)",) or N == T or H in (N, T, 4, 11)
    steps = ex.backward[2].steps
    assert [s.t for s in steps] == list(range(T))[::-1]


def test_printed_shapes_are_the_recorded_ones():
    ex = explain("rnnlm")
    text = ex.to_text()
    for c in ex.forward + ex.backward:
        for a in c.inputs + c.outputs:
            if a.shape:
                assert a.shape_text in text
    assert "hs     (N, T, H) = (2, 3, 5)" in text
    assert "Wx (D, 4H) = (4, 20)" in text


def test_letters():
    dims = {"N": 2, "T": 3, "V": 11, "D": 4, "H": 5}
    assert letters_for((2, 3, 5), dims) == "(N, T, H)"
    assert letters_for((5, 20), dims) == "(H, 4H)"
    assert letters_for((6, 11), dims) == "(N*T, V)"
    assert letters_for((7,), dims) == "(7,)"
    assert letters_for((4, 4), {"D": 4, "H": 4}) == "(D=H, D=H)"
    assert letters_for((2, 2), {"N": 2, "T": 2}, ids=True) == "(N, T)"


# -- the backward order, step by step -------------------------------------------------------------
def test_backward_numbers_follow_execution_order_like_seed_000():
    ex = explain("simple-rnnlm", T=3)
    names = [(c.numbers, c.layer) for c in ex.backward]
    assert names == [("(1)", "TimeSoftmaxWithLoss"), ("(2)", "TimeAffine"),
                     ("(3)-(5)", "TimeRNN"), ("(6)", "TimeEmbedding")]
    rnn = ex.backward[2]
    assert [(s.number, s.t) for s in rnn.steps] == [(3, 2), (4, 1), (5, 0)]
    first, mid, last = rnn.steps
    assert first.receives[0].peer == "(2) TimeAffine"  # dhs[:, 2] from the layer above
    assert first.receives[1].norm == 0.0  # nothing comes from after the last step
    assert mid.receives[1].peer == "(3) t=2"  # dh from step t+1
    assert mid.sends[1].peer.startswith("(5) t=0")  # dh_prev to step t-1
    assert last.sends[0].peer.startswith("(6) TimeEmbedding")
    assert ex.backward[3].inputs[0].peer == "(5) TimeRNN"  # dxs leaves after the last step


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_per_step_replay_reproduces_the_layer(cell):
    model, batch, d = build(cell, T=4)
    ex = trace(model, batch, d)
    call = ex.backward[2]
    assert call.replay_ok is True
    # the gradient leaving step t=0 is the layer's own dL/dh0
    rnn = model.rnn_layers[0]
    assert call.steps[-1].sends[1].norm == pytest.approx(
        float(np.linalg.norm(rnn.dh.astype(np.float64))), rel=1e-4)
    # what enters step t from t+1 is what left step t+1
    for later, earlier in zip(call.steps, call.steps[1:], strict=False):
        assert earlier.receives[1].norm == pytest.approx(later.sends[1].norm)


def test_tracing_changes_nothing():
    m1, batch, d = build("lstm", T=3, seed=3)
    m2, _, _ = build("lstm", T=3, seed=3)
    trace(m1, batch, d)
    m2.forward(*batch)
    m2.backward()
    for g1, g2 in zip(m1.grads, m2.grads, strict=True):
        np.testing.assert_array_equal(g1, g2)
    for _, layer in model_layers(m1):
        assert "forward" not in vars(layer) and "backward" not in vars(layer)


def test_two_layer_net_and_better_rnnlm():
    ex = explain("two-layer-net")
    assert [c.layer for c in ex.forward] == ["Affine1", "Relu1", "Affine2", "SoftmaxWithLoss"]
    assert _shapes(ex.forward, "outputs") == [[(2, 5)], [(2, 5)], [(2, 3)], [()]]
    assert ex.forward[0].inputs[0].letters == "(N, D)"
    assert ex.backward[-1].outputs[0].shape == [2, 4]
    ex = explain("better-rnnlm", T=2)
    assert sum(1 for c in ex.backward if c.steps) == 2  # two LSTM layers, both replayed
    assert all(c.replay_ok for c in ex.backward if c.steps)


def test_explain_object_needs_batch():
    model, batch, _ = build("rnn")
    with pytest.raises(ValueError, match="needs the batch"):
        explain(model)
    ex = explain(model, batch)
    assert ex.dims["N"] == 2 and ex.dims["T"] == 3


# -- CLI ------------------------------------------------------------------------------------------
def test_cli_formats(capsys, tmp_path):
    assert main(["explain", "simple-rnnlm", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["forward"][1]["outputs"][0]["letters"] == "(N, T, H)"
    assert [s["t"] for s in data["backward"][2]["steps"]] == [2, 1, 0]
    out = tmp_path / "ex.md"
    assert main(["explain", "gru", "--format", "markdown", "-T", "2", "-o", str(out)]) == 0
    md = out.read_text()
    assert md.startswith("# bptt explain gru") and "| (3) | 1 |" in md
    assert main(["explain", "rnn"]) == 0
    assert "(3)-(5) TimeRNN.backward" in capsys.readouterr().out


def test_cli_errors(capsys):
    assert main(["explain", "no-such-model"]) == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err
    assert main(["explain", "rnn", "--size", "Q=3"]) == 2
    assert "unknown size 'Q'" in capsys.readouterr().err


def test_checkpoint_directory(tmp_path):
    checkpoint = pytest.importorskip("bptt.train.lm_checkpoint")
    from bptt.data.corpus import Vocab
    from bptt.models.rnnlm import LanguageModel

    vocab = Vocab.build("the cat sat on the mat .".split())
    model = LanguageModel(len(vocab), 6, 9, cell="gru", seed=0)
    checkpoint.save_checkpoint(tmp_path / "ck", model, vocab)
    ex = explain(str(tmp_path / "ck"), T=4)
    assert ex.dims == {"N": 2, "T": 4, "V": len(vocab), "D": 6, "H": 9}
    assert ex.forward[1].outputs[0].letters == "(N, T, H)"
    assert ex.backward[2].replay_ok is True
    ex = explain(str(tmp_path / "ck"), text="the cat sat on the mat")
    assert ex.dims["N"] == 1 and ex.dims["T"] == 5
    assert ex.forward[0].inputs[0].shape == [1, 5]
    with pytest.raises(ValueError, match="at least 2 tokens"):
        explain(str(tmp_path / "ck"), text="cat")


@pytest.mark.parametrize("name", ["simple-rnnlm", "rnnlm", "better-rnnlm", "gru"])
def test_the_explanation_agrees_with_itself(name):
    """Shapes written in a layer's equations are the shapes in its table; every forward row
    has a norm (float arrays) and no row claims a shape for an array that was never returned."""
    ex = explain(name)
    for call in ex.forward + ex.backward:
        text = "\n".join(call.equations)
        for p in call.params:
            if p.name.startswith("d") and call in ex.backward:
                continue
            for letters in re.findall(rf"(?<![\w.]){re.escape(p.name)} (\([A-Z0-9*, ]+,?\))",
                                      text):
                said = letters.strip("()").replace(" ", "").rstrip(",").split(",")
                table = p.letters.strip("()").replace(" ", "").rstrip(",").split(",")
                assert len(said) == len(table) and all(  # "D=H": D and H are the same size
                    w in t.split("=") for w, t in zip(said, table)), (
                    f"{call.layer}: equations say {p.name} {letters}, the table {p.letters}")
    for call in ex.forward:
        for a in call.inputs + call.outputs + call.params:
            if a.dtype.startswith("float"):
                assert a.norm is not None, f"{call.layer}: {a.name} has no norm"
    md = ex.to_markdown()
    assert md.startswith("# bptt explain ") and "`" not in md.splitlines()[0]
    assert "| scalar | None |" not in md
    assert re.search(r"\| out \| `dxs` \| none \|", md)  # the embedding's ids: no gradient


def test_an_explanation_renders_as_markdown_in_a_notebook():
    ex = explain("rnnlm")
    assert ex._repr_markdown_() == ex.to_markdown()
    assert "| | name | shape |" in ex._repr_markdown_()


@pytest.mark.parametrize("argv", [["-T", "100000000"], ["-N", "5000"], ["--size", "H=100000"]])
def test_sizes_explain_cannot_show_are_refused_at_once(argv, capsys):
    """-T 100000000 used to run until memory ran out."""
    from bptt.cli import main

    assert main(["explain", "lstm", *argv]) == 2
    err = capsys.readouterr().err
    assert "is more than explain shows" in err and len(err.strip().splitlines()) == 1
