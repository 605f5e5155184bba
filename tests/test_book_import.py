"""The book's trained .pkl weights: a file of the book's structure (built here: CI has no book
files) imports to a checkpoint whose perplexity is the book's eval_perplexity of the same
weights; anything but NumPy arrays is refused before it runs (fuzzed)."""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import pickletools
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bptt import load_checkpoint
from bptt.cli import main
from bptt.data.corpus import load_corpus
from bptt.models.rnnlm import LanguageModel
from bptt.tools.exchange.book_import import BookFileError, import_book, read_book_params
from bptt.train.language_model import evaluate
from bptt.train.seq2seq import evaluate_seq2seq

WORDS = ("the cat sat on the mat . a dog ran to the park . the bird sang in a tree . "
         "she saw the dog and the cat . ").split()


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    r = np.random.default_rng(0)
    # 801 test tokens: 800 / 10 streams does not split into whole windows of 35, so the
    # book's loop leaves tokens unscored that bptt's default evaluation scores
    for name, n in (("train", 3000), ("valid", 600), ("test", 801)):
        words = [WORDS[i] for i in r.integers(0, len(WORDS), n)]
        (d / f"ptb.{name}.txt").write_text(" ".join(words) + "\n", encoding="utf-8")
    return d


def book_params(V, D, H, layers, seed=0):
    """Float16 arrays in the book's order, as its save_params writes them."""
    r = np.random.default_rng(seed)
    arrays = [r.standard_normal((V, D)) * 0.3]
    for k in range(layers):
        arrays += [r.standard_normal((D if k == 0 else H, 4 * H)) * 0.3,
                   r.standard_normal((H, 4 * H)) * 0.3, r.standard_normal(4 * H) * 0.1]
    arrays += [arrays[0].T.copy() if layers == 2 else r.standard_normal((H, V)) * 0.3,
               r.standard_normal(V) * 0.1]
    return [a.astype(np.float16) for a in arrays]


def book_eval_perplexity(arrays, ids, batch_size=10, time_size=35):
    """The book's eval_perplexity (common/util.py) on its Rnnlm: streams at offsets
    i * (len - 1) // batch, state carried, mean loss over max_iters windows (by hand)."""
    V, D = arrays[0].shape
    H = arrays[2].shape[0]
    model = LanguageModel(V, D, H, cell="lstm", dtype="float32")
    named = dict(zip(model.param_names, (a.astype(np.float32) for a in arrays), strict=True))
    model.set_params(named)
    corpus_size = len(ids)
    max_iters = (corpus_size - 1) // (batch_size * time_size)
    jump = (corpus_size - 1) // batch_size
    total = 0.0
    for it in range(max_iters):
        xs = np.zeros((batch_size, time_size), dtype=np.int64)
        ts = np.zeros((batch_size, time_size), dtype=np.int64)
        offset = it * time_size
        for t in range(time_size):
            for i in range(batch_size):
                xs[i, t] = ids[(jump * i + offset + t) % corpus_size]
                ts[i, t] = ids[(jump * i + offset + t + 1) % corpus_size]
        total += float(model.forward(xs, ts, train_flg=False))
    return math.exp(total / max_iters)


