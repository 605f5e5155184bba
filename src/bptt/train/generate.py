"""Text generation from a trained language model (the book's ``RnnlmGen.generate``, extended).

The start text is fed at once (one stateful forward over its T tokens); then each new token is
drawn from the model's next-token distribution and fed back with T = 1, batch 1:

    z = scores / temperature          (V,)   scores of the next token, float64
    z[skip ids] = -inf                        e.g. <unk>, N
    z[all but the top_k largest] = -inf       when top_k is given
    p = softmax(z);  next ~ p                 or next = argmax(scores) when greedy

The Time layers with T = 1 run exactly the same arithmetic as during training (no separate
step path to keep in sync), and at batch 1 the per-call cost is microseconds beside the
(H, V) output product. A ``seed`` makes the draw reproducible.

:func:`generate_tokens` yields the text piece by piece as each token is drawn (``bptt
generate`` writes them as they come; in a notebook, ``for piece in generate_tokens(...)``);
:func:`generate` joins them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..backend import to_numpy
from ..data.corpus import Vocab
from ..data.tokenizers import token_text
from ..models.rnnlm import LanguageModel
from .lm_checkpoint import load_language_model

MIN_TEMPERATURE = 1e-3


def _next_logits(model: LanguageModel, ids: Sequence[int]) -> np.ndarray:
    scores = model.predict(np.asarray([ids], dtype=np.int64))  # (1, T, V)
    return to_numpy(scores[0, -1]).astype(np.float64)  # (V,)


def pick_token(logits: np.ndarray, rng: np.random.Generator, temperature: float = 1.0,
               top_k: int | None = None, skip_ids: Sequence[int] = (),
               greedy: bool = False) -> int:
    """Choose the next id from ``logits`` (V,) as the module docstring says."""
    z = np.array(logits, dtype=np.float64)
    if len(skip_ids):
        z[list(skip_ids)] = -np.inf
    if not np.isfinite(z).any():
        raise ValueError("every token is skipped: nothing left to generate")
    if greedy:
        return int(np.argmax(z))
    z /= temperature
    if top_k is not None and top_k < z.size:
        kth = np.partition(z, -top_k)[-top_k]
        z[z < kth] = -np.inf
    cdf = np.cumsum(np.exp(z - z.max()))  # unnormalised; skipped ids add 0
    # the first id whose cumulative mass exceeds u * total: id i with probability p_i (an id
    # of probability 0 owns an empty interval and is never chosen); 2x faster than rng.choice
    return int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))


def sample_ids(model: LanguageModel, start_ids: Sequence[int], length: int,
               temperature: float = 1.0, top_k: int | None = None, seed: int | None = None,
               skip_ids: Sequence[int] = (), greedy: bool = False,
               after: int | None = None, burn_in: int = 200) -> list[int]:
    """``length`` ids drawn after ``start_ids`` (at least one id); the model's state is reset
    before and after. ``after``: first draw (and drop) tokens until this id comes (at most
    ``burn_in``), so the result starts where the model itself ends a sentence, with the state
    it has there (a zero state is not where any sentence of the training text began)."""
    return list(iter_sample_ids(model, start_ids, length, temperature, top_k, seed, skip_ids,
                                greedy, after, burn_in))


def iter_sample_ids(model: LanguageModel, start_ids: Sequence[int], length: int,
                    temperature: float = 1.0, top_k: int | None = None,
                    seed: int | None = None, skip_ids: Sequence[int] = (),
                    greedy: bool = False, after: int | None = None,
                    burn_in: int = 200) -> Iterator[int]:
    """:func:`sample_ids` one id at a time, as each is drawn (the model's state is reset when
    the iterator ends or is closed)."""
    if len(start_ids) == 0:
        raise ValueError("generation needs at least one start token")
    rng = np.random.default_rng(seed)
    model.reset_state()
    try:
        logits = _next_logits(model, list(start_ids))
        if after is not None:
            for _ in range(burn_in):
                i = pick_token(logits, rng, temperature, top_k, skip_ids, greedy)
                logits = _next_logits(model, [i])
                if i == after:
                    break
        for k in range(length):
            i = pick_token(logits, rng, temperature, top_k, skip_ids, greedy)
            yield i
            if k + 1 < length:
                logits = _next_logits(model, [i])
    finally:
        model.reset_state()


def text_pieces(vocab: Vocab, ids: Iterator[int] | Sequence[int]) -> Iterator[str]:
    """The text of ``ids`` piece by piece: joined, the pieces are ``vocab.decode(ids)`` (a
    word after the first of its line brings its space; ``<eos>`` is a line break)."""
    if vocab.level == "char":
        for i in ids:
            yield vocab.itos[int(i)]
        return
    line_start = True
    for i in ids:
        t = vocab.tokens([i])[0]
        if t == vocab.eos:
            line_start = True
            yield "\n"
        else:
            yield token_text(t, line_start, vocab.tokenizer)
            line_start = False


def generate(model: LanguageModel, vocab: Vocab, start: str | None = None, length: int = 100,
             temperature: float = 1.0, top_k: int | None = None, seed: int | None = None,
             skip: Sequence[str] | None = None, greedy: bool = False) -> str:
    """Text continuing ``start`` (word or character level, as the vocabulary).

    Args:
        start: text to begin with (every word must be in the vocabulary); None starts a new
            line (after ``<eos>`` or ``"\\n"``). The result begins with it.
        length: tokens to generate (words or characters).
        temperature: > 0; below 1 sharper, above 1 flatter (below 1e-3: the most likely
            token, as ``greedy``). top_k: sample among the k best.
        seed: of the draw (None: a fresh one). greedy: always the most likely token.
        skip: tokens never generated; default ``[<unk>]`` (e.g. add ``N`` for the PTB).
    """
    return "".join(generate_tokens(model, vocab, start, length, temperature, top_k, seed, skip,
                                   greedy))


def generate_tokens(model: LanguageModel, vocab: Vocab, start: str | None = None,
                    length: int = 100, temperature: float = 1.0, top_k: int | None = None,
                    seed: int | None = None, skip: Sequence[str] | None = None,
                    greedy: bool = False) -> Iterator[str]:
    """:func:`generate` piece by piece: the start text, then each token's text as soon as it
    is drawn (joined, the pieces are :func:`generate`'s text). The arguments are checked
    before the first piece."""
    if len(vocab) != model.vocab_size:
        raise ValueError(f"the vocabulary has {len(vocab)} tokens but the model predicts "
                         f"{model.vocab_size}")
    if isinstance(length, bool) or int(length) != length or length < 0:
        raise ValueError(f"length must be a non-negative integer, got {length!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    greedy = greedy or temperature < MIN_TEMPERATURE  # scores / 1e-310 would overflow
    if top_k is not None and (int(top_k) != top_k or top_k < 1):
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    skip = [vocab.unk] if skip is None and vocab.unk is not None else list(skip or [])
    for t in skip:
        if t not in vocab:
            raise ValueError(f"skip token {t!r} is not in the vocabulary")
    skip_ids = [vocab.stoi[t] for t in skip]
    if start:
        check_known(vocab, start)
    start_ids = [int(i) for i in vocab.encode(start)] if start else []
    context, after = start_ids, None
    if not context:  # begin after an end of sentence (of the model's own, see sample_ids)
        newline = vocab.eos if vocab.level == "word" else "\n"
        context = [vocab.stoi[newline]] if newline in vocab else [0]
        after = vocab.stoi.get(newline)
    new = iter_sample_ids(model, context, length, temperature, top_k, seed, skip_ids, greedy,
                          after=after)
    return _pieces(vocab, start, start_ids, new)


def _pieces(vocab: Vocab, start: str | None, start_ids: list[int],
            new: Iterator[int]) -> Iterator[str]:
    if vocab.level == "char":
        if start:
            yield start
        yield from text_pieces(vocab, new)
        return
    yield from text_pieces(vocab, _chain(start_ids, new))


def _chain(first: list[int], rest: Iterator[int]) -> Iterator[int]:
    yield from first
    yield from rest


def check_known(vocab: Vocab, start: str, flag: str = "--start") -> None:
    """Refuse a text (``flag`` names the option it came from) with tokens the model never saw
    (it would silently read them as ``<unk>``), naming them and the nearest known tokens."""
    unknown = list(dict.fromkeys(t for t in vocab.tokenize(start) if t not in vocab))
    if not unknown:
        return
    what = "word" if vocab.level == "word" else "character"
    t = unknown[0]
    near = difflib.get_close_matches(t, [w for w in vocab.itos if w != vocab.unk], n=3,
                                     cutoff=0.6) if vocab.level == "word" else []
    hint = (f"; nearest known: {', '.join(near)}" if near else "")
    more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
    raise ValueError(f"{flag} {what} {t!r}{more} is not in the model's vocabulary "
                     f"({len(vocab):,} tokens){hint}: it would be read as "
                     f"{vocab.unk or 'nothing'}; use known {what}s")


def generate_from_checkpoint(path: Any, **kwargs: Any) -> str:
    """:func:`generate` with the model and vocabulary of a checkpoint (or training OUT dir)."""
    return "".join(tokens_from_checkpoint(path, **kwargs))


def tokens_from_checkpoint(path: Any, **kwargs: Any) -> Iterator[str]:
    """:func:`generate_tokens` with the model and vocabulary of a checkpoint (or run)."""
    ck = load_language_model(path)
    return generate_tokens(ck.model, ck.vocab, **kwargs)
