"""Corpora for language models: the Penn Treebank, any UTF-8 text, the built-in corpus.

A corpus is three int arrays of token ids (train, valid, optional test) and the :class:`Vocab`
that maps ids to tokens, built from the training split only::

    corpus = load_ptb("../shared/data/ptb")      # or load_ptb() to download into the cache
    corpus = load_text("book.txt", level="char")  # one file, split 90/5/5 (deterministic)
    corpus = load_text("my_corpus/")              # train.txt, valid.txt [, test.txt] inside
    corpus = load_builtin()                       # small English text shipped with bptt

Word level: each line's whitespace-separated words, then ``<eos>`` (blank lines are skipped), the
usual convention for the PTB. Character level: every character, ``"\\n"`` included. Tokens of
valid/test that the training split never saw become ``<unk>``.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .download import default_cache_dir, fetch, sha256sum
from .tokenizers import (
    SUBWORD,
    SUBWORD_VOCAB,
    SubwordModel,
    check_tokenizer,
    split_words,
    token_text,
)

UNK = "<unk>"
EOS = "<eos>"
LEVELS = ("word", "char")
ID_DTYPE = np.int32

PTB_URL = "https://raw.githubusercontent.com/tomsercu/lstm/master/data/ptb.{split}.txt"
PTB_SHA256 = {
    "train": "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
    "valid": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
    "test": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
}
BUILTIN_PATH = Path(__file__).resolve().with_name("builtin.txt")


def _check_level(level: str) -> str:
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}: choose 'word' or 'char'")
    return level


class Vocab:
    """Token <-> id mapping, saved as JSON.

    ``itos[i]`` is the token of id ``i``; ``stoi[token]`` its id. ``unk`` (default ``<unk>``)
    is what unknown tokens become when encoding; with ``unk=None`` they are an error.
    """

    def __init__(self, tokens: Sequence[str], level: str = "word", unk: str | None = UNK,
                 eos: str | None = EOS, tokenizer: str = "whitespace",
                 subword: SubwordModel | None = None) -> None:
        self.level = _check_level(level)
        self.tokenizer = check_tokenizer(tokenizer)  # how word-level text was split
        if (tokenizer in SUBWORD) != (subword is not None) or (
                subword is not None and subword.kind != tokenizer):
            raise ValueError(f"a {tokenizer} vocabulary needs its {tokenizer} model (and only "
                             f"a subword vocabulary has one)")
        self.subword = subword  # the learned pieces of a 'bpe' / 'unigram' vocabulary
        self.itos = list(tokens)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            dup = next(t for t in self.itos if self.itos.count(t) > 1)
            raise ValueError(f"vocabulary lists token {dup!r} twice")
        self.unk = unk if unk in self.stoi else None
        self.eos = eos if eos in self.stoi else None

    # -- building ----------------------------------------------------------------------------
    @classmethod
    def build(cls, tokens: Iterable[str], level: str = "word", min_freq: int = 1,
              max_size: int | None = None, specials: Sequence[str] = (UNK,),
              tokenizer: str = "whitespace", subword: SubwordModel | None = None) -> Vocab:
        """Vocabulary of a token stream: ``specials`` first, then by frequency (ties: first seen).

        Tokens seen fewer than ``min_freq`` times are dropped; ``max_size`` caps the size,
        specials included.
        """
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        if max_size is not None and max_size < len(specials) + 1:
            raise ValueError(f"max_size must be > {len(specials)} (the special tokens), "
                             f"got {max_size}")
        counts = Counter(tokens)
        itos = list(specials)
        for tok, n in counts.most_common():  # stable: ties keep first-seen order
            if n < min_freq or (max_size is not None and len(itos) >= max_size):
                break
            if tok not in specials:
                itos.append(tok)
        return cls(itos, level=level, tokenizer=tokenizer, subword=subword)

    # -- lookups -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def __repr__(self) -> str:
        return f"Vocab({len(self)} {self.level} tokens, unk={self.unk!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.to_dict() == other.to_dict()

    @property
    def unk_id(self) -> int | None:
        return None if self.unk is None else self.stoi[self.unk]

    def id(self, token: str) -> int:
        """The id of one token (``<unk>``'s id if unknown; an error if there is no ``<unk>``)."""
        i = self.stoi.get(token)
        if i is not None:
            return i
        if self.unk is None:
            raise ValueError(f"token {token!r} is not in the vocabulary ({len(self)} tokens) and "
                             f"the vocabulary has no <unk> to stand for it")
        return self.stoi[self.unk]

    def tokenize(self, text: str) -> list[str]:
        """Split text into tokens: words (by the vocabulary's tokenizer) or characters."""
        if self.level == "char":
            return list(text)
        return [w for line in text.splitlines()
                for w in split_words(line, self.tokenizer, self.subword)]

    def encode(self, text_or_tokens: str | Sequence[str]) -> np.ndarray:
        """Ids (int32) of a text (tokenized by :meth:`tokenize`) or of a list of tokens."""
        toks = self.tokenize(text_or_tokens) if isinstance(text_or_tokens, str) else text_or_tokens
        if self.unk is None:
            return np.array([self.id(t) for t in toks], dtype=ID_DTYPE)
        u = self.stoi[self.unk]
        return np.array([self.stoi.get(t, u) for t in toks], dtype=ID_DTYPE)

    def tokens(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ids; an id outside the vocabulary is an error."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.itos):
                raise ValueError(f"id {i} is outside the vocabulary [0, {len(self.itos) - 1}]")
            out.append(self.itos[i])
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ids: characters, or words as the text was written (spaces between them;
        none between janome's morphemes; subword pieces joined at their "▁") with ``<eos>``
        as a line break."""
        toks = self.tokens(ids)
        if self.level == "char":
            return "".join(toks)
        out, line_start = [], True
        for t in toks:
            if t == self.eos:
                out.append("\n")
                line_start = True
            else:
                out.append(token_text(t, line_start, self.tokenizer))
                line_start = False
        return "".join(out)

    # -- JSON --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {"format": "bptt-vocab", "version": 1, "level": self.level, "unk": self.unk,
             "eos": self.eos, "tokens": self.itos}
        if self.tokenizer != "whitespace":
            d["tokenizer"] = self.tokenizer
        if self.subword is not None:
            d["subword"] = self.subword.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Vocab:
        if not isinstance(d, dict) or d.get("format") != "bptt-vocab":
            raise ValueError("not a bptt vocabulary (expected a JSON object with "
                             "\"format\": \"bptt-vocab\")")
        if not isinstance(d.get("tokens"), list) or not all(isinstance(t, str)
                                                            for t in d["tokens"]):
            raise ValueError("vocabulary JSON has no list of \"tokens\" (strings)")
        for key in ("level", "unk", "eos", "tokenizer"):
            if not isinstance(d.get(key), (str, type(None))):
                raise ValueError(f"vocabulary JSON field {key!r} must be a string or null, got "
                                 f"{type(d[key]).__name__}")
        subword = SubwordModel.from_dict(d["subword"]) if "subword" in d else None
        return cls(d["tokens"], level=d.get("level", "word"), unk=d.get("unk"), eos=d.get("eos"),
                   tokenizer=d.get("tokenizer", "whitespace"), subword=subword)

    def to_json(self, path: str | os.PathLike[str]) -> None:
        """Write the vocabulary as JSON (UTF-8)."""
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> Vocab:
        """Read a vocabulary written by :meth:`to_json`."""
        text = read_text(path)
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON ({e})") from None
        try:
            return cls.from_dict(d)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None


@dataclass
class Corpus:
    """Token ids of each split (int32 arrays; ``test`` may be None) and their vocabulary."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray | None
    vocab: Vocab
    name: str = "corpus"

    @property
    def level(self) -> str:
        return self.vocab.level

    def split(self, name: str) -> np.ndarray:
        """The ids of split 'train', 'valid' or 'test' (an error if absent), or 'all' of them
        in order (for a single text file: the whole file)."""
        if name == "all":
            return np.concatenate([s for s in (self.train, self.valid, self.test)
                                   if s is not None])
        if name not in ("train", "valid", "test"):
            raise ValueError(f"unknown split {name!r}: choose train, valid, test or all")
        ids = getattr(self, name)
        if ids is None:
            raise ValueError(f"corpus {self.name} has no {name} split (a corpus directory "
                             f"gets one from a test.txt); choose valid, train or all")
        return ids

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(getattr(self, s)):,}" for s in ("train", "valid", "test")
                          if getattr(self, s) is not None)
        return f"Corpus({self.name}: {sizes} tokens, {len(self.vocab):,} {self.level} vocab)"


# -- reading -------------------------------------------------------------------------------------
def read_text(path: str | os.PathLike[str]) -> str:
    """A file's text, with clear errors for a missing, empty, binary or non-UTF-8 file, a
    symbolic-link loop, and anything that is not a regular file (a FIFO would block)."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "symbolic link loop (a link that points back to "
                          "itself)", str(p)) from None
        raise FileNotFoundError(errno.ENOENT, "no such file or directory", str(p)) from None
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory, expected a text file", str(p))
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{p} is not a regular file (a FIFO, socket or device); pass a text "
                         f"file")
    data = p.read_bytes()
    if not data.strip():
        raise ValueError(f"{p} is empty: a corpus needs some text")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ValueError(f"{p} holds NUL bytes (the first at offset {nul}): it is binary, "
                         f"not text")
    return decode_utf8(data, p)


def decode_utf8(data: bytes, path: str | os.PathLike[str]) -> str:
    """``data`` (the bytes of file ``path``) as text, or a ValueError naming the bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path} is not UTF-8 text: byte 0x{data[e.start]:02x} at offset {e.start} cannot be "
            f"decoded; convert the file to UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
        ) from None