def test_an_imported_rnnlm_scores_the_books_perplexity(corpus_dir, tmp_path):
    V = len(load_corpus(str(corpus_dir)).vocab)
    arrays = book_params(V, 8, 6, layers=1)
    pkl = tmp_path / "Rnnlm.pkl"
    pkl.write_bytes(pickle.dumps(arrays))
    import_book(pkl, "rnnlm", tmp_path / "run", str(corpus_dir))
    ck = load_checkpoint(tmp_path / "run")
    assert ck.train_config["imported"]["book_model"] == "rnnlm"  # no training settings
    assert "epochs" not in ck.train_config and "lr" not in ck.train_config
    for name, a in zip(ck.model.param_names, arrays, strict=True):
        np.testing.assert_array_equal(ck.model.params[ck.model.param_names.index(name)],
                                      a.astype(np.float32))
    test = load_corpus(str(corpus_dir)).test
    book = book_eval_perplexity(arrays, test)
    r = evaluate(tmp_path / "run", book=True)
    assert r["perplexity"] == pytest.approx(book, rel=1e-6)
    assert r["scored_tokens"] == 10 * 35 * 2 and r["method"] == "book"
    every = evaluate(tmp_path / "run")  # every token: not the book's number on this split
    assert every["scored_tokens"] == 800 and every["method"] == "streams"
    assert abs(every["perplexity"] / book - 1) > 1e-5
    assert main(["eval", str(tmp_path / "run"), "--book", "--json"]) == 0


def test_better_rnnlm_is_tied_and_checked(corpus_dir, tmp_path):
    V = len(load_corpus(str(corpus_dir)).vocab)
    arrays = book_params(V, 6, 6, layers=2)
    pkl = tmp_path / "BetterRnnlm.pkl"
    pkl.write_bytes(pickle.dumps(arrays))
    done = import_book(pkl, "better-rnnlm", tmp_path / "run", str(corpus_dir))
    model = done["model"]
    assert model.tie_weights and model.num_layers == 2
    assert np.shares_memory(model.affine.params[0], model.embed.params[0])
    arrays[-2] = arrays[-2] + np.float16(1)  # output weights no longer the embedding's
    pkl.write_bytes(pickle.dumps(arrays))
    with pytest.raises(BookFileError, match="not the embedding's transpose"):
        import_book(pkl, "better-rnnlm", tmp_path / "run2", str(corpus_dir))


def test_wrong_files_are_one_clear_line(corpus_dir, tmp_path, capsys):
    V = len(load_corpus(str(corpus_dir)).vocab)
    cases = [
        (book_params(V, 8, 6, layers=2), "rnnlm", "holds 9 arrays"),
        (book_params(V + 3, 8, 6, layers=1), "rnnlm", "trained on .* words but"),
        ({"W": np.zeros(3)}, "rnnlm", "holds a dict, not the book's list"),
        ([np.zeros(3, dtype=np.int64)], "rnnlm", "asks for dtype 'i8'"),
        (["not an array"], "rnnlm", "item 0 is str, not a float array"),
        ([np.array([np.nan], dtype=np.float16)], "rnnlm", "NaN or infinite"),
    ]
    for k, (obj, model, match) in enumerate(cases):
        pkl = tmp_path / f"bad{k}.pkl"
        pkl.write_bytes(pickle.dumps(obj))
        code = main(["import-book", str(pkl), "--model", model, "--data", str(corpus_dir),
                     "--out", str(tmp_path / f"out{k}")])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert pytest.importorskip("re").search(match, err), err
        assert not (tmp_path / f"out{k}" / "best").exists()


