"""Runs written by an earlier bptt (tests/fixtures/runs-0.1/, made by
tests/fixtures/make_runs.py before the training floor's redesign) load, answer exactly as they
did, and resume: a user's trained runs survive every change to the code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

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
    assert got == want


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
