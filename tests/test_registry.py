"""The cell registry: registration and its errors, a registered cell everywhere a built-in one
works (stacks, models, estimators, gradcheck suite, explain, gradflow, plots, checkpoints,
CLI), entry-point plugins, and the rule that nothing outside the registry compares cell names."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pytest

import bptt
from bptt import cli
from bptt.nn import registry
from bptt.tools.explaining.explain import explain
from bptt.tools.explaining.gradflow import gradient_flow
from bptt.tools.explaining.plots import gate_activations
from bptt.tools.verification.gradcheck_suite import run_suite
from helpers import import_file

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "coupled_lstm.py"


example = import_file(EXAMPLE)


@pytest.fixture
def registered():
    """The example's coupled-gate cell, registered for one test."""
    example.register()
    yield registry.get_cell("cifg")
    registry.unregister_cell("cifg")


class Minimal:
    """A tanh RNN cell written to the contract only (no checks, no extras)."""

    def __init__(self, Wx, Wh, b):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(p) for p in self.params]

    def forward(self, x, h_prev):
        Wx, Wh, b = self.params
        h = np.tanh(x @ Wx + h_prev @ Wh + b)
        self.cache = (x, h_prev, h)
        return h

    def backward(self, dh):
        Wx, Wh, _ = self.params
        x, h_prev, h = self.cache
        da = dh * (1 - h**2)
        self.grads[0][...] = x.T @ da
        self.grads[1][...] = h_prev.T @ da
        self.grads[2][...] = da.sum(axis=0)
        return da @ Wx.T, da @ Wh.T


# -- registration and its errors -----------------------------------------------------------------
def test_the_built_in_cells_are_described_once():
    assert bptt.cell_names()[:3] == ("rnn", "lstm", "gru")
    lstm = bptt.get_cell("lstm")
    assert (lstm.step, lstm.gates, lstm.has_cell_state, lstm.time_layer) == (
        bptt.LSTM, 4, True, bptt.TimeLSTM)
    assert bptt.get_cell("gru").torch.candidate_bias and bptt.get_cell("rnn").gates == 1


def test_registering_a_name_twice_is_one_clear_error(registered):
    with pytest.raises(ValueError, match="'cifg' is already registered .*unregister_cell"):
        bptt.register_cell("cifg", Minimal, gates=1)
    with pytest.raises(ValueError, match="'lstm' is already registered"):
        bptt.register_cell("lstm", Minimal, gates=1)


def test_a_class_without_forward_or_backward_is_refused():
    class NoBackward:
        def __init__(self, Wx, Wh, b):
            self.params = [Wx, Wh, b]

        def forward(self, x, h):
            return h

    with pytest.raises(TypeError, match="NoBackward has no backward method"):
        bptt.register_cell("nobackward", NoBackward, gates=1)
    assert "nobackward" not in bptt.cell_names()


@pytest.mark.parametrize("gates,has_c,match", [
    (4, True, "check gates"),                    # the coupled cell has 3 blocks
    (2, True, "gates"),
    (3, False, "has_cell_state"),                # it carries c
    (0, True, "positive integer"),
])
def test_gates_or_cell_state_that_disagree_with_the_class_are_refused(gates, has_c, match):
    with pytest.raises(ValueError, match=match):
        bptt.register_cell("wrong", example.CoupledLSTM, gates=gates, has_cell_state=has_c)
    assert "wrong" not in bptt.cell_names()


def test_gates_that_disagree_with_an_unchecked_cell_are_refused():
    with pytest.raises(ValueError, match="gates"):
        bptt.register_cell("minimal2", Minimal, gates=2)  # slices nothing: shapes go wrong
    bptt.register_cell("minimal", Minimal, gates=1)
    try:
        assert bptt.get_cell("minimal").time_layer is None
    finally:
        bptt.unregister_cell("minimal")


class Copying(Minimal):
    """Keeps copies of its parameters: the optimizer would update arrays it never reads."""

    def __init__(self, Wx, Wh, b):
        super().__init__(Wx.copy(), Wh, b)


class Dropping(Minimal):
    """Keeps Wx and Wh only."""

    def __init__(self, Wx, Wh, b):
        super().__init__(Wx, Wh, b)
        self.bias = self.params.pop()
        self.grads.pop()

    def forward(self, x, h_prev):
        Wx, Wh = self.params
        h = np.tanh(x @ Wx + h_prev @ Wh + self.bias)
        self.cache = (x, h_prev, h)
        return h

    def backward(self, dh):
        Wx, Wh = self.params
        x, h_prev, h = self.cache
        da = dh * (1 - h**2)
        self.grads[0][...] = x.T @ da
        self.grads[1][...] = h_prev.T @ da
        return da @ Wx.T, da @ Wh.T


@pytest.mark.parametrize("cls, match", [(Copying, "parameter 0 is a copy"),
                                        (Dropping, "it keeps 2 of 3")])
