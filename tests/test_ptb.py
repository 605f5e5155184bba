"""The Penn Treebank: loader figures, a smoke run, and (slow) the book's Rnnlm recipe."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from bptt.cli import main
from bptt.data.batching import StreamBatcher
from bptt.data.corpus import load_ptb
from bptt.models.rnnlm import Rnnlm
from bptt.optim import SGD, clip_grads
from bptt.train import perplexity

PTB = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ptb"
needs_ptb = pytest.mark.skipif(not (PTB / "ptb.train.txt").exists(),
                               reason=f"the Penn Treebank is not at {PTB} (shared data absent)")


@pytest.fixture(scope="module")
def ptb():
    return load_ptb(PTB)


@needs_ptb
def test_ptb_figures_match_the_book(ptb):
    assert (len(ptb.train), len(ptb.valid), len(ptb.test)) == (929_589, 73_760, 82_430)
    assert len(ptb.vocab) == 10_000
    assert ptb.vocab.itos[:3] == ["aer", "banknote", "berlitz"]  # the book's first ids
    assert ptb.vocab.decode(ptb.train[25:32]) == "pierre <unk> N years old will join"


@needs_ptb
def test_ptb_smoke_few_steps_lower_the_perplexity(ptb):
    model = Rnnlm(len(ptb.vocab), 100, 100, seed=0)
    valid = ptb.valid[:1401]
    before = perplexity(model, valid)
    assert 9_000 < before < 11_000  # near uniform over 10,000 words
    opt = SGD(lr=20.0)
    batches = StreamBatcher(ptb.train, 20, 35)
    for _ in range(8):
        xs, ts = batches.next_batch()
        model.forward(xs, ts)
        model.backward()
        clip_grads(model.grads, 0.25)
        opt.update(model.params, model.grads)
    assert perplexity(model, valid) < 0.5 * before


@needs_ptb
@pytest.mark.slow
def test_rnnlm_recipe_reaches_the_books_perplexity(tmp_path, capsys):
    """The book's ch. 6 run: 1 LSTM, 100 units, 4 epochs, SGD lr 20, clip 0.25 -> ~135.7."""
    out = tmp_path / "ptb"
    assert main(["train", "--data", str(PTB), "--preset", "rnnlm", "--out", str(out),
                 "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["epochs_completed"] == 4 and np.isfinite(m["valid_ppl"])
    assert m["test_ppl"] <= 136.0, m


@needs_ptb
@pytest.mark.slow
def test_cpu_hour_preset_reaches_80_within_an_hour(tmp_path):
    """`--preset cpu-hour` on 2 BLAS threads: the whole run (evaluations and the cache's tuning
    included) in at most 60 minutes, a test perplexity of at most 100 and of at most 80 with
    the continuous cache (measured on a 2-core AMD EPYC: 86.20 and 76.62 in 57.4 min)."""
    out = tmp_path / "cpu-hour"
    t0 = time.monotonic()
    assert main(["train", "--data", str(PTB), "--preset", "cpu-hour", "--threads", "2",
                 "--out", str(out), "--quiet"]) == 0
    minutes = (time.monotonic() - t0) / 60
    m = json.loads((out / "metrics.json").read_text())
    assert m["test_ppl"] <= 100, m["test_ppl"]
    assert m["test_ppl_cache"] <= 80, m["test_ppl_cache"]
    assert minutes <= 60, minutes
