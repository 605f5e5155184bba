"""Corpora, vocabulary and batching for language models."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt.data.batching import StreamBatcher, eval_batches
from bptt.data.corpus import (
    BUILTIN_PATH,
    Vocab,
    load_builtin,
    load_corpus,
    load_ptb,
    load_text,
    read_text,
    tokenize,
)
from bptt.data.make_builtin import compose


def write(tmp_path, name, text, encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return p


# -- tokenizing and reading ----------------------------------------------------------------------
def test_word_tokens_end_each_line_with_eos_and_skip_blank_lines():
    assert tokenize(" a b \n\n c\n", "word") == ["a", "b", "<eos>", "c", "<eos>"]


def test_char_tokens_keep_newlines_and_normalise_crlf():
    assert tokenize("ab\r\nc\n", "char") == ["a", "b", "\n", "c", "\n"]
    assert tokenize("ab", "char") == ["a", "b"]


def test_read_text_errors_name_the_file_and_the_byte(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_text(tmp_path / "nope.txt")
    with pytest.raises(ValueError, match="empty"):
        read_text(write(tmp_path, "empty.txt", "  \n"))
    bad = write(tmp_path, "latin.txt", "caf\u00e9 ok".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.txt is not UTF-8.*0xe9 at offset 3"):
        read_text(bad)


def test_read_text_drops_a_utf8_bom(tmp_path):
    assert read_text(write(tmp_path, "bom.txt", "\ufeffhello")) == "hello"


# -- vocabulary ----------------------------------------------------------------------------------
def test_vocab_build_orders_by_frequency_with_specials_first():
    v = Vocab.build("b a b c b a".split(), min_freq=1)
    assert v.itos == ["<unk>", "b", "a", "c"]
    assert Vocab.build("b a b c b a".split(), min_freq=2).itos == ["<unk>", "b", "a"]
    assert Vocab.build("b a b c b a".split(), max_size=2).itos == ["<unk>", "b"]


def test_vocab_encode_decode_roundtrip_and_unknowns():
    v = Vocab(["<unk>", "<eos>", "the", "cat"])
    ids = v.encode("the dog cat")
    assert ids.tolist() == [2, 0, 3] and ids.dtype == np.int32
    assert v.decode(v.encode(["the", "cat", "<eos>", "cat"])) == "the cat\ncat"
    strict = Vocab(["the", "cat"], unk=None)
    with pytest.raises(ValueError, match="'dog' is not in the vocabulary.*no <unk>"):
        strict.encode("the dog")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        v.decode([4])


def test_vocab_json_roundtrip(tmp_path):
    v = Vocab(["<unk>", "a", "\n", "é"], level="char")
    v.to_json(tmp_path / "v.json")
    w = Vocab.from_json(tmp_path / "v.json")
    assert w == v and w.level == "char" and w.decode([1, 2, 3]) == "a\né"
    write(tmp_path, "bad.json", '{"tokens": 3}')
    with pytest.raises(ValueError, match="not a bptt vocabulary"):
        Vocab.from_json(tmp_path / "bad.json")


def test_vocab_rejects_duplicates():
    with pytest.raises(ValueError, match="twice"):
        Vocab(["a", "b", "a"])


# -- load_text -----------------------------------------------------------------------------------
def test_load_text_file_split_is_deterministic_and_complete(tmp_path):
    text = "\n".join(f"w{i % 7} w{i % 3} end" for i in range(200))
    p = write(tmp_path, "t.txt", text)
    a, b = load_text(p), load_text(p)
    n = len(tokenize(text))
    assert len(a.train) + len(a.valid) + len(a.test) == n
    assert len(a.train) == round(0.9 * n)
    assert np.array_equal(a.train, b.train) and np.array_equal(a.test, b.test)
    assert a.vocab.decode(a.train[:4]) == "w0 w0 end\n"
    c = load_text(p, split=(0.8, 0.2, 0.0))
    assert c.test is None and len(c.train) + len(c.valid) == n


def test_load_text_unseen_tokens_become_unk(tmp_path):
    d = tmp_path / "corpus"
    d.mkdir()
    write(d, "train.txt", "a b a\nb a\n")
    write(d, "valid.txt", "a zzz\n")
    c = load_text(d)
    assert c.test is None
    assert c.vocab.tokens(c.valid) == ["a", "<unk>", "<eos>"]


def test_load_text_char_level(tmp_path):
    c = load_text(write(tmp_path, "c.txt", "abcab\n" * 50), level="char")
    assert c.level == "char" and set(c.vocab.itos) == {"<unk>", "a", "b", "c", "\n"}


def test_load_text_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_text(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="too few to split"):
        load_text(write(tmp_path, "short.txt", "a b\n"))
    with pytest.raises(ValueError, match="summing to 1"):
        load_text(write(tmp_path, "x.txt", "a b c\n" * 30), split=(0.5, 0.1, 0.1))
    d = tmp_path / "d"
    d.mkdir()
    write(d, "train.txt", "a b\n")
    with pytest.raises(FileNotFoundError):
        load_text(d)  # no valid.txt
    with pytest.raises(ValueError, match="unknown level"):
        load_text(d, level="byte")


def test_load_corpus_dispatch(tmp_path):
    assert load_corpus(None).name == "builtin"
    p = write(tmp_path, "t.txt", "x y z\n" * 40)
    assert load_corpus(str(p)).name == "t.txt"
    with pytest.raises(ValueError, match="word level"):
        load_corpus(str(_fake_ptb(tmp_path)), level="char")


def _fake_ptb(tmp_path):
    d = tmp_path / "ptb"
    d.mkdir()
    write(d, "ptb.train.txt", " the cat <unk> \n a dog N \n")
    write(d, "ptb.valid.txt", " the dog \n")
    write(d, "ptb.test.txt", " a cat \n")
    return d


def test_load_ptb_from_a_directory_uses_first_seen_ids(tmp_path):
    c = load_ptb(_fake_ptb(tmp_path))
    assert c.vocab.itos == ["the", "cat", "<unk>", "<eos>", "a", "dog", "N"]
    assert c.train.tolist() == [0, 1, 2, 3, 4, 5, 6, 3]
    assert c.vocab.decode(c.test) == "a cat\n"


def test_load_ptb_errors_without_the_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_ptb(tmp_path)
    with pytest.raises(FileNotFoundError, match="download=False"):
        load_ptb(None, cache_dir=tmp_path, download=False)


def test_load_ptb_downloads_through_fetch_with_checksums(tmp_path, monkeypatch):
    import bptt.data.corpus as corpus_module

    calls = []

    def fake_fetch(url, sha256, cache_dir=None, filename=None, **kw):
        calls.append((url, sha256))
        split = url.rsplit("ptb.", 1)[1].split(".")[0]
        return write(tmp_path, f"ptb.{split}.txt", f" words of {split} <unk> \n" * 2)

    monkeypatch.setattr(corpus_module, "fetch", fake_fetch)
    c = load_ptb(None, cache_dir=tmp_path / "cache")
    assert [u.rsplit("/", 1)[1] for u, _ in calls] == ["ptb.train.txt", "ptb.valid.txt",
                                                       "ptb.test.txt"]
    assert calls[0][1].startswith("fcea919f")
    assert c.vocab.decode(c.train[:5]) == "words of train <unk>\n"
    assert c.vocab.decode(c.valid[:5]) == "words of <unk> <unk>\n"  # 'valid' is unseen


# -- built-in corpus -----------------------------------------------------------------------------
def test_builtin_corpus_is_what_the_script_writes_and_small():
    assert BUILTIN_PATH.read_text(encoding="utf-8") == compose()
    assert BUILTIN_PATH.stat().st_size <= 300_000


def test_builtin_corpus_loads_at_both_levels():
    w, c = load_builtin("word"), load_builtin("char")
    assert 200 < len(w.vocab) < 1000 and len(w.train) > 50_000
    assert len(c.vocab) < 60 and "\n" in c.vocab
    assert w.vocab.unk == "<unk>" and w.vocab.eos == "<eos>"


# -- batching ------------------------------------------------------------------------------------
def book_get_batch(x, t, batch_size, time_size, time_idx):
    """The book's RnnlmTrainer.get_batch, loops and all (the reference)."""
    batch_x = np.empty((batch_size, time_size), dtype="i")
    batch_t = np.empty((batch_size, time_size), dtype="i")
    data_size = len(x)
    jump = data_size // batch_size
    offsets = [i * jump for i in range(batch_size)]
    for time in range(time_size):
        for i, offset in enumerate(offsets):
            batch_x[i, time] = x[(offset + time_idx) % data_size]
            batch_t[i, time] = t[(offset + time_idx) % data_size]
        time_idx += 1
    return batch_x, batch_t, time_idx