def tokenize(text: str, level: str = "word", tokenizer: str = "whitespace",
             subword: SubwordModel | None = None) -> list[str]:
    """Corpus tokens: each non-blank line's words (split by ``tokenizer``, with ``subword``
    the model of 'bpe' / 'unigram') then ``<eos>``, or every character."""
    if _check_level(level) == "char":
        return list("\n".join(text.splitlines()) + ("\n" if text.endswith(("\n", "\r")) else ""))
    out: list[str] = []
    for line in text.splitlines():
        words = split_words(line, tokenizer, subword)
        if words:
            out.extend(words)
            out.append(EOS)
    return out


def _unspaced_script_share(text: str) -> float:
    """Share of the characters written without spaces between words (CJK, kana, Thai)."""
    sample = text[:20000]
    unspaced = sum(1 for ch in sample if "\u3040" <= ch <= "\u30ff" or "\u3400" <= ch <= "\u9fff"
                   or "\uac00" <= ch <= "\ud7af" or "\u0e00" <= ch <= "\u0e7f")
    letters = sum(1 for ch in sample if not ch.isspace()) or 1
    return unspaced / letters


def _tokens_of(path: Path, level: str, tokenizer: str = "whitespace",
               warn: bool = True) -> list[str]:
    text = read_text(path)
    if warn and level == "word" and tokenizer == "whitespace" \
            and _unspaced_script_share(text) > 0.3:
        warnings.warn(f"{path} is mostly Japanese/Chinese/Korean/Thai text, written without "
                      f"spaces between words: at word level each line becomes a few huge "
                      f"'words'; use --level char, --tokenizer bpe, or --tokenizer janome "
                      f"for Japanese",
                      stacklevel=2)
    toks = tokenize(text, level, tokenizer)
    if not toks:
        raise ValueError(f"{path} holds no tokens (only whitespace)")
    return toks


