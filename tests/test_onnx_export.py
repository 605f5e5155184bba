"""ONNX export of language models: onnx.checker passes; logits and states from onnx's
ReferenceEvaluator and from onnxruntime equal bptt's forward (float32, 1e-5) for every cell
with a standard operator, 1 and 2 layers, tied or not, batch 1 and N, any length; token-by-token
runs with the states fed back equal the whole sequence; other cells are refused in one line."""

from __future__ import annotations

import numpy as np
import pytest

from bptt.cli import main
from bptt.models.rnnlm import LanguageModel
from bptt.tools.exchange.onnx_export import export_onnx

onnx = pytest.importorskip("onnx", reason="needs the onnx extra: pip install 'bptt[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="needs the onnx extra (onnxruntime)")
from onnx.reference import ReferenceEvaluator  # noqa: E402


def feeds_for(model, ids, states=None):
    feeds = {"ids": ids.astype(np.int64)}
    N = ids.shape[0]
    for k, layer in enumerate(model.rnn_layers):
        H = layer.H
        names = [f"h{k}"] + ([f"c{k}"] if model.rnn_layers[k].has_cell else [])
        for j, name in enumerate(names):
            feeds[name] = (np.zeros((1, N, H), np.float32) if states is None
                           else states[k][j][None].astype(np.float32))
    return feeds


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("layers,tie", [(1, False), (2, True)])
@pytest.mark.parametrize("N", [1, 3])
def test_onnxruntime_and_the_reference_evaluator_equal_bptt(cell, layers, tie, N, tmp_path):
    model = LanguageModel(40, 12, 12, cell=cell, num_layers=layers, tie_weights=tie,
                          init="orthogonal", seed=0)
    path = export_onnx(model, tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(str(path)))
    ids = np.random.default_rng(N).integers(0, 40, (N, 29))  # any T: no example was traced
    want = model.predict(ids)
    states = model.get_state()
    feeds = feeds_for(model, ids)
    for run in (ort.InferenceSession(str(path)).run, ReferenceEvaluator(str(path)).run):
        logits, *outs = run(None, feeds)
        np.testing.assert_allclose(logits, want, rtol=0, atol=1e-5)
        flat = [s for h, c in states for s in ((h, c) if c is not None else (h,))]
        for got, ref in zip(outs, flat, strict=True):
            np.testing.assert_allclose(got[0], ref, rtol=0, atol=1e-5)


def test_token_by_token_with_the_states_fed_back_equals_the_whole_sequence(tmp_path):
    model = LanguageModel(25, 8, 8, cell="lstm", num_layers=2, seed=1)
    path = export_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path))
    ids = np.random.default_rng(0).integers(0, 25, (2, 10))
    whole = session.run(None, feeds_for(model, ids))[0]
    feeds, steps = feeds_for(model, ids[:, :1]), []
    names = [o.name for o in session.get_outputs()]
    for t in range(10):
        feeds["ids"] = ids[:, t:t + 1]
        out = dict(zip(names, session.run(None, feeds), strict=True))
        steps.append(out["logits"])
        feeds.update({k[:-4]: v for k, v in out.items() if k.endswith("_out")})
    np.testing.assert_allclose(np.concatenate(steps, axis=1), whole, rtol=0, atol=1e-5)


def test_a_cell_without_an_onnx_operator_is_refused_naming_it(tmp_path):
    for cell in ("mingru", "lnlstm", "slstm", "mlstm", "mamba", "rwkv"):
        with pytest.raises(ValueError, match=f"the '{cell}' cell has no standard ONNX operator"):
            export_onnx(LanguageModel(10, 4, 4, cell=cell), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_bptt_export_writes_an_onnx_file(tmp_path, capsys):
    assert main(["train", "--embed", "8", "--hidden", "8", "--max-steps", "3",
                 "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "lm.onnx")]) == 0
    assert "as ONNX" in capsys.readouterr().out
    session = ort.InferenceSession(str(tmp_path / "lm.onnx"))
    assert [i.name for i in session.get_inputs()] == ["ids", "h0", "c0"]
    assert main(["export", str(tmp_path / "run")]) == 2  # nothing asked for: one line
    assert "say what to write" in capsys.readouterr().err
    mine = tmp_path / "lm.onnx.tmp"  # the user's file: never the temporary name
    mine.write_text("keep me")
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "lm.onnx")]) == 0
    assert mine.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lm.onnx", "lm.onnx.tmp", "run"]
    capsys.readouterr()
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "run")]) == 2  # a folder
    assert "is a folder: give a file name to write" in capsys.readouterr().err


def test_the_docs_generate_with_onnxruntime_alone(tmp_path, monkeypatch):
    """docs/interop.md's snippet, run as written against a fresh run."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "interop.md").read_text()
    code = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    assert "import bptt" not in code and "from bptt" not in code
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--max-steps", "20", "--out", "runs/lm", "--quiet"]) == 0
    assert main(["export", "runs/lm", "lm.onnx"]) == 0
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    assert len(words) == 31 and words[0] == "the"


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("layers,bidirectional,many_to_many", [
    (1, False, False), (2, True, False), (2, False, True), (1, True, True)])
def test_sequence_regressors_export_equal(cell, layers, bidirectional, many_to_many, tmp_path):
    import bptt
    from bptt.tools.exchange.onnx_export import export_estimator_onnx

    r = np.random.default_rng(0)
    X = r.standard_normal((30, 6, 3)).astype(np.float32)
    y = r.standard_normal((30, 6, 2) if many_to_many else (30, 2))
    est = bptt.SequenceRegressor(cell=cell, hidden_size=5, num_layers=layers,
                                 bidirectional=bidirectional, many_to_many=many_to_many, seed=0)
    est.fit(X, y, epochs=1)
    path = export_estimator_onnx(est, tmp_path / "e.onnx")
    longer = r.standard_normal((4, 11, 3)).astype(np.float32)  # other N and T
    for x in (X, longer):
        for run in (ort.InferenceSession(str(path)).run, ReferenceEvaluator(str(path)).run):
            np.testing.assert_allclose(run(None, {"X": x})[0], est.predict(x), rtol=0,
                                       atol=1e-5)


@pytest.mark.parametrize("classes", [2, 4])
def test_sequence_classifiers_export_their_probabilities(classes, tmp_path, capsys):
    import bptt

    assert main(["fit", "waveforms", "--classes", str(classes), "--hidden", "6",
                 "--epochs", "1", "--bidirectional", "--out", str(tmp_path / "fit"),
                 "--quiet"]) == 0
    assert main(["export", str(tmp_path / "fit"), str(tmp_path / "c.onnx")]) == 0
    assert "probabilities" in capsys.readouterr().out
    est = bptt.SequenceClassifier.load(tmp_path / "fit" / "model")
    X = np.random.default_rng(1).standard_normal((5, 9, est.n_features_)).astype(np.float32)
    outs = ort.InferenceSession(str(tmp_path / "c.onnx")).run(None, {"X": X})
    np.testing.assert_allclose(outs[1], est.predict_proba(X), rtol=0, atol=1e-5)
