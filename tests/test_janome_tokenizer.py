"""Japanese at word level with janome (extra [ja]): morphemes as tokens, the tokenizer kept in
the checkpoint so prompts split the same way, generated words joined without spaces; without
janome, one line saying how to install it."""

from __future__ import annotations

import builtins
import json

import pytest

import bptt.data.tokenizers as tokenizers
from bptt.cli import main
from bptt.data.corpus import Vocab, load_corpus, load_text

SOSEKI = ("吾輩は猫である。名前はまだ無い。\nどこで生れたかとんと見当がつかぬ。\n"
          "何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。\n"
          "吾輩はここで始めて人間というものを見た。\n")


@pytest.fixture()
def soseki(tmp_path):
    p = tmp_path / "neko.txt"
    p.write_text(SOSEKI * 40, encoding="utf-8")
    return p


def test_janome_splits_japanese_into_morphemes(soseki):
    pytest.importorskip("janome", reason="needs the ja extra: pip install 'bptt[ja]'")
    corpus = load_text(soseki, level="word", tokenizer="janome")
    words = set(corpus.vocab.itos)
    assert {"吾輩", "猫", "名前", "人間"} <= words
    assert "吾輩は猫である。名前はまだ無い。" not in words  # not one line as one "word"
    assert corpus.vocab.tokenizer == "janome"
    again = Vocab.from_dict(json.loads(json.dumps(corpus.vocab.to_dict())))
    assert again.tokenizer == "janome" and again.tokenize("吾輩は猫") == ["吾輩", "は", "猫"]
    assert again.decode(again.encode("吾輩は猫である")) == "吾輩は猫である"  # no spaces


def test_train_and_generate_with_the_tokenizer_recorded(soseki, tmp_path, capsys):
    pytest.importorskip("janome", reason="needs the ja extra: pip install 'bptt[ja]'")
    out = str(tmp_path / "run")
    assert main(["train", "--data", str(soseki), "--tokenizer", "janome", "--embed", "16",
                 "--hidden", "16", "--batch", "4", "--bptt", "8", "--max-steps", "30",
                 "--quiet", "--out", out]) == 0
    vocab = json.loads((tmp_path / "run" / "best" / "vocab.json").read_text(encoding="utf-8"))
    assert vocab["tokenizer"] == "janome"
    capsys.readouterr()
    assert main(["generate", out, "--start", "吾輩は", "--length", "12", "--seed", "1"]) == 0
    sample = capsys.readouterr().out
    assert sample.startswith("吾輩は") and " " not in sample.strip()
    assert main(["eval", out]) == 0  # the test split, split by the recorded tokenizer


def test_without_janome_one_line_says_how_to_install(soseki, monkeypatch, capsys, tmp_path):
    real_import = builtins.__import__

    def no_janome(name, *args, **kwargs):
        if name.startswith("janome"):
            raise ImportError("No module named 'janome'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_janome)
    monkeypatch.setattr(tokenizers, "_JANOME", [])
    code = main(["train", "--data", str(soseki), "--tokenizer", "janome", "--max-steps", "1",
                 "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "pip install 'bptt[ja]'" in err


def test_the_tokenizer_is_for_text_files_at_word_level():
    with pytest.raises(ValueError, match="use it with --data FILE at word level"):
        load_corpus(None, "word", tokenizer="janome")
    with pytest.raises(ValueError, match="--tokenizer must be one of whitespace, janome"):
        load_corpus(None, "word", tokenizer="mecab")