@settings(max_examples=25, deadline=None)
@given(n=st.integers(12, 200), N=st.integers(1, 5), T=st.integers(1, 6), steps=st.integers(1, 9))
def test_stream_batcher_matches_the_book(n, N, T, steps):
    if n - 1 < N * T:
        return
    ids = np.arange(n, dtype=np.int32) * 3
    b = StreamBatcher(ids, N, T)
    time_idx = 0
    for _ in range(steps):
        xs, ts = b.next_batch()
        bx, bt, time_idx = book_get_batch(ids[:-1], ids[1:], N, T, time_idx)
        assert np.array_equal(xs, bx) and np.array_equal(ts, bt)
    assert b.position == time_idx and b.iters_per_epoch == (n - 1) // (N * T)


def test_stream_batcher_resumes_from_a_position():
    ids = np.arange(100, dtype=np.int32)
    a = StreamBatcher(ids, 3, 4)
    for _ in range(5):
        a.next_batch()
    b = StreamBatcher(ids, 3, 4, position=a.position)
    assert all(np.array_equal(u, v) for u, v in zip(a.next_batch(), b.next_batch()))


def test_stream_batcher_rejects_a_too_short_corpus():
    with pytest.raises(ValueError, match="too few for batch 4 x bptt 5"):
        StreamBatcher(np.arange(10), 4, 5)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 120), N=st.integers(1, 6), T=st.integers(1, 8))
