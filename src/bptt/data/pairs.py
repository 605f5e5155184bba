"""Sequence pairs for seq2seq: the book's files, tab-separated pairs, built-in generators.

Two file formats, told apart by their lines:

- the book's (ch. 7): ``16+75  _91  `` -- the question, ``_`` and the answer, at fixed width,
  character level. ``_`` is also the decoder's start symbol; the answers have no end symbol
  (they are all as wide), so an answer is generated at that width (the book's ``generate``);
- tab-separated: ``source<TAB>target`` at character or whitespace-word level, e.g. translation
  pairs. The decoder starts with ``<s>`` and stops at ``</s>``; shorter sequences are padded
  with ``<pad>`` (ignored by the loss and, on the source side, by attention).

``addition`` and ``date`` are generated offline in the book's format (:func:`make_pairs`), so
everything runs without a file; ``../shared/data/toy_seq2seq/`` holds the book's own sets.
``reverse=True`` feeds every source backwards (the book's trick, ch. 7.3.1). The train/test
split is a seeded shuffle (90/10 by default: the book's 45,000/5,000).
"""

from __future__ import annotations

import calendar
import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .corpus import Vocab, read_text

PAD, START, END = "<pad>", "<s>", "</s>"
BOOK_START = "_"
BUILTIN = ("addition", "date")


