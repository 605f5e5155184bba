"""The book's own trained weights (Deep Learning from Scratch 2) as bptt checkpoints.

The book's ``save_params`` pickles a list of float16 NumPy arrays, its ``self.params`` in
order. Loading a pickle can run any code it names, so :func:`read_book_params` reads it with an
unpickler that resolves only what such a file needs -- NumPy's array reconstruction, ndarray and
dtype -- and refuses every other global in one line, before anything is called. What comes out
must be a list (or tuple) of float arrays, else it is refused too.

The book's parameter lists, and how they map onto :class:`~bptt.models.rnnlm.LanguageModel`
(the book's gate order f, g, i, o is bptt's, so no block moves):

    Rnnlm        embed W (V, D), lstm Wx (D, 4H), Wh (H, 4H), b (4H,), affine W (H, V), b (V,)
    BetterRnnlm  embed W (V, D), 2 x (Wx, Wh, b), affine W (H, V) = embed W.T (tied), b (V,)
    AttentionSeq2seq  encoder embed W (V, D), Wx, Wh, b; decoder embed W (V, D), Wx, Wh, b,
                      affine W (2H, V) over [context, h] (the book's order), b (V,)

The vocabulary is the corpus's in the book's order (PTB: the order of first appearance in
``ptb.train.txt``, as :func:`bptt.data.corpus.load_ptb` builds it; the date set: characters
in order of first appearance and the book's shuffled split, ``load_pairs(book_order=True)``,
with the questions reversed as the book's ch. 8 trains), so the ids line up.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
from pathlib import Path
from typing import Any

import numpy as np

from ...data.corpus import load_corpus
from ...data.pairs import load_pairs
from ...models.rnnlm import LanguageModel
from ...models.seq2seq import AttentionSeq2seq
from ...train.checkpoint import write_checkpoint
from ...train.lm_checkpoint import save_checkpoint
from ...train.seq2seq import seq2seq_files

BOOK_MODELS = ("rnnlm", "better-rnnlm", "attention-seq2seq")
_FLOATS = ("f2", "f4", "f8")  # the dtypes a parameter file may hold


class BookFileError(ValueError):
    """A parameter file that is not (or not safely) the book's list of arrays."""


class _NdarrayMarker:
    """Stands for ``numpy.ndarray`` in a pickle; it is never called, only passed along."""

    def __init__(self, *args: Any) -> None:
        raise BookFileError("refused: the pickle calls ndarray directly, which a book "
                            "parameter file never does (nothing was run)")


class _DtypeSpec:
    """What ``numpy.dtype('f4', False, True)`` plus its pickled state would make, held as
    plain data: only a float kind and a byte order get through; a state with flags, fields,
    names or metadata is refused (NumPy would trust them, e.g. an object dtype's flags)."""

    def __init__(self, descr: Any = None, align: Any = False, copy: Any = True) -> None:
        if descr not in _FLOATS or not isinstance(align, bool) or not isinstance(copy, bool):
            raise BookFileError(f"refused: the pickle asks for dtype {descr!r}; a book "
                                f"parameter file holds float16/32/64 arrays only")
        self.descr, self.byteorder = str(descr), "<"

    def __setstate__(self, state: Any) -> None:
        if (not isinstance(state, tuple) or len(state) != 8 or state[0] not in (3, 4)
                or state[1] not in ("<", ">", "=", "|")
                or state[2:] != (None, None, None, -1, -1, 0)):
            raise BookFileError(f"refused: a dtype state {str(state)[:80]} that a plain float "
                                f"array never has")
        self.byteorder = "=" if state[1] == "|" else state[1]

    def dtype(self) -> np.dtype:
        return np.dtype(self.byteorder + self.descr)