def test_eval_batches_cover_contiguous_streams_once(n, N, T):
    ids = np.arange(n) + 1000
    chunks = list(eval_batches(ids, N, T))
    xs = np.concatenate([c[0] for c in chunks], axis=1)
    ts = np.concatenate([c[1] for c in chunks], axis=1)
    assert np.array_equal(ts, xs + 1)  # every target is the next token of its stream
    N_eff, L = xs.shape
    assert N_eff == min(N, n - 1) and L == (n - 1) // N_eff
    assert np.array_equal(xs.ravel(), ids[: N_eff * L])


def test_split_all_is_the_whole_text_in_order(tmp_path):
    text = "\n".join(f"w{i % 5} x" for i in range(100))
    c = load_text(write(tmp_path, "t.txt", text))
    assert c.vocab.decode(c.split("all")) == text + "\n"
    with pytest.raises(ValueError, match="unknown split"):
        c.split("dev")
    no_test = load_text(write(tmp_path, "u.txt", text), split=(0.9, 0.1, 0.0))
    with pytest.raises(ValueError, match="has no test split .*choose valid, train or all"):
        no_test.split("test")


def test_a_fifo_a_link_loop_and_binary_data_are_refused(tmp_path):
    import errno
    import os

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        read_text(fifo)  # would block forever if it were read
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(OSError, match="symbolic link loop") as e:
        read_text(loop)
    assert e.value.errno == errno.ELOOP
    nul = tmp_path / "nul.txt"
    nul.write_bytes(b"abc\x00\x00\x00" * 10)
    with pytest.raises(ValueError, match="holds NUL bytes .* binary, not text"):
        read_text(nul)


def test_unspaced_japanese_at_word_level_warns(tmp_path):
    p = tmp_path / "ja.txt"
    p.write_text("吾輩は猫である。名前はまだ無い。\nどこで生れたかとんと見当がつかぬ。\n" * 40,
                 encoding="utf-8")
    with pytest.warns(UserWarning, match="--level char, --tokenizer bpe, or --tokenizer janome"):
        load_text(p, level="word")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_text(p, level="char")