def test_a_cell_that_copies_or_drops_its_parameters_is_refused(cls, match):
    with pytest.raises(ValueError, match=f"very arrays it is built from.*{match}"):
        bptt.register_cell("copying", cls, gates=1)
    assert "copying" not in bptt.cell_names()


@pytest.mark.parametrize("name", ["", "Peep", "2cell", "a b", None])
def test_bad_names_are_refused(name):
    with pytest.raises(ValueError, match="cell name"):
        bptt.register_cell(name, Minimal, gates=1)


def test_unknown_cell_names_list_the_registered_ones():
    with pytest.raises(ValueError, match="unknown cell 'nope': registered cells are rnn, lstm"):
        bptt.get_cell("nope")
    with pytest.raises(ValueError, match="unknown cell"):
        bptt.LanguageModel(10, 4, 4, cell="nope")


# -- a registered cell everywhere ----------------------------------------------------------------
def test_registered_cell_in_stacks_models_and_estimators(registered):
    stack = bptt.make_recurrent_stack("cifg", 3, 4, num_layers=2, bidirectional=True,
                                      dtype=np.float64)
    xs = np.random.default_rng(0).standard_normal((2, 5, 3))
    assert stack.forward(xs).shape == (2, 5, 8)
    assert isinstance(stack.layers[0].forward_layer, bptt.TimeCell)
    assert len(stack.params) == 2 * 2 * 3  # layers x directions x (Wx, Wh, b)

    model = bptt.LanguageModel(20, 6, 6, cell="cifg", num_layers=2, dtype=np.float64,
                               seed=0)
    assert model.param_names[1:4] == ["rnn0.Wx", "rnn0.Wh", "rnn0.b"]
    assert model.params[1].shape == (6, 18)  # 3 gate blocks
    ids = np.random.default_rng(1).integers(0, 20, (3, 7))
    loss = model.forward(ids[:, :-1], ids[:, 1:])
    model.backward()
    assert np.isfinite(float(loss)) and all(np.isfinite(g).all() for g in model.grads)

    X = np.random.default_rng(2).standard_normal((20, 6, 2))
    reg = bptt.SequenceRegressor(cell="cifg", hidden_size=4, seed=0)
    reg.fit(X, X.sum(axis=(1, 2)), epochs=1, batch_size=10)
    assert reg.predict(X).shape == (20,)


def test_registered_cell_in_gradcheck_suite_explain_gradflow_plots(registered):
    results = {r.name: r for r in run_suite(["CoupledLSTM", "TimeCell[cifg]"])}
    assert all(r.passed for r in results.values()), results

    ex = explain("cifg")
    layer_call = ex.backward[2]
    assert layer_call.cell == "CoupledLSTM" and layer_call.replay_ok
    assert [f.name for f in layer_call.steps[0].receives] == ["dhs[:, 2]", "dh", "dc"]
    assert "CoupledLSTM" in ex.cells

    run = gradient_flow("cifg", T=20, H=8, N=4)
    assert len(run.norms) == 20 and all(np.isfinite(run.norms))

    model = bptt.LanguageModel(20, 6, 6, cell="cifg", seed=0)
    acts = gate_activations(model, [1, 2, 3, 4])
    assert list(acts) == ["f", "o", "g", "c", "h"] and acts["h"].shape == (4, 6)  # no i


