"""Runs written by an earlier bptt (tests/fixtures/runs-0.1/, made by
tests/fixtures/make_runs.py before the training floor's redesign) load, answer exactly as they
did, and resume: a user's trained runs survive every change to the code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import import_file

HERE = Path(__file__).parent / "fixtures"
RUNS = HERE / "runs-0.1"
make = import_file(HERE / "make_runs.py")
EXPECTED = json.loads((RUNS / "expected.json").read_text(encoding="utf-8"))


@pytest.fixture
def runs(tmp_path):
    """A copy (resuming writes into a run)."""
    return Path(shutil.copytree(RUNS, tmp_path / "runs"))


@pytest.mark.parametrize("name", ["lm", "seq2seq", "attention", "fit-regressor",
                                  "fit-classifier"])
def test_a_run_of_an_earlier_bptt_answers_as_it_did(name, runs):
    if name == "lm":
        got = make.answers_lm(runs / name)
    elif name.startswith("fit-"):
        got = make.answers_fit(runs / name, name[4:])
    else:
        got = make.answers_seq2seq(runs / name)
    want = dict(EXPECTED[name])
    got.pop("version", None), want.pop("version", None)
    assert_same_answers(got, want)


def assert_same_answers(got, want, where="answers"):
    """Equal, texts and integers exactly, float32 numbers within rounding (a sum of float32
    scores may differ in its last bits under another BLAS or NumPy build)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), where
        for k in want:
            assert_same_answers(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same_answers(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6), where
    else:
        assert got == want, where


def test_answers_are_compared_within_float32_rounding_and_no_further():
    assert_same_answers({"a": [1.0, "x"]}, {"a": [1.0 + 1e-7, "x"]})
    for wrong in ({"a": [1.001, "x"]}, {"a": [1.0, "y"]}, {"a": [1.0]}, {"b": [1.0, "x"]}):
        with pytest.raises(AssertionError):
            assert_same_answers(wrong, {"a": [1.0, "x"]})


def test_runs_of_an_earlier_bptt_resume_and_are_refused_where_they_were(runs, capsys):
    from bptt.cli import main

    lm = runs / "lm"
    assert main(["train", "--resume", "--data", str(RUNS / "corpus.txt"), "--out", str(lm),
                 "--quiet"]) == 0
    assert main(["seq2seq", "train", "--resume", "--out", str(runs / "seq2seq"),
                 "--quiet"]) == 0
    assert main(["fit", "sine", "--resume", "--epochs", "2", "--out",
                 str(runs / "fit-regressor"), "--quiet"]) == 0
    capsys.readouterr()
    # a fresh run into one of them is refused: they are recognised as runs without a header
    assert main(["fit", "waveforms", "--epochs", "1", "--out",
                 str(runs / "fit-classifier")]) == 2
    assert "already holds a trained run" in capsys.readouterr().err


@pytest.mark.parametrize("name, kind, model", [
    ("lm", "language-model", "LanguageModel"), ("seq2seq", "seq2seq", "Seq2seqModel"),
    ("attention", "seq2seq", "Seq2seqModel"),
    ("fit-regressor", "sequence-regressor", "SequenceRegressor"),
    ("fit-classifier", "sequence-classifier", "SequenceClassifier")])
def test_load_checkpoint_opens_a_run_of_any_kind(name, kind, model):
    """One loader for every kind: it reads the kind from the header and hands the folder to
    that kind's loader; what it returns names its kind, folder, config and model."""
    import bptt

    ck = bptt.load_checkpoint(RUNS / name)
    assert ck.kind == kind and type(ck.model).__name__ == model
    assert ck.directory.parent == RUNS / name and ck.config["kind"] == kind
    if kind == "seq2seq":
        assert ck.pairs.start == "_"
    if kind == "language-model":
        assert len(ck.vocab) == ck.model.vocab_size


def test_an_unknown_kind_is_one_line(runs):
    import bptt
    from bptt.train.checkpoint import CheckpointError, read_json, write_checkpoint

    src = runs / "lm" / "best"
    config = read_json(src / "config.json")
    config["kind"] = "transformer"
    write_checkpoint(runs / "odd", {"model.npz": {"w": np.zeros(2)}},
                     {"config.json": config}, {"trainer": {}})
    with pytest.raises(CheckpointError, match="holds a 'transformer' model, which this bptt "
                                              "cannot open"):
        bptt.load_checkpoint(runs / "odd")


def test_every_kind_names_its_parameters_one_way(tmp_path):
    """Layer path, then the layer's own name: rnn{k}[_reverse].Wx for every recurrent stack,
    whatever model holds it; an estimator saved by bptt 0.1 (encoder.p0...) still loads."""
    import bptt
    from bptt.models.seq2seq import Seq2seqModel

    lm = bptt.LanguageModel(10, 4, 4, num_layers=2)
    s2s = Seq2seqModel(5, 5, 3, 4, "plain", num_layers=2, bidirectional=True)
    est = bptt.SequenceRegressor(hidden_size=3, num_layers=2, bidirectional=True)
    est.fit(np.zeros((4, 3, 2)), np.zeros(4), epochs=1)
    stack = ["rnn0.Wx", "rnn0.Wh", "rnn0.b", "rnn1.Wx", "rnn1.Wh", "rnn1.b"]
    assert lm.param_names == ["embed.W", *stack, "affine.W", "affine.b"]
    assert [n for n in s2s.param_names if n.startswith("decoder.rnn")] == \
        [f"decoder.{n}" for n in stack]
    assert est._param_names()[:3] == ["encoder.rnn0.Wx", "encoder.rnn0.Wh", "encoder.rnn0.b"]
    assert "encoder.rnn0_reverse.Wx" in est._param_names()
    path = est.save(tmp_path / "m")
    with np.load(path / "model.npz") as z:
        assert sorted(z.files) == sorted(est._param_names())
    with np.load(RUNS / "fit-regressor" / "model" / "model.npz") as z:
        assert "encoder.p0" in z.files  # the fixture's names, loaded by the answers test