def _split_sizes(n: int, split: Sequence[float], path: Path) -> tuple[int, int]:
    if len(split) != 3 or any(not 0 <= f <= 1 for f in split) or abs(sum(split) - 1) > 1e-6:
        raise ValueError(f"split must be 3 fractions (train, valid, test) summing to 1, "
                         f"got {tuple(split)}")
    if split[0] <= 0 or split[1] <= 0:
        raise ValueError(f"split needs a train and a valid part, got {tuple(split)}")
    n_train = int(round(n * split[0]))
    n_valid = int(round(n * split[1])) if split[2] > 0 else n - n_train
    n_test = n - n_train - n_valid
    if n_train < 2 or n_valid < 2 or (split[2] > 0 and n_test < 2):
        raise ValueError(f"{path} has only {n} tokens: too few to split into train/valid/test "
                         f"{tuple(split)}; use a longer text")
    return n_train, n_valid


def load_text(path: str | os.PathLike[str], level: str = "word", min_freq: int = 1,
              max_size: int | None = None,
              split: Sequence[float] = (0.9, 0.05, 0.05), vocab: Vocab | None = None,
              tokenizer: str = "whitespace") -> Corpus:
    """A corpus from one UTF-8 file or a directory with train.txt, valid.txt and test.txt.

    Args:
        path: a text file (split in order: first ``split[0]`` of the tokens for training, then
            valid, then test; deterministic), or a directory holding ``train.txt``,
            ``valid.txt`` and optionally ``test.txt``.
        level: 'word' (whitespace tokens, ``<eos>`` per line) or 'char'.
        min_freq, max_size: vocabulary limits (see :meth:`Vocab.build`); the rest is ``<unk>``.
        split: fractions (train, valid, test) for a single file; test may be 0 (no test split).
        vocab: encode with this vocabulary (e.g. a trained model's) instead of building one.
        tokenizer: how word-level lines are split ('whitespace', 'janome', or the subword
            pieces 'bpe' / 'unigram', learned from the training split with ``max_size``
            pieces, default 8000; a given ``vocab`` brings its own). A single file is split
            into train/valid/test at the same words whatever the tokenizer.
    """
    _check_level(level)
    if vocab is not None:
        tokenizer = vocab.tokenizer
    subword = tokenizer if tokenizer in SUBWORD else None
    words_by = "whitespace" if subword else tokenizer  # subword: split at words, then pieces
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(errno.ENOENT, "no such file or directory", str(p))
    if p.is_dir():
        files = {s: p / f"{s}.txt" for s in ("train", "valid", "test")}
        for s in ("train", "valid"):
            if not files[s].exists():
                raise FileNotFoundError(errno.ENOENT, f"a corpus directory needs {s}.txt "
                                        "(for the PTB's ptb.*.txt use load_ptb)", str(files[s]))
        toks = {s: _tokens_of(f, level, words_by, subword is None)
                for s, f in files.items() if f.exists()}
    else:
        all_toks = _tokens_of(p, level, words_by, subword is None)
        n_train, n_valid = _split_sizes(len(all_toks), split, p)
        toks = {"train": all_toks[:n_train], "valid": all_toks[n_train:n_train + n_valid]}
        if split[2] > 0:
            toks["test"] = all_toks[n_train + n_valid:]
    model = None
    if subword is not None:  # the pieces of each split's words, by a model of the train split
        texts = {s: _lines_of(t) for s, t in toks.items()}
        model = vocab.subword if vocab is not None else SubwordModel.train(
            subword, texts["train"].splitlines(), max_size or SUBWORD_VOCAB)
        toks = {s: tokenize(text, "word", subword, model) for s, text in texts.items()}
        max_size = None  # the model's vocabulary size was the limit
    if vocab is None:
        vocab = Vocab.build(toks["train"], level=level, min_freq=min_freq, max_size=max_size,
                            tokenizer=tokenizer, subword=model)
        if model is not None:  # every piece the model gives, used in training or not
            vocab = Vocab(vocab.itos + [t for t in model.vocabulary() if t not in vocab],
                          level=level, tokenizer=tokenizer, subword=model)
    elif vocab.level != level:
        raise ValueError(f"the vocabulary is {vocab.level}-level but level={level!r} was asked")
    ids = {s: vocab.encode(t) for s, t in toks.items()}
    return Corpus(ids["train"], ids["valid"], ids.get("test"), vocab, name=p.name)