def test_a_checkpoint_of_a_registered_cell_loads_only_when_the_cell_is_registered(
        registered, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat . " * 200, encoding="utf-8")
    cfg = bptt.TrainConfig(data=str(text), cell="cifg", embed=8, hidden=8, batch=4, bptt=5,
                           max_steps=5, out=str(tmp_path / "run"), quiet=True)
    bptt.train_language_model(cfg)
    ck = bptt.load_checkpoint(tmp_path / "run" / "best")
    assert ck.model.cell == "cifg"
    registry.unregister_cell("cifg")
    try:
        with pytest.raises(bptt.train.lm_checkpoint.CheckpointError,
                           match="cell 'cifg', which is not registered here"):
            bptt.load_checkpoint(tmp_path / "run" / "best")
    finally:
        example.register()
    again = bptt.load_checkpoint(tmp_path / "run" / "best")
    for a, b in zip(again.model.params, ck.model.params, strict=True):
        assert np.array_equal(a, b)


def test_interop_refuses_a_cell_without_a_pytorch_counterpart(registered):
    stack = bptt.make_recurrent_stack("cifg", 3, 4)
    with pytest.raises(ValueError, match="'cifg' cell has no PyTorch counterpart"):
        bptt.to_torch(stack)
    gru = bptt.make_recurrent_stack("gru", 3, 4)  # the book's reset-before GRU
    with pytest.raises(ValueError, match="reset_after=True"):
        bptt.to_torch(gru)


def test_options_a_cell_does_not_take_are_refused():
    """A cell's options travel as one dict, checked by its spec, whether a stack's torch-like
    keywords or a model's cell_options bring them: the same words everywhere."""
    msg = "nonlinearity='relu' is not an option of the 'lstm' cell"
    with pytest.raises(ValueError, match=msg):
        bptt.make_recurrent_stack("lstm", 3, 4, nonlinearity="relu")
    with pytest.raises(ValueError, match=msg):
        bptt.LanguageModel(10, 4, 4, cell="lstm", cell_options={"nonlinearity": "relu"})
    with pytest.raises(ValueError, match="colour='red' is not an option of the 'gru' cell"):
        bptt.make_recurrent_stack("gru", 3, 4, colour="red")  # was a TypeError deep inside
    stack = bptt.make_recurrent_stack("gru", 3, 4, reset_after=True)
    model = bptt.LanguageModel(10, 4, 4, cell="gru", cell_options={"reset_after": True})
    assert stack.layers[0].reset_after and model.rnn_layers[0].reset_after


# -- plugins through entry points ----------------------------------------------------------------
def test_entry_point_plugins_register_their_cells_for_the_cli(monkeypatch, tmp_path, capsys):
    (tmp_path / "bptt_cifg_plugin.py").write_text(EXAMPLE.read_text(encoding="utf-8"),
                                                      encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [EntryPoint("cifg", "bptt_cifg_plugin:register", "bptt.cells"),
           EntryPoint("broken", "no_such_module_xyz:register", "bptt.cells")]
    monkeypatch.setattr(registry, "entry_points",
                        lambda group: [e for e in eps if e.group == group])
    try:
        code = cli.main(["train", "--cell", "cifg", "--embed", "8", "--hidden", "8",
                         "--max-steps", "3", "--out", str(tmp_path / "run"), "--quiet"])
        assert code == 0
        err = capsys.readouterr().err
        assert "the cell plugin 'broken' (no_such_module_xyz:register) did not load" in err
        state = json.loads((tmp_path / "run" / "last" / "config.json").read_text())
        assert state["model"]["cell"] == "cifg"
    finally:
        if "cifg" in bptt.cell_names():
            registry.unregister_cell("cifg")


# -- the example and the rule --------------------------------------------------------------------
def test_the_coupled_lstm_example_runs_outside_the_package(tmp_path):
    done = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "gradcheck TimeCell[cifg]: worst relative error" in out
    assert "reloaded: LanguageModel(" in out and "1xcifg" in out
    mse, mean = map(float, re.search(r"test MSE ([\d.]+) \(predicting the mean: ([\d.]+)",
                                     out).groups())
    assert mse < mean / 2  # it learns
    # docs/architecture.md shows this run: its lines are these lines (numbers aside)
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    shown = doc.split("$ python docs/examples/coupled_lstm.py\n", 1)[1].split("```")[0]
    got = out.splitlines()
    for line in shown.strip().splitlines():
        assert any(_same_but_numbers(line, g) for g in got), f"docs show {line!r}"


def _same_but_numbers(a, b):
    num = r"[-+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?"
    return re.sub(num, "#", a) == re.sub(num, "#", b)


def test_no_cell_name_or_class_is_compared_outside_the_registry_and_the_cells():
    allowed = {"nn/registry.py", "nn/cell_spec.py"}
    name = r"""["'](rnn|lstm|gru)["']"""
    pattern = re.compile(rf"(==|!=|\bis\b|\bin\b)\s*\(?{name}|{name}\s*(==|!=)"
                         r"|\bis (recurrent\.)?(RNN|LSTM|GRU)\b"
                         r"|isinstance\([^)]*\b(Time)?(RNN|LSTM|GRU)\b")
    hits = []
    for path in (ROOT / "src" / "bptt").rglob("*.py"):
        rel = path.relative_to(ROOT / "src" / "bptt").as_posix()
        if rel in allowed or rel.startswith("nn/cells/"):
            continue
        for k, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                hits.append(f"{rel}:{k}: {line.strip()}")
    assert not hits, "\n".join(hits)


def test_every_fact_of_a_cell_is_asked_of_its_spec():
    """What weight drop and gradflow scale and what the gate pictures show come from the spec;
    the step class is read there once."""
    want = {"rnn": ("Wh",), "lstm": ("Wh",), "gru": ("Wh",), "indrnn": ("u",),
            "mingru": (), "minlstm": ()}
    for name, recurrent in want.items():
        assert registry.get_cell(name).recurrent_params == recurrent, name
    spec = registry.get_cell("lstm")
    cell = spec.make_step(*spec.init_params(3, 2, registry._Constant(np)))
    spec.forward(cell, np.ones((1, 3)), (np.zeros((1, 2)), np.zeros((1, 2))))
    assert sorted(spec.activations(cell)) == ["f", "g", "i", "o"]
    assert spec.activations(Minimal(*registry.get_cell("rnn").init_params(
        3, 2, registry._Constant(np)))) == {}  # a cell that shows no gates
    src = (ROOT / "src" / "bptt").rglob("*.py")
    readers = [p.relative_to(ROOT / "src" / "bptt").as_posix() for p in src
               if re.search(r"getattr\([^)]*\.step\b", p.read_text(encoding="utf-8"))]
    assert readers == ["nn/cell_spec.py"]
