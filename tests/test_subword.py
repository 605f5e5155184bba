"""Subword tokens (`--tokenizer bpe|unigram`): learned from the training split only, saved in
the run's vocab.json as validated JSON, the same on resume, eval and generate; text comes back
as it was written. Needs Hugging Face's tokenizers (the `subword` extra): skips without it."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt.cli import main
from bptt.data.corpus import BUILTIN_PATH, Vocab, load_text, read_text

pytest.importorskip("tokenizers", reason="needs tokenizers (pip install 'bptt[subword]')")

from bptt.data.tokenizers import SubwordModel  # noqa: E402

WORDS = string.ascii_lowercase + string.digits + ".,'-"


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    """The built-in corpus, plus a line with every character the property test draws."""
    path = tmp_path_factory.mktemp("sub") / "text.txt"
    text = read_text(BUILTIN_PATH)
    path.write_text(" ".join(WORDS) + "\n" + text, encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_pieces_are_learned_from_the_training_split_and_spell_unseen_words(kind, corpus_file):
    c = load_text(corpus_file, tokenizer=kind, max_size=300)
    assert c.vocab.tokenizer == kind and c.vocab.subword.kind == kind
    assert 30 < len(c.vocab) <= 301  # at most the pieces asked for, and <unk>
    unseen = "the zebra quizzed xylophones"
    ids = c.vocab.encode(unseen)
    assert c.vocab.unk_id not in ids.tolist()  # spelled with known pieces
    assert c.vocab.decode(ids) == unseen
    # the split is at the same words as the whitespace tokenizer's
    words = load_text(corpus_file)
    assert c.vocab.decode(c.valid).split() == words.vocab.decode(words.valid).split()


def test_the_model_lives_in_vocab_json_and_is_checked(corpus_file, tmp_path):
    c = load_text(corpus_file, tokenizer="bpe", max_size=200)
    c.vocab.to_json(tmp_path / "vocab.json")
    d = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    assert d["tokenizer"] == "bpe" and d["subword"]["kind"] == "bpe"
    again = Vocab.from_json(tmp_path / "vocab.json")
    assert again == c.vocab
    assert again.encode("the cat sat").tolist() == c.vocab.encode("the cat sat").tolist()
    bad = dict(d, subword={"kind": "bpe", "model": {"model": {"type": "nonsense"}}})
    with pytest.raises(ValueError, match="not a valid tokenizers model"):
        Vocab.from_dict(bad)
    with pytest.raises(ValueError, match="needs its bpe model"):
        Vocab.from_dict({k: v for k, v in d.items() if k != "subword"})
    a = SubwordModel.train("bpe", ["the cat sat on the mat"] * 3, 40)
    b = SubwordModel.train("bpe", ["the cat sat on the mat"] * 3, 40)
    assert a.to_dict() == b.to_dict()  # the same text gives the same model


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(alphabet=WORDS, min_size=1, max_size=12), min_size=1, max_size=8))
def test_text_comes_back_as_written(corpus_file, words):
    vocab = _vocab(corpus_file)
    line = " ".join(words)
    assert vocab.decode(vocab.encode(line)) == line


_CACHE: dict = {}


def _vocab(path):
    if "v" not in _CACHE:
        _CACHE["v"] = load_text(path, tokenizer="bpe", max_size=400).vocab
    return _CACHE["v"]


def test_bpe_from_the_command_line_trains_resumes_evaluates_and_generates(corpus_file,
                                                                          tmp_path, capsys):
    out = str(tmp_path / "run")
    argv = ["train", "--data", str(corpus_file), "--tokenizer", "bpe", "--max-size", "300",
            "--hidden", "32", "--embed", "32", "--epochs", "1", "--max-steps", "3", "--quiet",
            "--out", out]
    assert main(argv) == 0
    vocab_json = (tmp_path / "run" / "last" / "vocab.json").read_text(encoding="utf-8")
    assert '"tokenizer": "bpe"' in vocab_json
    capsys.readouterr()
    assert main(["train", "--resume", "--data", str(corpus_file), "--epochs", "2",
                 "--max-steps", "6", "--quiet", "--out", out]) == 0
    assert (tmp_path / "run" / "last" / "vocab.json").read_text(encoding="utf-8") == vocab_json
    assert main(["train", "--resume", "--data", str(corpus_file), "--tokenizer", "whitespace",
                 "--out", out]) == 2
    assert "tokenizer" in capsys.readouterr().err
    assert main(["eval", out, "--data", str(corpus_file), "--split", "all"]) == 0
    assert "perplexity" in capsys.readouterr().out
    assert main(["generate", out, "--start", "the zebra", "--length", "30", "--seed", "1"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("the zebra") and "\u2581" not in text  # pieces joined back
    assert main(["train", "--tokenizer", "bpe", "--out", str(tmp_path / "b")]) == 2
    assert "your own text files" in capsys.readouterr().err
