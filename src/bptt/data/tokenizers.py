"""How a line of text becomes word tokens: whitespace, Japanese morphemes with janome, or
subword pieces learned from the training text (BPE or unigram).

    whitespace   "the cat sat"       -> ["the", "cat", "sat"]        joined back with " "
    janome       "吾輩は猫である。"   -> ["吾輩", "は", "猫", "で", "ある", "。"]   joined with ""
    bpe/unigram  "the catwalk"       -> ["▁the", "▁cat", "walk"]     "▁" marks a word's start

Japanese (and Chinese) text has no spaces between words, so whitespace splitting makes each
line one "word". janome (``pip install 'bptt[ja]'``) is a pure-Python morphological analyser
that ships its dictionary in the wheel: nothing is downloaded at run time.

Subword pieces (``pip install 'bptt[subword]'``): a vocabulary of ``max_size`` pieces learned
on the training split only, so every word, seen or not, is spelled with known pieces (no
``<unk>`` but for characters never seen in training). BPE (Sennrich et al. 2016) merges the
most frequent pair of symbols again and again; unigram (Kudo 2018) keeps the pieces of a
unigram language model that explain the text best. Both are trained by Hugging Face's
``tokenizers``, chosen over sentencepiece by measurement (docs/results.md): fewer BPE pieces
per word at the same vocabulary size, training as fast, and a model that is JSON, kept inside
the run's ``vocab.json`` and validated on load (sentencepiece's is a binary protobuf).

The tokenizer (and a subword model) is recorded in the vocabulary, so ``eval``, ``generate``
and ``export`` split text the same way and join generated tokens back as the text was written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

TOKENIZERS = ("whitespace", "janome", "bpe", "unigram")
SUBWORD = ("bpe", "unigram")
WORD_START = "\u2581"  # "▁": a piece that begins a word (sentencepiece's mark)
SUBWORD_VOCAB = 8000  # pieces when --max-size is not given (sentencepiece's default)
_JANOME: list[Any] = []  # the loaded janome Tokenizer (loading its dictionary takes ~1 s)


def check_tokenizer(name: str) -> str:
    if name not in TOKENIZERS:
        raise ValueError(f"--tokenizer must be one of {', '.join(TOKENIZERS)}, got {name!r}")
    return name


def _janome() -> Any:
    if not _JANOME:
        try:
            from janome.tokenizer import Tokenizer
        except ImportError:
            raise ValueError("--tokenizer janome needs the janome package: "
                             "pip install 'bptt[ja]' (or pip install janome)") from None
        _JANOME.append(Tokenizer(wakati=True))
    return _JANOME[0]


def _hf_tokenizers(kind: str) -> Any:
    os.environ.setdefault("RAYON_NUM_THREADS", "1")  # deterministic, and never oversubscribed
    try:
        import tokenizers
    except ImportError:
        raise ValueError(f"--tokenizer {kind} needs Hugging Face's tokenizers package: "
                         f"pip install 'bptt[subword]' (or pip install tokenizers)") from None
    return tokenizers


class SubwordModel:
    """A trained BPE or unigram model: ``pieces(line)`` splits a line; kept as its JSON.

    ``kind``: 'bpe' or 'unigram'. ``spec``: the ``tokenizers`` model as a JSON object (what
    :meth:`to_dict` writes into ``vocab.json``).
    """

    def __init__(self, kind: str, spec: dict[str, Any]) -> None:
        if kind not in SUBWORD:
            raise ValueError(f"unknown subword model {kind!r}: choose one of "
                             f"{', '.join(SUBWORD)}")
        if not isinstance(spec, dict):
            raise ValueError(f"the {kind} model must be a JSON object (tokenizers' format)")
        tk = _hf_tokenizers(kind)
        try:
            self._tokenizer = tk.Tokenizer.from_str(json.dumps(spec))
        except Exception as e:  # tokenizers raises its own Exception type for a bad model
            raise ValueError(f"the vocabulary's {kind} model is not a valid tokenizers model "
                             f"({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                             ) from None
        self.kind, self.spec = kind, spec

    @classmethod
    def train(cls, kind: str, lines: Iterable[str], vocab_size: int = SUBWORD_VOCAB,
              unk: str = "<unk>") -> SubwordModel:
        """Learn ``vocab_size`` pieces (at most; fewer when the text has no more to merge)
        from ``lines``."""
        if kind not in SUBWORD:
            raise ValueError(f"unknown subword model {kind!r}: choose one of "
                             f"{', '.join(SUBWORD)}")
        if vocab_size < 2:
            raise ValueError(f"a {kind} vocabulary needs at least 2 pieces, got {vocab_size}")
        tk = _hf_tokenizers(kind)
        if kind == "bpe":
            tokenizer = tk.Tokenizer(tk.models.BPE(unk_token=unk))
            trainer = tk.trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[unk],
                                             show_progress=False)
        else:
            tokenizer = tk.Tokenizer(tk.models.Unigram())
            trainer = tk.trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=[unk],
                                                 unk_token=unk, show_progress=False)
        tokenizer.pre_tokenizer = tk.pre_tokenizers.Metaspace()
        tokenizer.train_from_iterator(list(lines), trainer)
        return cls(kind, json.loads(tokenizer.to_str()))

    def pieces(self, line: str) -> list[str]:
        """The pieces of one line; a word's first piece starts with "▁"."""
        return list(self._tokenizer.encode(line).tokens)

    def vocabulary(self) -> list[str]:
        """Every piece the model can give, by its id."""
        pieces = self._tokenizer.get_vocab()
        return sorted(pieces, key=pieces.__getitem__)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.spec}

    @classmethod
    def from_dict(cls, d: Any) -> SubwordModel:
        if not isinstance(d, dict) or not isinstance(d.get("kind"), str):
            raise ValueError("the vocabulary's \"subword\" field must be an object with a "
                             "\"kind\" and a \"model\"")
        return cls(d["kind"], d.get("model"))


def split_words(line: str, tokenizer: str = "whitespace",
                subword: SubwordModel | None = None) -> list[str]:
    """The word tokens of one line (``subword``: the trained model of 'bpe' / 'unigram')."""
    if check_tokenizer(tokenizer) == "whitespace":
        return line.split()
    if tokenizer == "janome":
        return [w for w in _janome().tokenize(line) if w.strip()]
    if subword is None or subword.kind != tokenizer:
        raise ValueError(f"--tokenizer {tokenizer} splits with a model learned from the "
                         f"training text, and none was given")
    return subword.pieces(line)


def token_text(token: str, line_start: bool, tokenizer: str) -> str:
    """A token as it reads in running text: a word after the first of its line brings its
    space (whitespace), a morpheme none (janome), a piece its "▁" as a space (subword)."""
    if check_tokenizer(tokenizer) == "whitespace":
        return token if line_start else " " + token
    if tokenizer == "janome":
        return token
    text = token.replace(WORD_START, " ")
    return text.lstrip(" ") if line_start else text
