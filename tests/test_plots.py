"""Pictures: the numbers behind them (NumPy) and the PNG files (matplotlib, optional)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from bptt.cli import main
from bptt.tools.explaining.gradflow import gradient_flow_study
from bptt.tools.explaining.models import build
from bptt.tools.explaining.plots import gate_activations, hidden_states, pca_2d, require_matplotlib

PNG = b"\x89PNG\r\n\x1a\n"


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# -- numbers ---------------------------------------------------------------------------------------
def test_pca_2d_matches_the_covariance_eigenvectors():
    g = np.random.default_rng(0)
    X = g.standard_normal((40, 6)) @ np.diag([5.0, 2.0, 0.5, 0.1, 0.1, 0.1]) + 3.0
    Y, ratio, mean = pca_2d(X)
    w, V = np.linalg.eigh(np.cov(X.T))  # ascending
    top = V[:, ::-1][:, :2]
    for k in range(2):  # same axes up to sign
        proj = (X - X.mean(0)) @ top[:, k]
        assert abs(abs(np.corrcoef(proj, Y[:, k])[0, 1]) - 1) < 1e-10
    np.testing.assert_allclose(ratio, w[::-1][:2] / w.sum(), rtol=1e-10)
    np.testing.assert_allclose(mean, X.mean(0))
    assert Y[:, 0].var() > Y[:, 1].var()
    with pytest.raises(ValueError, match="at least 2 rows"):
        pca_2d(X[:1])


def test_lstm_gates_replay_the_model_exactly():
    model, _, _ = build("rnnlm", dims={"V": 11, "D": 4, "H": 5})
    ids = [1, 4, 2, 9, 3, 3, 7]
    acts = gate_activations(model, ids)
    assert set(acts) == {"f", "i", "o", "g", "c", "h"}
    for k in "fio":
        assert acts[k].shape == (7, 5) and (acts[k] > 0).all() and (acts[k] < 1).all()
    np.testing.assert_allclose(acts["h"], acts["o"] * np.tanh(acts["c"]), rtol=1e-5, atol=1e-7)
    c_prev = np.vstack([np.zeros((1, 5)), acts["c"][:-1]])
    np.testing.assert_allclose(acts["c"], acts["f"] * c_prev + acts["g"] * acts["i"],
                               rtol=1e-5, atol=1e-7)
    # the LSTM layer itself, run by the model from a zero state, gives the same h
    model.reset_state()
    x = model.layers[0].forward(np.array([ids]))
    hs = model.layers[1].forward(x)
    np.testing.assert_allclose(acts["h"], hs[0], rtol=1e-5, atol=1e-7)
    assert model.layers[1].h is not None
    assert "forward" not in vars(model.layers[1])  # the tracer unwrapped the layers


def test_gru_and_rnn_activations_and_states():
    model, _, _ = build("gru")
    acts = gate_activations(model, [1, 2, 3])
    assert set(acts) == {"z", "r", "h"}
    h = hidden_states(build("rnn")[0], [5, 6, 7, 8])
    assert h.shape == (4, 5) and np.abs(h).max() < 1
    with pytest.raises(ValueError, match=r"layer 1 is out of range: .* 1 recurrent layer \(0 to"):
        gate_activations(model, [1, 2], layer=1)


# -- pictures --------------------------------------------------------------------------------------
def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(RuntimeError, match=r"pip install 'bptt\[plot\]'"):
        require_matplotlib()
    assert main(["gradflow", "-T", "5", "--plot", "x.png"]) == 2


def test_gradflow_png(tmp_path):
    pytest.importorskip("matplotlib")
    from bptt.tools.explaining.plots import plot_gradient_flow

    runs = gradient_flow_study(("rnn", "lstm"), (0.5, 2.0), T=30, H=8, N=4)
    w, h = _png_size(plot_gradient_flow(runs, tmp_path / "g.png"))
    assert w > 800 and h > 300
    made = plot_gradient_flow(runs, tmp_path / "new" / "g.png")  # the folder is made
    assert made.is_file()


def test_cli_plot_gates_and_states(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "gates.png"
    assert main(["plot", "gates", "lstm", "--text", "1 2 3 4 5 6", "--out", str(out)]) == 0
    w, h = _png_size(out)
    assert h > 500  # six panels: f, i, o, g, c, h
    out2 = tmp_path / "states.png"
    assert main(["plot", "states", "rnnlm", "--length", "6", "--out", str(out2)]) == 0
    _png_size(out2)
    assert main(["plot", "gates", "lstm", "--text", "the cat", "--out", str(out)]) == 2
    assert "no vocabulary" in capsys.readouterr().err
    assert main(["plot", "gates", "two-layer-net", "--out", str(out)]) == 2
    assert main(["plot", "gates", "lstm", "--text", "1 2", "--units", "0", "--out", str(out)]) == 2
    assert "units must be a positive integer, got 0" in capsys.readouterr().err


def test_figures_display_inline_when_no_path_is_given():
    """In a notebook, plot_history(...) / plot_gradient_flow(...) without a path return the
    matplotlib Figure, which Jupyter shows inline (it has a PNG repr)."""
    pytest.importorskip("matplotlib")
    from bptt import gradient_flow_study, plot_gradient_flow
    from bptt.train.plot import plot_history

    fig = plot_history([{"epoch": 1, "train_ppl": 300.0, "valid_ppl": 250.0},
                        {"epoch": 2, "train_ppl": 200.0, "valid_ppl": 180.0}])
    assert type(fig).__name__ == "Figure" and fig.axes[0].get_ylabel() == "perplexity"
    runs = gradient_flow_study(("rnn",), (1.0,), T=10, H=4, N=2)
    fig = plot_gradient_flow(runs)
    assert type(fig).__name__ == "Figure" and len(fig.axes) == 2
    assert fig._repr_png_().startswith(b"\x89PNG")  # what Jupyter displays


def test_plot_titles_and_labels_say_what_is_shown(tmp_path, monkeypatch):
    """The gates title names the layer (not "-1"); the fit loss plot labels its y axis; words at
    nearby states in the states plot are not drawn on top of each other."""
    pytest.importorskip("matplotlib")
    import bptt.commands.plot as cmd
    from bptt.tools.explaining.plots import plot_states
    from bptt.train.fit import _plot_history

    seen = {}
    monkeypatch.setattr(cmd, "plot_gates", lambda *a, title=None, **k: seen.update(title=title))
    assert main(["plot", "gates", "lstm", "--text", "1 2 3", "--out", str(tmp_path / "g.png")]) == 0
    assert "recurrent layer 1 of 1" in seen["title"] and "-1" not in seen["title"]
    fig = _plot_history({"epoch": [1, 2], "loss": [1.0, 0.5]}, None, "t")
    assert fig.axes[0].get_ylabel() == "loss (log scale)"
    same = np.zeros((3, 4))  # three words at one state: three labels, three heights
    fig = plot_states([(["a", "b", "c"], same)], None)
    heights = [t.xyann[1] for t in fig.axes[0].texts if t.get_text() in ("a", "b", "c")]
    assert len(set(heights)) == 3


def test_plot_refuses_words_the_model_does_not_know(tmp_path, capsys):
    """`plot gates RUN --start zzzz` used to draw the gates of <unk> without a word."""
    from bptt.train import TrainConfig, train_language_model

    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat .\nthe dog sat on the log .\n" * 30)
    run = tmp_path / "lm"
    train_language_model(TrainConfig(data=str(text), out=str(run), embed=4, hidden=4, batch=2,
                                     bptt=5, max_steps=2, quiet=True))
    png = str(tmp_path / "g.png")
    for argv, flag in ((["gates", str(run), "--start", "the cta"], "--start"),
                       (["states", str(run), "--text", "the cta sat"], "--text")):
        assert main(["plot", *argv, "--out", png]) == 2
        err = capsys.readouterr().err
        assert f"{flag} word 'cta' is not in the model's vocabulary" in err
        assert "nearest known: cat" in err
