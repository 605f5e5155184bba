"""How a line of text becomes word tokens: whitespace, or Japanese morphemes with janome.

    whitespace   "the cat sat"       -> ["the", "cat", "sat"]        joined back with " "
    janome       "吾輩は猫である。"   -> ["吾輩", "は", "猫", "で", "ある", "。"]   joined with ""

Japanese (and Chinese) text has no spaces between words, so whitespace splitting makes each
line one "word". janome (``pip install 'bptt[ja]'``) is a pure-Python morphological analyser
that ships its dictionary in the wheel: nothing is downloaded at run time. It is imported on
first use only. The tokenizer is recorded in the vocabulary, so ``eval`` and ``generate``
split prompts the same way and join generated words back without spaces.
"""

from __future__ import annotations

from typing import Any

TOKENIZERS = ("whitespace", "janome")
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


def split_words(line: str, tokenizer: str = "whitespace") -> list[str]:
    """The word tokens of one line."""
    if check_tokenizer(tokenizer) == "whitespace":
        return line.split()
    return [w for w in _janome().tokenize(line) if w.strip()]


def word_joiner(tokenizer: str) -> str:
    """What goes between generated words: a space, or nothing for Japanese morphemes."""
    return "" if check_tokenizer(tokenizer) == "janome" else " "