def _lines_of(tokens: Sequence[str]) -> str:
    """Word tokens back to text: words joined by spaces, a line break at each ``<eos>``."""
    lines: list[str] = []
    words: list[str] = []
    for t in tokens:
        if t == EOS:
            lines.append(" ".join(words))
            words = []
        else:
            words.append(t)
    return "\n".join(lines + ([" ".join(words)] if words else []))


def load_builtin(level: str = "word", vocab: Vocab | None = None) -> Corpus:
    """The small English corpus shipped with bptt (made by ``bptt.data.make_builtin``)."""
    corpus = load_text(BUILTIN_PATH, level=level, vocab=vocab)
    corpus.name = "builtin"
    return corpus


# -- Penn Treebank --------------------------------------------------------------------------------
def _ptb_files(path: str | os.PathLike[str] | None, cache_dir: str | os.PathLike[str] | None,
               download: bool) -> dict[str, Path]:
    if path is not None:
        p = Path(path)
        if not p.is_dir():
            raise FileNotFoundError(errno.ENOENT, "PTB path must be a directory holding "
                                    "ptb.train.txt, ptb.valid.txt, ptb.test.txt", str(p))
        files = {s: p / f"ptb.{s}.txt" for s in PTB_SHA256}
        for f in files.values():
            if not f.exists():
                raise FileNotFoundError(errno.ENOENT, "missing PTB file", str(f))
        return files
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir() / "ptb"
    files = {}
    for s, digest in PTB_SHA256.items():
        dest = cache / f"ptb.{s}.txt"
        if not download:
            if not dest.exists() or sha256sum(dest) != digest:
                raise FileNotFoundError(
                    errno.ENOENT, "PTB is not in the cache and download=False; pass the "
                    "directory holding ptb.train.txt (e.g. --data path/to/ptb)", str(dest))
            files[s] = dest
        else:
            files[s] = fetch(PTB_URL.format(split=s), digest, cache,
                             hint="or pass the directory holding the PTB files as the path")
    return files