class _ArraySpec:
    """An array as (dtype, shape, order, raw bytes), checked before NumPy sees any of it."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) != 5 or state[0] != 1:
            raise BookFileError("refused: an array state that is not NumPy's (1, shape, dtype, "
                                "fortran, bytes)")
        _, shape, dtype, fortran, raw = state
        self.array = _array(raw, dtype, shape, "F" if fortran is True else "C"
                            if fortran is False else None)


def _array(raw: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """A fresh array from a validated (dtype, shape, order, bytes): nothing of the pickle's own
    making reaches NumPy but the bytes of the values."""
    if not isinstance(dtype, _DtypeSpec):
        raise BookFileError("refused: an array whose dtype is not a plain float dtype")
    if (not isinstance(shape, tuple) or len(shape) > 8
            or not all(type(n) is int and 0 <= n < 2**40 for n in shape)):
        raise BookFileError(f"refused: an array shape {str(shape)[:60]}")
    if order not in ("C", "F"):
        raise BookFileError(f"refused: an array order {order!r}")
    if not isinstance(raw, (bytes, bytearray)):
        raise BookFileError("refused: array data that is not a byte string")
    dt = dtype.dtype()
    count = 1
    for n in shape:
        count *= n
    if count * dt.itemsize != len(raw):
        raise BookFileError(f"refused: {len(raw)} bytes of data for an array of shape {shape} "
                            f"and dtype {dt}")
    flat = np.frombuffer(bytes(raw), dtype=dt).astype(dt.newbyteorder("="))
    return flat.reshape(shape, order=order).copy()


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> _ArraySpec:
    if cls is not _NdarrayMarker or shape != (0,) or typecode not in (b"b", "b"):
        raise BookFileError("refused: the pickle reconstructs something other than an ndarray")
    return _ArraySpec()


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    return _array(buf, dtype, shape, order)


# module -> name -> stand-in: what a pickled list of NumPy arrays refers to (NumPy 1 and 2
# spellings; protocol 5's _frombuffer too). NumPy's own functions are never called.
_STANDINS: dict[str, dict[str, Any]] = {
    **{m: {"_reconstruct": _reconstruct}
       for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{m: {"_frombuffer": _frombuffer} for m in ("numpy.core.numeric", "numpy._core.numeric")},
    "numpy": {"ndarray": _NdarrayMarker, "dtype": _DtypeSpec},
}


class _ArraysOnly(pickle.Unpickler):
    def __init__(self, data: bytes, path: Path) -> None:
        super().__init__(io.BytesIO(data))
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        standin = _STANDINS.get(module, {}).get(name)
        if standin is None:
            raise BookFileError(f"{self.path}: refused: the pickle names {module}.{name}, and "
                                f"a book parameter file holds only NumPy arrays (nothing was "
                                f"run)")
        return standin

    def persistent_load(self, pid: Any) -> Any:
        raise BookFileError(f"{self.path}: refused: the pickle uses persistent ids, which a "
                            f"book parameter file never does (nothing was run)")


_MEMO_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"})


def _check_opcodes(data: bytes) -> None:
    """Walk the pickle's opcodes without running any (pickletools): a malformed stream fails
    here, and so does a memo index past the file's length, which no real pickle has and to
    which CPython's unpickler would size its memo table (one flipped byte asked for 750,947,805
    slots: 100 s and gigabytes before the error)."""
    for op, arg, _ in pickletools.genops(data):
        if op.name in _MEMO_OPS and int(arg) > len(data):
            raise BookFileError(f"a memo index ({arg}) past the file's {len(data)} bytes: not "
                                f"a pickle the book wrote")


def read_book_params(path: str | os.PathLike[str]) -> list[np.ndarray]:
    """The arrays of a book ``.pkl`` parameter file, read without running anything else: the
    pickle's calls go to stand-ins that collect (dtype, shape, bytes) and check them; the
    arrays are then made fresh from the bytes (no pickled dtype state reaches NumPy)."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise BookFileError(f"{path} is not a regular file; give the book's .pkl file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BookFileError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        _check_opcodes(data)
        obj = _ArraysOnly(data, path).load()
    except BookFileError as e:
        msg = str(e)
        raise BookFileError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
    except Exception as e:  # truncated, not a pickle, a bad opcode...
        raise BookFileError(f"{path} is not a readable pickle of NumPy arrays "
                            f"({type(e).__name__}: {e})") from None
    if not isinstance(obj, (list, tuple)) or not obj:
        raise BookFileError(f"{path} holds a {type(obj).__name__}, not the book's list of "
                            f"parameter arrays")
    arrays = []
    for k, a in enumerate(obj):
        if isinstance(a, _ArraySpec):
            a = a.array
        if not isinstance(a, np.ndarray) or a.dtype.kind != "f":
            what = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
            raise BookFileError(f"{path}: item {k} is {what}, not a float array")
        if not np.isfinite(a).all():
            raise BookFileError(f"{path}: array {k} holds NaN or infinite values")
        arrays.append(a)
    return arrays


def _shapes(arrays: list[np.ndarray]) -> str:
    return ", ".join(str(a.shape) for a in arrays)