class Reduces:
    """What a hostile file would carry: a reducer that calls ``fn(*args)`` when loaded."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.mark.parametrize("make", [
    lambda canary: Reduces(os.system, f"touch {canary}"),
    lambda canary: [np.zeros(2), Reduces(eval, f"open({str(canary)!r}, 'w')")],
    lambda canary: [[Reduces(subprocess.call, ["touch", str(canary)])]],
    lambda canary: Reduces(__import__, "os"),
    lambda canary: Reduces(np.save, str(canary), np.zeros(1)),
], ids=["os.system", "builtins.eval", "nested subprocess", "__import__", "numpy.save"])
def test_a_pickle_that_names_anything_else_is_refused_and_nothing_runs(make, tmp_path):
    canary = tmp_path / "ran"
    pkl = tmp_path / "evil.pkl"
    pkl.write_bytes(pickle.dumps(make(canary)))
    with pytest.raises(BookFileError, match=r"refused: the pickle names .*\(nothing was run\)"):
        read_book_params(pkl)
    assert not canary.exists() and not (tmp_path / "ran.npy").exists()


# a mutated pickle can make NumPy build a malformed array whose deallocation NumPy itself
# reports as an "unraisable" error (get_clear_loop for float16): NumPy's message, not a failure
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_book_files_load_or_fail_with_one_book_file_error(data, tmp_path_factory):
    """Flip, cut or splice bytes of a real book-shaped file: it loads as arrays or fails with
    BookFileError, never another exception (and never runs anything)."""
    raw = bytearray(pickle.dumps(book_params(5, 3, 2, layers=1), protocol=4))
    ops = [op for op, _, _ in pickletools.genops(bytes(raw))]
    assert ops  # a real pickle
    how = data.draw(st.sampled_from(["flip", "cut", "insert"]))
    i = data.draw(st.integers(0, len(raw) - 1))
    if how == "flip":
        raw[i] ^= data.draw(st.integers(1, 255))
    elif how == "cut":
        raw = raw[:i]
    else:
        raw[i:i] = data.draw(st.binary(min_size=1, max_size=16))
    path = tmp_path_factory.mktemp("fuzz") / "f.pkl"
    path.write_bytes(bytes(raw))
    try:
        arrays = read_book_params(path)
    except BookFileError:
        return
    assert all(isinstance(a, np.ndarray) and a.dtype.kind == "f" for a in arrays)


def test_a_huge_memo_index_is_refused_before_the_unpickler_runs(tmp_path, monkeypatch):
    """Bytes inserted before a TUPLE1 turned into LONG_BINPUT 750,947,805: CPython's unpickler
    sizes its memo table to the index (100 s, gigabytes) before it meets the bad opcode."""
    from bptt.tools.exchange import book_import

    raw = bytearray(pickle.dumps(book_params(5, 3, 2, layers=1), protocol=4))
    put = raw.index(pickle.TUPLE1, 180)  # after the shape's BININT1 0 of the first array
    raw[put:put] = bytes.fromhex("72dd8dc22ccccb3335bab4b3caf4f9")
    path = tmp_path / "f.pkl"
    path.write_bytes(bytes(raw))

    def never(self):
        raise AssertionError("the unpickler ran")

    monkeypatch.setattr(book_import._ArraysOnly, "load", never)
    with pytest.raises(BookFileError, match=r"a memo index \(750947805\) past the file's"):
        read_book_params(path)
    good = tmp_path / "good.pkl"
    good.write_bytes(pickle.dumps(book_params(5, 3, 2, layers=1), protocol=4))
    with pytest.raises(BookFileError, match="the unpickler ran"):  # a real file reaches it
        read_book_params(good)


class _ForgedDtype:
    def __init__(self, descr, state):
        self.descr, self.state = descr, state


class _ForgedPickler(pickle.Pickler):
    """Pickles an array as NumPy does (``_reconstruct`` + BUILD with (1, shape, dtype, fortran,
    bytes)) but with any dtype constructor arguments and pickled dtype state."""

    def reducer_override(self, obj):
        if isinstance(obj, _ForgedDtype):
            return np.dtype, (obj.descr, False, True), obj.state
        if isinstance(obj, np.ndarray):
            from numpy._core.multiarray import _reconstruct

            return (_reconstruct, (np.ndarray, (0,), b"b"),
                    (1, obj.shape, _ForgedDtype(*self.forged), False, obj.tobytes()))
        return NotImplemented


def _forged_dtype_state_pickle(descr: str, state: tuple) -> bytes:
    """A book-shaped pickle of one 2-element array whose dtype is ``descr`` with the pickled
    state ``state`` (the memory-unsafe case: an object dtype's REFCOUNT flag makes NumPy free 8
    raw bytes as a pointer)."""
    f = io.BytesIO()
    p = _ForgedPickler(f, protocol=4)
    p.forged = (descr, state)
    p.dump([np.zeros(2, dtype=np.float64)])
    return f.getvalue()


@pytest.mark.parametrize("descr,state", [
    ("O8", (3, "|", None, None, None, -1, -1, 0x3F)),   # object dtype, REFCOUNT and more
    ("f4", (3, "<", None, None, None, -1, -1, 0x3F)),   # a float dtype claiming those flags
    ("f4", (3, "<", None, ("a",), {"a": 1}, 4, 4, 0)),  # fields on a plain float
])
def test_a_forged_dtype_state_is_refused_without_reaching_numpy(descr, state, tmp_path):
    """Run in a child process: a crash (segfault) there fails the test instead of pytest."""
    import subprocess
    import sys

    pkl = tmp_path / "forged.pkl"
    pkl.write_bytes(_forged_dtype_state_pickle(descr, state))
    code = ("import sys\n"
            "from bptt.tools.exchange.book_import import read_book_params, BookFileError\n"
            "try:\n    read_book_params(sys.argv[1])\nexcept BookFileError as e:\n"
            "    print('refused:', e)\nelse:\n    print('loaded')\n")
    r = subprocess.run([sys.executable, "-c", code, str(pkl)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("refused:"), (r.returncode, r.stdout,
                                                                   r.stderr)
    assert "Internal error" not in r.stderr, r.stderr


@pytest.mark.parametrize("protocol", [3, 4, 5])
@pytest.mark.parametrize("dtype", ["<f2", ">f4", "<f8"])
def test_book_files_of_every_protocol_and_byte_order_load_exactly(protocol, dtype, tmp_path):
    arrays = [np.arange(6, dtype=dtype).reshape(2, 3) / 7,
              np.asfortranarray(np.arange(6, dtype=dtype).reshape(3, 2))]
    pkl = tmp_path / "p.pkl"
    pkl.write_bytes(pickle.dumps(arrays, protocol=protocol))
    got = read_book_params(pkl)
    for a, b in zip(got, arrays, strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == np.dtype(dtype).newbyteorder("=") and a.flags.writeable


@settings(max_examples=200, deadline=None)
@given(state=st.tuples(st.integers(-1, 5), st.sampled_from(["<", ">", "|", "=", "x"]),
                       st.none() | st.just(("a",)), st.none() | st.just({"a": 1}),
                       st.none() | st.just({}), st.integers(-2, 9), st.integers(-2, 9),
                       st.integers(0, 0xFF)),
       descr=st.sampled_from(["f2", "f4", "f8", "O8", "V8", "i4", "U2"]))
def test_fuzzed_dtype_states_load_a_float_array_or_are_refused(state, descr, tmp_path_factory):
    """Whatever the dtype's constructor arguments and pickled state say: a plain float array
    with the right values, or BookFileError (states are never handed to NumPy)."""
    pkl = tmp_path_factory.mktemp("dt") / "f.pkl"
    pkl.write_bytes(_forged_dtype_state_pickle(descr, state))
    try:
        arrays = read_book_params(pkl)
    except BookFileError:
        return
    assert descr in ("f2", "f4", "f8") and state[2:] == (None, None, None, -1, -1, 0)
    assert arrays[0].dtype.kind == "f" and arrays[0].shape == (2,)


# -- the book's AttentionSeq2seq (ch. 8) --------------------------------------------------------
@pytest.fixture(scope="module")
def date_file(tmp_path_factory):
    from bptt.data.pairs import make_pairs

    path = tmp_path_factory.mktemp("dates") / "date.txt"
    lines = [f"{q}_{a}" for q, a in make_pairs("date", 300, seed=3)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def book_load_data(path, seed=1984):
    """The book's dataset/sequence.py load_data, written out: ids by first appearance of each
    question then '_' + answer, a legacy-RNG shuffle, the last tenth for the test."""
    questions, answers, char_to_id = [], [], {}
    for line in open(path, encoding="utf-8"):
        idx = line.find("_")
        questions.append(line[:idx])
        answers.append(line[idx:-1])
    for q, a in zip(questions, answers):
        for c in q + a:
            char_to_id.setdefault(c, len(char_to_id))
    x = np.array([[char_to_id[c] for c in q] for q in questions])
    t = np.array([[char_to_id[c] for c in a] for a in answers])
    indices = np.arange(len(x))
    np.random.seed(seed)
    np.random.shuffle(indices)
    x, t = x[indices], t[indices]
    split_at = len(x) - len(x) // 10
    return (x[:split_at], t[:split_at]), (x[split_at:], t[split_at:]), char_to_id


def test_book_order_gives_the_books_ids_and_split(date_file):
    from bptt.data.pairs import load_pairs

    (_, _), (x_test, t_test), char_to_id = book_load_data(date_file)
    pairs = load_pairs(date_file, reverse=True, book_order=True)
    assert pairs.source_vocab.itos == list(char_to_id)
    id_of = pairs.source_vocab.stoi
    assert [[id_of[c] for c in q] for q, _ in pairs.test] == x_test.tolist()
    assert [[id_of["_"]] + [id_of[c] for c in a] for _, a in pairs.test] == t_test.tolist()


def test_an_imported_attention_seq2seq_answers_as_the_same_weights_do(date_file, tmp_path,
                                                                      capsys):
    from bptt.models.seq2seq import AttentionSeq2seq

    (_, _), (x_test, _), char_to_id = book_load_data(date_file)
    V, D, H = len(char_to_id), 5, 7
    r = np.random.default_rng(0)
    shapes = [(V, D), (D, 4 * H), (H, 4 * H), (4 * H,)] * 2 + [(2 * H, V), (V,)]
    arrays = [(r.standard_normal(s) * 0.8).astype(np.float16) for s in shapes]
    pkl = tmp_path / "AttentionSeq2seq.pkl"
    pkl.write_bytes(pickle.dumps(arrays))
    assert main(["import-book", str(pkl), "--model", "attention-seq2seq", "--data",
                 str(date_file), "--out", str(tmp_path / "run")]) == 0
    # by hand, as the book's ch08: the weights assigned in order, questions reversed, greedy
    model = AttentionSeq2seq(vocab_size=V, wordvec_size=D, hidden_size=H, dtype="float32")
    model.set_params({n: a.astype(np.float32)
                      for n, a in zip(model.param_names, arrays, strict=True)})
    id_to_char = {i: c for c, i in char_to_id.items()}
    want = model.generate(x_test[:, ::-1], char_to_id["_"], 10)
    questions = ["".join(id_to_char[i] for i in row) for row in x_test[:5]]
    capsys.readouterr()
    assert main(["seq2seq", "translate", str(tmp_path / "run"), *questions]) == 0
    got = [line.split("\t")[1] for line in capsys.readouterr().out.splitlines()]
    assert got == ["".join(id_to_char[int(i)] for i in row) for row in want[:5]]
    # the run records an import (no training settings) and keeps the book's test split, so
    # moving the data file away does not break eval
    cfg = json.loads((tmp_path / "run" / "best" / "config.json").read_text(encoding="utf-8"))
    assert cfg["train"]["imported"]["book_model"] == "attention-seq2seq"
    assert "epochs" not in cfg["train"] and "lr" not in cfg["train"]
    before = evaluate_seq2seq(tmp_path / "run")
    assert before["pairs"] == len(x_test)
    moved = date_file.rename(date_file.with_name("elsewhere.txt"))
    try:
        assert evaluate_seq2seq(tmp_path / "run") == before
    finally:
        moved.rename(date_file)
    capsys.readouterr()
    assert main(["import-book", str(pkl), "--model", "attention-seq2seq", "--out",
                 str(tmp_path / "run2")]) == 2
    err = capsys.readouterr().err
    assert "needs the pair file the book trained it on: give --data" in err, err
    assert err.count("\n") == 1
