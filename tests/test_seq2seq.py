"""Seq2seq: end-to-end float64 gradient checks of every model kind (cells, bidirectional,
layers, padded sources), the book's parameter order and shapes, the encoder's final state,
decoding (greedy = the book's loop, beam search, sampling), and pair data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bptt.data.pairs import load_pairs, make_pairs, pair_set, read_pairs
from bptt.gradcheck import gradcheck
from bptt.models.seq2seq import AttentionSeq2seq, PeekySeq2seq, Seq2seq, Seq2seqModel


class LossOf:
    """A model as a layer: forward(xs, ts[, lengths]) -> loss; backward fills grads."""

    def __init__(self, model, lengths=None):
        self.model, self.lengths = model, lengths
        self.params, self.grads = model.params, model.grads

    def forward(self, xs, ts):
        return self.model.forward(xs, ts, self.lengths)

    def backward(self, dout=1):
        self.model.backward(dout)
        return None, None


def batch(rng, N=3, Ts=5, Tt=4, Vs=7, Vt=6, padded=False):
    xs = rng.integers(1, Vs, (N, Ts))
    ts = rng.integers(1, Vt, (N, Tt + 1))
    lengths = None
    if padded:
        lengths = np.array([Ts, 2, 4])[:N]
        xs[np.arange(Ts)[None, :] >= lengths[:, None]] = 0
        ts[1, 3:] = -1  # a shorter target
    return xs, ts, lengths


@pytest.mark.parametrize("kind", ["plain", "peeky", "attention"])
@pytest.mark.parametrize("cell,layers,bi,padded", [("lstm", 1, False, False),
                                                   ("gru", 2, False, True),
                                                   ("rnn", 1, True, True),
                                                   ("lstm", 2, True, False),
                                                   ("slstm", 1, True, True),
                                                   ("mlstm", 1, False, True),
                                                   ("mamba", 1, False, False),
                                                   ("rwkv", 2, False, True)])
def test_model_gradients(kind, cell, layers, bi, padded):
    rng = np.random.default_rng(0)
    model = Seq2seqModel(7, 6, 4, 3, kind=kind, cell=cell, num_layers=layers,
                         bidirectional=bi, dtype=np.float64, seed=1)
    for p in model.params:  # biases too, and a less flat softmax
        p[...] = rng.standard_normal(p.shape) * 0.5
    xs, ts, lengths = batch(rng, padded=padded)
    # eps 1e-5: with a deep float64 net, 1e-6 is dominated by round-off (the error falls
    # with eps, 2.6e-6 -> 2.6e-7 -> 2.9e-8: not a wrong backward, whose error would stay)
    report = gradcheck(LossOf(model, lengths), [xs, ts], wrt=[], seed=2, eps=1e-5)
    assert len(report.errors) == len(model.params)
    assert report.worst < 1e-6, report


@pytest.mark.parametrize("kind", ["peeky", "attention"])
def test_reused_buffers_leave_inputs_alone_and_repeat_exactly(kind):
    """The encoder's and decoder's scratch arrays: a caller's upstream gradient is not written
    (unless overwrite=True), and a second step on the same batch gives the same gradients."""
    from bptt.models.seq2seq import Encoder

    rng = np.random.default_rng(3)
    enc = Encoder(7, 3, 4, dtype=np.float64, generator=np.random.default_rng(0))
    xs = rng.integers(0, 7, (2, 5))
    hs, h = enc.forward(xs)
    dhs, dh = rng.standard_normal(hs.shape), rng.standard_normal(h.shape)
    kept = dhs.copy()
    enc.backward(dhs, dh)
    grads = [g.copy() for g in enc.grads]
    np.testing.assert_array_equal(dhs, kept)
    enc.forward(xs)  # one backward per forward (the LSTM's buffers are used up)
    enc.backward(dhs, dh, overwrite=True)  # the same gradients, and dh added in place
    for g, g0 in zip(enc.grads, grads, strict=True):
        np.testing.assert_array_equal(g, g0)
    np.testing.assert_array_equal(dhs[:, -1], kept[:, -1] + dh)

    model = Seq2seqModel(7, 6, 4, 3, kind=kind, dtype=np.float64, seed=1)
    xs, ts, _ = batch(rng)
    runs = []
    for _ in range(2):
        loss = model.forward(xs, ts)
        model.backward()
        runs.append((loss, [g.copy() for g in model.grads]))
    assert runs[0][0] == runs[1][0]
    for g0, g1 in zip(runs[0][1], runs[1][1], strict=True):
        np.testing.assert_array_equal(g0, g1)


@pytest.mark.parametrize("score", ["general", "additive"])
def test_attention_scores_in_the_model(score):
    rng = np.random.default_rng(1)
    model = Seq2seqModel(7, 6, 4, 3, kind="attention", score=score, dtype=np.float64, seed=1)
    for p in model.params:  # the book's N(0, 0.01) embeddings make attention's gradient ~1e-9
        p[...] = rng.standard_normal(p.shape) * 0.5
    xs, ts, lengths = batch(rng, padded=True)
    # W2's gradient is small here: round-off sets the floor (4.5e-5, 3.7e-6, 3.6e-7 at eps
    # 1e-6, 1e-5, 1e-4 -- falling with eps, so not a wrong backward)
    report = gradcheck(LossOf(model, lengths), [xs, ts], wrt=[], seed=3, eps=1e-4)
    assert report.worst < 1e-6, report


def test_the_books_parameter_order_and_shapes():
    V, D, H = 13, 16, 128
    assert [tuple(p.shape) for p in Seq2seq(V, D, H).params] == [
        (V, D), (D, 4 * H), (H, 4 * H), (4 * H,), (V, D), (D, 4 * H), (H, 4 * H), (4 * H,),
        (H, V), (V,)]
    assert [tuple(p.shape) for p in PeekySeq2seq(V, D, H).params][4:] == [
        (V, D), (H + D, 4 * H), (H, 4 * H), (4 * H,), (H + H, V), (V,)]
    model = AttentionSeq2seq(V, D, 256)
    assert [tuple(p.shape) for p in model.params][-2:] == [(512, V), (V,)]
    assert model.param_names[:2] == ["encoder.embed.W", "encoder.rnn0.Wx"]
    assert model.param_names[-2:] == ["decoder.affine.W", "decoder.affine.b"]


def test_padding_does_not_change_a_sequences_encoding_or_loss():
    rng = np.random.default_rng(2)
    model = Seq2seqModel(7, 6, 4, 3, kind="attention", dtype=np.float64, seed=1)
    xs = rng.integers(1, 7, (1, 3))
    ts = rng.integers(1, 6, (1, 4))
    alone = float(model.forward(xs, ts))
    padded = np.concatenate([xs, np.zeros((1, 4), dtype=np.int64)], axis=1)
    assert float(model.forward(padded, ts, np.array([3]))) == pytest.approx(alone, abs=1e-12)


def test_greedy_generation_is_the_books_step_by_step_argmax():
    rng = np.random.default_rng(3)
    model = Seq2seqModel(7, 6, 4, 5, kind="attention", dtype=np.float64, seed=2)
    for p in model.params:
        p[...] = rng.standard_normal(p.shape)
    xs = rng.integers(0, 7, (4, 5))
    out = model.generate(xs, start_id=1, length=6)
    for n in range(4):  # the book: one sample at a time, feeding back the argmax
        hs, h = model.encoder.forward(xs[n:n + 1])
        model.decoder.start(h, hs)
        ids, x = [], 1
        for _ in range(6):
            x = int(model.decoder.forward(np.array([[x]]))[0, 0].argmax())
            ids.append(x)
        assert ids == list(out[n])


def test_beam_search_finds_at_least_the_greedy_probability():
    rng = np.random.default_rng(4)
    model = Seq2seqModel(7, 6, 4, 5, kind="peeky", dtype=np.float64, seed=3)
    for p in model.params:
        p[...] = rng.standard_normal(p.shape)
    xs = rng.integers(0, 7, (5, 4))

    def logprob(n, ids):
        ts = np.array([[1, *ids]])
        return -float(model.forward(xs[n:n + 1], ts)) * len(ids)

    greedy = model.generate(xs, 1, 4)
    beam = model.generate(xs, 1, 4, beam=4)
    assert np.array_equal(model.generate(xs, 1, 4, beam=1), greedy)
    for n in range(5):
        assert logprob(n, beam[n]) >= logprob(n, greedy[n]) - 1e-9
    sampled = model.generate(xs, 1, 4, temperature=1.0, seed=0)
    assert sampled.shape == (5, 4) and np.array_equal(
        sampled, model.generate(xs, 1, 4, temperature=1.0, seed=0))
    with pytest.raises(ValueError, match="beam must be a positive integer"):
        model.generate(xs, 1, 4, beam=0)


def test_generation_stops_at_the_end_symbol():
    rng = np.random.default_rng(5)
    model = Seq2seqModel(7, 6, 4, 5, dtype=np.float64, seed=3)
    model.decoder.affine.params[1][...] = 0
    model.decoder.affine.params[1][2] = 50.0  # token 2 always wins: the end at once
    out = model.generate(rng.integers(0, 7, (2, 3)), 1, 5, end_id=2)
    assert (out == 2).all()
    assert (model.generate(rng.integers(0, 7, (1, 3)), 1, 5, end_id=2, beam=3) == 2).all()


# -- data -----------------------------------------------------------------------------------
def test_the_books_files_read_as_the_book_reads_them(tmp_path):
    p = tmp_path / "addition.txt"
    p.write_text("16+75  _91  \n52+607 _659 \n75+22  _97  \n", encoding="utf-8")
    pairs, fmt = read_pairs(p)
    assert fmt == "book" and pairs[0] == ("16+75  ", "91  ")
    ps = pair_set(pairs * 10, fmt, "addition", reverse=True)
    assert ps.start == "_" and ps.end is None and ps.source_vocab is ps.target_vocab
    xs, lengths = ps.encode_sources([list("16+75  ")])
    assert ps.source_vocab.decode(xs[0]) == "  57+61"  # reversed, as the book's x[:, ::-1]
    ts = ps.encode_targets([list("91  ")])
    assert ps.target_vocab.decode(ts[0]) == "_91  "


def test_tab_separated_pairs_have_symbols_and_padding(tmp_path):
    p = tmp_path / "en-fr.tsv"
    p.write_text("go .\tva !\nhello there .\tbonjour .\nthanks .\tmerci .\n" * 3,
                 encoding="utf-8")
    ps = load_pairs(p, level="word")
    assert ps.start == "<s>" and ps.end == "</s>" and ps.pad == "<pad>"
    xs, lengths = ps.encode_sources([["go", "."], ["hello", "there", "."]])
    assert xs.shape == (2, 3) and list(lengths) == [2, 3] and xs[0, 2] == 0
    ts = ps.encode_targets([["va", "!"], ["bonjour", "."]])
    assert ts.shape == (2, 4) and (ts[:, 0] == ps.target_vocab.stoi["<s>"]).all()
    with pytest.raises(ValueError, match="'zut' is not in the source vocabulary"):
        ps.encode_sources([["zut"]])


@pytest.mark.parametrize("word", ["</s>", "<s>", "<pad>"])
def test_a_word_that_is_one_of_the_added_symbols_is_refused(tmp_path, word):
    """A literal `</s>` in a word-level target would end every decoding there."""
    p = tmp_path / "en-fr.tsv"
    p.write_text(f"go .\tva !\nstop here\tarrête {word} ici\nthanks .\tmerci .\n",
                 encoding="utf-8")
    with pytest.raises(ValueError, match=f"pair 2 holds the word '{word}'.*spell it otherwise"):
        load_pairs(p, level="word")
    assert load_pairs(p, level="char").test  # characters never clash with the symbols


@pytest.mark.parametrize("text,msg", [
    ("1+2 _3\n12+3\n", "line 2 has no '_'"),
    ("1+2 _3\n\n4+5 _9\n", "line 2 is empty"),
    ("a\tb\nc d\n", "line 2 has no a tab"),
    ("a\t\n", "line 1 has an empty target"),
])
def test_bad_pair_files_name_the_line(tmp_path, text, msg):
    p = tmp_path / "bad.txt"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=msg):
        read_pairs(p)


def test_built_in_tasks_are_the_books_format_and_seeded():
    a = make_pairs("addition", 100, seed=0)
    assert all(len(q) == 7 and len(t) == 4 and eval(q) == int(t) for q, t in a)
    d = make_pairs("date", 100, seed=0)
    assert all(len(q) == 29 and len(t) == 10 and t[4] == "-" for q, t in d)
    assert make_pairs("date", 10, seed=1) == make_pairs("date", 10, seed=1)
    ps = load_pairs("addition", n=1000)
    assert len(ps.train) == 900 and len(ps.test) == 100


def _date_profile(pairs):
    """(share of each form, share of upper/lower/as-is written dates, first, last date) of
    date pairs, classified the way the book's date.txt was measured."""
    import collections
    import re

    forms, cases = collections.Counter(), collections.Counter()
    for q, t in pairs:
        s = q.strip()
        if t[5:7] == "05":  # "May" is both the short and the long name: not counted
            continue
        if re.fullmatch(r"\d{1,2}/\d{1,2}/\d\d", s):
            forms["short"] += 1
            continue
        words = re.findall(r"[A-Za-z]+", s)
        forms["full" if len(words) == 2 else "long" if len(words[0]) > 3 else "medium"] += 1
        cases["upper" if s.isupper() else "lower" if s.islower() else "title"] += 1
    n, w = sum(forms.values()), sum(cases.values())
    dates = sorted(t for _, t in pairs)
    return ({k: v / n for k, v in forms.items()}, {k: v / w for k, v in cases.items()},
            dates[0], dates[-1])