@dataclass
class PairSet:
    """Pairs of token lists with their vocabularies and symbols, split into train and test.

    ``source_vocab``/``target_vocab`` (one shared vocabulary in the book's format), ``start``
    (the decoder's first input), ``end`` (None: fixed-width answers), ``pad`` (None: no
    padding needed). ``max_target`` is the longest answer (the generation limit).
    """

    name: str
    level: str
    source_vocab: Vocab
    target_vocab: Vocab
    start: str
    end: str | None
    pad: str | None
    train: list[tuple[list[str], list[str]]]
    test: list[tuple[list[str], list[str]]]
    reverse: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    book_order: bool = False  # the book's vocabulary order and train/test split

    @property
    def max_target(self) -> int:
        if not (self.train or self.test):
            return int(self.info["max_target"])
        return max(len(t) for _, t in self.train + self.test)

    @property
    def max_source(self) -> int:
        if not (self.train or self.test):
            return int(self.info["max_source"])
        return max(len(s) for s, _ in self.train + self.test)

    def __repr__(self) -> str:
        return (f"PairSet({self.name}: {len(self.train):,} train / {len(self.test):,} test "
                f"pairs, {self.level} level, vocabularies {len(self.source_vocab)} / "
                f"{len(self.target_vocab)}{', reversed sources' if self.reverse else ''})")

    # -- encoding ----------------------------------------------------------------------------
    def tokenize_source(self, text: str) -> list[str]:
        return list(text) if self.level == "char" else text.split()

    def encode_sources(self, sources: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """(ids (N, Ts) padded, lengths (N,)); reversed within each length if ``reverse``.
        Unknown tokens are a ValueError naming them."""
        vocab = self.source_vocab
        unknown = sorted({t for s in sources for t in s if t not in vocab})
        if unknown:
            shown = ", ".join(repr(t) for t in unknown[:10])
            raise ValueError(f"{shown} {'is' if len(unknown) == 1 else 'are'} not in the "
                             f"source vocabulary of {self.name} ({len(vocab)} tokens)")
        lengths = np.array([len(s) for s in sources], dtype=np.int64)
        if lengths.size and lengths.min() < 1:
            raise ValueError("an empty source sequence: every source needs a token")
        T = int(lengths.max()) if lengths.size else 1
        pad = vocab.stoi[self.pad] if self.pad is not None else 0
        xs = np.full((len(sources), T), pad, dtype=np.int64)
        for n, s in enumerate(sources):
            ids = [vocab.stoi[t] for t in s]
            xs[n, :len(ids)] = ids[::-1] if self.reverse else ids
        return xs, lengths

    def encode_targets(self, targets: Sequence[Sequence[str]]) -> np.ndarray:
        """Decoder ids (N, 1 + Tt [+ 1]): start, the tokens, end; padded with -1 (ignored by
        the loss; fed to the decoder as ``pad``)."""
        vocab = self.target_vocab
        rows = [[vocab.stoi[self.start]] + [vocab.stoi[t] for t in tgt]
                + ([vocab.stoi[self.end]] if self.end is not None else []) for tgt in targets]
        T = max(len(r) for r in rows)
        ts = np.full((len(rows), T), -1, dtype=np.int64)
        for n, r in enumerate(rows):
            ts[n, :len(r)] = r
        return ts

    def decode_target(self, ids: Sequence[int]) -> list[str]:
        """Tokens of generated ids, up to the end symbol."""
        out = []
        for i in ids:
            tok = self.target_vocab.itos[int(i)]
            if tok == self.end:
                break
            out.append(tok)
        return out

    def join(self, tokens: Sequence[str]) -> str:
        return "".join(tokens) if self.level == "char" else " ".join(tokens)

    def to_dict(self) -> dict[str, Any]:
        """The symbols and vocabularies (what a trained model needs), JSON-able."""
        return {"name": self.name, "level": self.level, "start": self.start, "end": self.end,
                "pad": self.pad, "reverse": self.reverse, "max_target": self.max_target,
                "max_source": self.max_source, "book_order": self.book_order,
                "source_vocab": self.source_vocab.to_dict(),
                "target_vocab": self.target_vocab.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PairSet:
        """A PairSet without pairs, for translating with a trained model."""
        src = Vocab.from_dict(d["source_vocab"])
        tgt = src if d["target_vocab"] == d["source_vocab"] else Vocab.from_dict(d["target_vocab"])
        ps = cls(d["name"], d["level"], src, tgt, d["start"], d["end"], d["pad"], [], [],
                 bool(d["reverse"]), book_order=bool(d.get("book_order", False)))
        ps.info["max_target"] = int(d["max_target"])
        ps.info["max_source"] = int(d.get("max_source", 0))
        return ps


# -- reading ------------------------------------------------------------------------------------
def read_pairs(path: str | os.PathLike[str]) -> tuple[list[tuple[str, str]], str]:
    """(pairs of strings, format 'book' or 'tsv') of a pair file; a line without a separator or
    an empty line inside the file is a ValueError naming the line."""
    text = read_text(path)
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    fmt = "tsv" if any("\t" in ln for ln in lines) else "book"
    pairs = []
    for k, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if not line.strip():
            raise ValueError(f"{path}: line {k} is empty; one pair per line")
        sep = "\t" if fmt == "tsv" else BOOK_START
        i = line.find(sep)
        if i < 0:
            want = "a tab" if fmt == "tsv" else "'_' (question_answer)"
            raise ValueError(f"{path}: line {k} has no {want} separating source and target: "
                             f"{line[:60]!r}")
        src, tgt = line[:i], line[i + 1:]
        if not src.strip() or not tgt.strip():
            raise ValueError(f"{path}: line {k} has an empty "
                             f"{'source' if not src.strip() else 'target'}")
        pairs.append((src, tgt))
    return pairs, fmt


def pair_set(pairs: Sequence[tuple[str, str]], fmt: str, name: str, level: str = "char",
             reverse: bool = False, test_fraction: float = 0.1, seed: int = 1984,
             book_order: bool = False) -> PairSet:
    """Vocabularies, symbols and a seeded train/test split of string pairs.

    ``book_order`` (book-format files only): the book's own ids and split, as its
    ``dataset/sequence.py`` makes them -- characters numbered in order of first appearance
    (each question, then ``_`` and its answer), the pairs shuffled by NumPy's legacy
    ``RandomState(seed)`` and the last tenth kept for the test -- so the book's trained weights
    see the ids they were trained with."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"the test fraction must be in (0, 1), got {test_fraction}")
    if len(pairs) < 2:
        raise ValueError(f"{name} holds {len(pairs)} pair(s); a train/test split needs more")
    if book_order and fmt != "book":
        raise ValueError(f"{name}: the book's order applies to its question_answer files")
    if fmt == "book":
        level = "char"
        toks = [(list(s), list(t)) for s, t in pairs]
        chars = (list(dict.fromkeys(c for s, t in pairs for c in s + BOOK_START + t))
                 if book_order else sorted({c for s, t in pairs for c in s + BOOK_START + t}))
        vocab = Vocab(chars, level="char", unk=None, eos=None)
        src_vocab = tgt_vocab = vocab
        start, end, pad = BOOK_START, None, None
    else:
        def split(x: str) -> list[str]:
            return list(x) if level == "char" else x.split()
        toks = [(split(s), split(t)) for s, t in pairs]
        specials = [PAD, START, END]
        for k, (s, t) in enumerate(toks):
            clash = next((w for w in s + t if w in specials), None)
            if clash is not None:
                raise ValueError(f"{name}: pair {k + 1} holds the word {clash!r}, one of the "
                                 f"symbols bptt adds ({', '.join(specials)}): it would "
                                 f"become that symbol; spell it otherwise in the file")
        src_vocab = Vocab(specials + sorted({w for s, _ in toks for w in s} - set(specials)),
                          level=level, unk=None, eos=None)
        tgt_vocab = Vocab(specials + sorted({w for _, t in toks for w in t} - set(specials)),
                          level=level, unk=None, eos=None)
        start, end, pad = START, END, PAD
    if book_order:  # np.random.seed(1984); np.random.shuffle(indices); the last 10 % test
        order = np.arange(len(toks))
        np.random.RandomState(seed).shuffle(order)
        split_at = len(toks) - len(toks) // 10
        train = [toks[i] for i in order[:split_at]]
        test = [toks[i] for i in order[split_at:]]
    else:
        order = np.random.default_rng(seed).permutation(len(toks))
        n_test = max(1, int(round(len(toks) * test_fraction)))
        train = [toks[i] for i in order[n_test:]]
        test = [toks[i] for i in order[:n_test]]
    return PairSet(name, level, src_vocab, tgt_vocab, start, end, pad, train, test, reverse,
                   book_order=book_order)


def load_pairs(data: str | os.PathLike[str], level: str = "char", reverse: bool = False,
               n: int | None = None, test_fraction: float = 0.1, seed: int = 1984,
               book_order: bool = False) -> PairSet:
    """``addition`` / ``date`` (generated, ``n`` pairs, default 50,000) or a pair file
    (``book_order``: see :func:`pair_set`). A built-in name always means the generated set,
    even where a file of that name is in the working folder: name the file as a path
    (``./date``) to read it."""
    if str(data) in BUILTIN:
        pairs = make_pairs(str(data), n or 50_000, seed=seed)
        return pair_set(pairs, "book", str(data), reverse=reverse,
                        test_fraction=test_fraction, seed=seed)
    pairs, fmt = read_pairs(data)
    if n is not None:
        pairs = pairs[:n]
    return pair_set(pairs, fmt, Path(data).name, level=level, reverse=reverse,
                    test_fraction=test_fraction, seed=seed, book_order=book_order)


# -- built-in generators (the book's two tasks, its fixed widths) ------------------------------
def make_pairs(task: str, n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` pairs of the book's ``addition`` (``a+b`` with a, b < 1000) or ``date`` (a date
    written in one of many ways -> ISO 8601) task, as the book's files write them."""
    rng = np.random.default_rng(seed)
    if task == "addition":
        out = []
        for a, b in rng.integers(0, 1000, size=(n, 2)):
            out.append((f"{a}+{b}".ljust(7), f"{a + b}".ljust(4)))
        return out
    if task == "date":
        return [_date_pair(rng) for _ in range(n)]
    raise ValueError(f"unknown built-in pair task {task!r}: choose {' or '.join(BUILTIN)}")


_MONTHS = [calendar.month_name[m] for m in range(1, 13)]
_DAYS = [calendar.day_name[d] for d in range(7)]
# The book's date.txt, measured: dates uniform from 1970-01-01 to 2017-07-24; four forms
# equally often (Babel's en_US 'short' M/D/YY, 'medium' "Sep 27, 1994", 'long' "September 27,
# 1994", 'full' "Tuesday, September 27, 1994"); the written ones as they are half of the time,
# in upper and in lower case a quarter each; sources padded to 29 characters.
DATE_RANGE = (datetime.date(1970, 1, 1), datetime.date(2017, 7, 24))
DATE_FORMS = ("short", "medium", "long", "full")


def _date_pair(rng: np.random.Generator) -> tuple[str, str]:
    first, last = (d.toordinal() for d in DATE_RANGE)
    d = datetime.date.fromordinal(int(rng.integers(first, last + 1)))
    month, weekday = _MONTHS[d.month - 1], _DAYS[d.weekday()]
    form = DATE_FORMS[int(rng.integers(len(DATE_FORMS)))]
    text = {"short": f"{d.month}/{d.day}/{d.year % 100:02d}",
            "medium": f"{month[:3]} {d.day}, {d.year}",
            "long": f"{month} {d.day}, {d.year}",
            "full": f"{weekday}, {month} {d.day}, {d.year}"}[form]
    case = rng.random()
    text = text.upper() if case < 0.25 else text.lower() if case < 0.5 else text
    return text.ljust(29), d.isoformat()