def load_ptb(path: str | os.PathLike[str] | None = None,
             cache_dir: str | os.PathLike[str] | None = None, download: bool = True,
             vocab: Vocab | None = None) -> Corpus:
    """The Penn Treebank (Mikolov's 10k-word version), as in the book's ``ptb.load_data``.

    Args:
        path: a directory holding ``ptb.{train,valid,test}.txt``; None to use the cache
            (``$BPTT_CACHE/ptb`` or ``~/.cache/bptt/ptb``), downloading the files there (SHA-256
            checked) when missing and ``download`` is true.
    Ids are given in order of first appearance in ptb.train.txt (the book's ids); ``<eos>``
    ends each line. Train has 929,589 tokens, valid 73,760, test 82,430; vocabulary 10,000.
    ``vocab``: encode with this vocabulary instead.
    """
    files = _ptb_files(path, cache_dir, download)
    toks = {s: _tokens_of(f, "word") for s, f in files.items()}
    if vocab is None:
        vocab = Vocab(list(dict.fromkeys(toks["train"])), level="word")
    ids = {s: vocab.encode(t) for s, t in toks.items()}
    return Corpus(ids["train"], ids["valid"], ids["test"], vocab, name="ptb")


def load_corpus(data: str | os.PathLike[str] | None = None, level: str = "word",
                cache_dir: str | os.PathLike[str] | None = None, download: bool = True,
                min_freq: int = 1, max_size: int | None = None,
                vocab: Vocab | None = None, tokenizer: str = "whitespace") -> Corpus:
    """What ``bptt train --data`` means: None or 'builtin', 'ptb', or a path (file/directory).

    A directory holding ``ptb.train.txt`` is read as the PTB (word level only). ``vocab``:
    encode with this vocabulary (a trained model's) instead of building one. ``tokenizer``:
    how a text file's lines are split into words (see :mod:`bptt.data.tokenizers`).
    """
    _check_level(level)
    check_tokenizer(tokenizer)
    if tokenizer != "whitespace" and (level != "word" or data is None
                                      or str(data) in ("builtin", "ptb")):
        raise ValueError(f"--tokenizer {tokenizer} splits the words of your own text files: "
                         f"use it with --data FILE at word level")
    if data is None or str(data) == "builtin":
        return load_builtin(level, vocab=vocab)
    is_ptb = str(data) == "ptb" and not Path(data).exists()
    if is_ptb or (Path(data).is_dir() and (Path(data) / "ptb.train.txt").exists()):
        if level != "word":
            raise ValueError("the PTB is read at word level; for characters pass a text file")
        return load_ptb(None if is_ptb else data, cache_dir=cache_dir, download=download,
                        vocab=vocab)
    return load_text(data, level=level, min_freq=min_freq, max_size=max_size, vocab=vocab,
                     tokenizer=tokenizer)