def book_model(arrays: list[np.ndarray], model: str, source: Any = "the file") -> LanguageModel:
    """A LanguageModel holding the book's arrays (float32), its sizes read from their shapes."""
    if model not in BOOK_MODELS:
        raise ValueError(f"--model must be one of {', '.join(BOOK_MODELS)}, got {model!r}")
    layers = 1 if model == "rnnlm" else 2
    want = 1 + 3 * layers + 2
    if len(arrays) != want:
        raise BookFileError(f"{source} holds {len(arrays)} arrays ({_shapes(arrays)}); the "
                            f"book's {model} has {want}: is it another model's file?")
    V, D = arrays[0].shape if arrays[0].ndim == 2 else (0, 0)
    H = arrays[2].shape[0] if arrays[2].ndim == 2 else 0
    expected = [(V, D)]
    for k in range(layers):
        expected += [(D if k == 0 else H, 4 * H), (H, 4 * H), (4 * H,)]
    expected += [(H, V), (V,)]
    if [a.shape for a in arrays] != expected or not V * D * H:
        raise BookFileError(f"{source}: shapes {_shapes(arrays)} are not the book's {model} "
                            f"(expected {', '.join(map(str, expected))} for V={V} D={D} H={H})")
    tied = model == "better-rnnlm"
    if tied and not np.array_equal(arrays[-2], arrays[0].T):
        raise BookFileError(f"{source}: the output weights are not the embedding's transpose, "
                            f"as the book's BetterRnnlm ties them")
    lm = LanguageModel(V, D, H, cell="lstm", num_layers=layers, tie_weights=tied,
                       dropout=0.5 if tied else 0.0, dtype="float32", init="book", seed=0)
    given = arrays if not tied else arrays[:-2] + arrays[-1:]
    lm.set_params({n: a.astype(np.float32) for n, a in zip(lm.param_names, given, strict=True)},
                  source=source)
    return lm


def book_seq2seq(arrays: list[np.ndarray], source: Any = "the file") -> AttentionSeq2seq:
    """An AttentionSeq2seq holding the book's arrays (float32), sizes from their shapes."""
    if len(arrays) != 10:
        raise BookFileError(f"{source} holds {len(arrays)} arrays ({_shapes(arrays)}); the "
                            f"book's AttentionSeq2seq has 10: is it another model's file?")
    V, D = arrays[0].shape if arrays[0].ndim == 2 else (0, 0)
    H = arrays[2].shape[0] if arrays[2].ndim == 2 else 0
    expected = [(V, D), (D, 4 * H), (H, 4 * H), (4 * H,)] * 2 + [(2 * H, V), (V,)]
    if [a.shape for a in arrays] != expected or not V * D * H:
        raise BookFileError(f"{source}: shapes {_shapes(arrays)} are not the book's "
                            f"AttentionSeq2seq (expected {', '.join(map(str, expected))})")
    model = AttentionSeq2seq(vocab_size=V, wordvec_size=D, hidden_size=H, dtype="float32",
                             seed=0)
    model.set_params({n: a.astype(np.float32)
                      for n, a in zip(model.param_names, arrays, strict=True)}, source=source)
    return model


def import_book(path: str | os.PathLike[str], model: str, out: str | os.PathLike[str],
                data: str = "ptb") -> dict[str, Any]:
    """Read the book's ``path`` as ``model`` with the vocabulary of ``data`` (its corpus, in
    the book's order) and write a bptt checkpoint to ``out``; returns what was done."""
    arrays = read_book_params(path)
    if model == "attention-seq2seq":
        return _import_seq2seq(path, arrays, out, data)
    lm = book_model(arrays, model, source=path)
    corpus = load_corpus(data, "word")
    if len(corpus.vocab) != lm.vocab_size:
        raise BookFileError(f"{path} was trained on {lm.vocab_size:,} words but {data} has "
                            f"{len(corpus.vocab):,}: give --data the corpus the book used")
    source = {"book_file": str(Path(path).resolve()), "book_model": model,
              "dtype_in_file": str(arrays[0].dtype)}
    # no training happened here: the run records the import and what evaluating it needs
    # (the corpus, and the book's evaluation sizes), not training settings
    train = {"imported": source, "data": data, "level": "word", "eval_batch": 10,
             "eval_bptt": 35}
    save_checkpoint(Path(out) / "best", lm, corpus.vocab, train, data=source)
    return {"model": lm, "vocab_size": len(corpus.vocab), "out": str(out), **source}


def _import_seq2seq(path: Any, arrays: list[np.ndarray], out: Any, data: str) -> dict[str, Any]:
    model = book_seq2seq(arrays, source=path)
    pairs = load_pairs(data, reverse=True, book_order=True)  # ch. 8 trains reversed questions
    V = model.config["source_vocab_size"]
    if len(pairs.source_vocab) != V:
        raise BookFileError(f"{path} was trained on {V} characters but {data} has "
                            f"{len(pairs.source_vocab)}: give --data the book's pair file "
                            f"(dataset/date.txt)")
    source = {"book_file": str(Path(path).resolve()), "book_model": "attention-seq2seq",
              "dtype_in_file": str(arrays[0].dtype)}
    # the import, not training settings; the vocabulary and the test split live in the run
    train = {"imported": source, "data": data, "model": "attention", "reverse": True,
             "embed": model.config["embed_size"], "hidden": model.config["hidden_size"]}
    arrays_out, documents = seq2seq_files(model, pairs, train)
    write_checkpoint(Path(out) / "best", arrays_out, documents, {"trainer": {}, **source})
    return {"model": model, "vocab_size": V, "out": str(out), **source}