def test_generated_dates_follow_the_books_distribution():
    """`--data date` stands for the book's date.txt: its four forms a quarter each, written
    dates as-is / upper / lower 1/2, 1/4, 1/4, dates from 1970-01-01 to 2017-07-24 (measured
    on the book's file; compared with the file itself where ../shared has it)."""
    forms, cases, first, last = _date_profile(make_pairs("date", 20_000, seed=5))
    for f in ("short", "medium", "long", "full"):
        assert forms[f] == pytest.approx(0.25, abs=0.015), forms
    assert cases["title"] == pytest.approx(0.5, abs=0.015), cases
    assert cases["upper"] == pytest.approx(0.25, abs=0.015), cases
    assert first.startswith("1970-01") and last.startswith("2017-07") and last <= "2017-07-24"
    book = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "toy_seq2seq"
    if (book / "date.txt").exists():
        lines = (book / "date.txt").read_text(encoding="utf-8").splitlines()
        b_forms, b_cases, b_first, b_last = _date_profile(
            [(ln[:29], ln[30:]) for ln in lines])
        for f in forms:
            assert forms[f] == pytest.approx(b_forms[f], abs=0.015), (forms, b_forms)
        for c in cases:
            assert cases[c] == pytest.approx(b_cases[c], abs=0.015), (cases, b_cases)
        assert (b_first, b_last) == ("1970-01-01", "2017-07-24")


@pytest.mark.parametrize("name", ["seq2seq", "peeky-seq2seq", "attention-seq2seq"])
def test_explain_shows_encoder_attention_and_decoder(name):
    from bptt.tools.explaining.explain import explain

    ex = explain(name)
    layers = [c.layer for c in ex.forward]
    assert layers[:2] == ["encoder.embed", "encoder.rnn.0"] and "decoder.affine" in layers
    assert ("decoder.attention" in layers) == (name == "attention-seq2seq")
    rnn_back = [c for c in ex.backward if c.cell == "LSTM"]
    assert len(rnn_back) == 2 and all(c.replay_ok for c in rnn_back)
