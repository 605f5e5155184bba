"""Training, evaluating and using seq2seq models (``bptt seq2seq train|eval|translate``).

Training runs in the one training loop (:class:`bptt.train.trainer.Trainer`): shuffled
minibatches of pairs, teacher forcing, clipping, the divergence guard, progress, checkpoints
(``OUT/last`` resumable bit for bit, ``OUT/best`` by test accuracy), Ctrl-C saving. After every
epoch the test pairs are decoded greedily, as the book's ``eval_seq2seq`` does, and scored:

    exact match   the fraction of answers generated exactly (the book's accuracy)
    char accuracy the fraction of target positions generated right (end symbol included)
    BLEU          corpus BLEU-4 of word-level pairs (Papineni et al. 2002: clipped n-gram
                  precisions, geometric mean, brevity penalty), in percent

``metrics.json`` holds ``test_acc`` (exact match) and ``test_char_acc`` like the language
models' ``test_ppl``.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .. import backend
from ..atomic import write_json_atomic
from ..data.pairs import BUILTIN, PairSet, load_pairs
from ..models.seq2seq import Seq2seqModel
from ..optim import make_optimizer
from ..validate import check_sizes
from .checkpoint import CheckpointError, check_finite, header, read_checkpoint
from .comm import world
from .memory import check_fits, stack_params, step_activations, training_bytes
from .progress import silent, work_bar
from .run import Run, fingerprint
from .trainer import (
    MAX_LOG_PERPLEXITY,
    ShuffledBatches,
    Trainer,
    TrainerSettings,
    TrainState,
    set_rng_state,
)

KIND = "seq2seq"


@dataclass
class Seq2seqConfig:
    """Everything ``bptt seq2seq train`` can set (the book's sizes by default)."""

    data: str = "addition"           # addition | date (generated) | a pair file
    model: str = "plain"             # plain | peeky | attention
    cell: str = "lstm"
    reverse: bool = False            # feed the sources backwards (the book's ch. 7.3.1)
    level: str = "char"              # tab-separated files: char or word
    embed: int = 16
    hidden: int = 128
    layers: int = 1
    bidirectional: bool = False
    score: str = "dot"               # attention score: dot | general | additive
    batch: int = 128
    epochs: int = 25
    optimizer: str = "adam"
    lr: float = 0.001
    clip: float = 5.0                # 0: off
    seed: int = 0
    pairs: int | None = None         # use the first N pairs (generated: how many)
    eval_size: int | None = None     # test pairs decoded after each epoch (None: all)
    max_steps: int | None = None
    max_minutes: float | None = None
    dtype: str = "float32"
    out: str = "runs/seq2seq"
    resume: bool = False
    overwrite: bool = False
    force: bool = False              # resume even though the training pairs changed
    quiet: bool = False
    log_every: int = 50

    def check(self) -> None:
        check_sizes(embed_size=self.embed, hidden_size=self.hidden, num_layers=self.layers)
        for name in ("batch", "epochs", "pairs", "eval_size", "max_steps", "log_every"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or int(v) != v or v < 1):
                raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, "
                                 f"got {v}")
        if not 0 < self.lr < math.inf:
            raise ValueError(f"--lr must be a positive number, got {self.lr}")
        if self.max_minutes is not None and not 0 < self.max_minutes < math.inf:
            raise ValueError(f"--max-minutes must be a positive number, got {self.max_minutes}")
        if not 0 <= self.clip < math.inf:
            raise ValueError(f"--clip must be >= 0 (0 turns clipping off), got {self.clip}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Seq2seqConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


# The book's recipe for each generated set, used where no flag says otherwise: ch. 7's
# train_seq2seq.py (addition) and ch. 8's train.py (dates: H = 256, the sources reversed).
# With H = 128 and three epochs the dates reach 11.6 % exact matches, with the recipe 99 %.
RECIPES: dict[str, dict[str, Any]] = {
    "addition": {"embed": 16, "hidden": 128, "batch": 128, "epochs": 25},
    "date": {"embed": 16, "hidden": 256, "batch": 128, "epochs": 10, "reverse": True},
}


def with_recipe(cfg: Seq2seqConfig, explicit: set[str] | None = None
                ) -> tuple[Seq2seqConfig, dict[str, Any]]:
    """``cfg`` with the book's recipe for its built-in data set filled in where the user gave
    nothing: a field counts as given when it is in ``explicit`` (the flags on the command
    line) or differs from its default; the recipe's settings that took effect."""
    recipe = RECIPES.get(cfg.data, {})
    defaults = Seq2seqConfig()
    given = set(explicit or ()) | {f for f in recipe if getattr(cfg, f) != getattr(defaults, f)}
    applied = {k: v for k, v in recipe.items() if k not in given}
    return replace(cfg, **applied), applied


def recipe_line(data: str, applied: dict[str, Any]) -> str:
    """The line that says which of a built-in set's settings came from the book's recipe."""
    flags = " ".join(f"--{k}" if v is True else f"--{k} {v}" for k, v in applied.items())
    chapter = {"addition": 7, "date": 8}[data]
    return f"the book's recipe for --data {data} (ch. {chapter}): {flags} (a flag overrides it)"


# -- metrics --------------------------------------------------------------------------------
def exact_match(guesses: Sequence[Sequence[str]], answers: Sequence[Sequence[str]]) -> float:
    """The fraction of guesses equal to their answer, token for token."""
    return float(np.mean([list(g) == list(a) for g, a in zip(guesses, answers, strict=True)]))


def char_accuracy(guesses: Sequence[Sequence[str]], answers: Sequence[Sequence[str]],
                  end: str | None = None) -> float:
    """The fraction of answer positions (the end symbol, if any, counted as one) right."""
    right = total = 0
    for g, a in zip(guesses, answers, strict=True):
        want = list(a) + ([end] if end is not None else [])
        got = list(g) + ([end] if end is not None else [])
        total += len(want)
        right += sum(1 for i, w in enumerate(want) if i < len(got) and got[i] == w)
    return right / total if total else 0.0


def corpus_bleu(guesses: Sequence[Sequence[str]], references: Sequence[Sequence[str]],
                max_n: int = 4) -> float:
    """Corpus BLEU in percent: 100 * BP * exp(mean_n log p_n), p_n the clipped n-gram
    precision summed over the corpus, BP = min(1, exp(1 - ref_len / guess_len))."""
    matches, totals = [0] * max_n, [0] * max_n
    guess_len = ref_len = 0
    for g, r in zip(guesses, references, strict=True):
        guess_len += len(g)
        ref_len += len(r)
        for n in range(1, max_n + 1):
            gc = Counter(tuple(g[i:i + n]) for i in range(len(g) - n + 1))
            rc = Counter(tuple(r[i:i + n]) for i in range(len(r) - n + 1))
            matches[n - 1] += sum(min(c, rc[k]) for k, c in gc.items())
            totals[n - 1] += max(len(g) - n + 1, 0)
    if guess_len == 0 or min(matches) == 0:
        return 0.0
    log_p = sum(math.log(m / t) for m, t in zip(matches, totals, strict=True)) / max_n
    bp = min(1.0, math.exp(1 - ref_len / guess_len))
    return 100.0 * bp * math.exp(log_p)


def decode_pairs(model: Seq2seqModel, pairs: PairSet, sources: Sequence[Sequence[str]],
                 beam: int = 1, batch: int = 500, progress: bool = False) -> list[list[str]]:
    """The model's answers to token lists, greedy (``beam`` 1) or by beam search
    (``progress``: a bar on a terminal while it works)."""
    length = pairs.max_target
    length += 1 if pairs.end is not None else 0
    start = pairs.target_vocab.stoi[pairs.start]
    end = pairs.target_vocab.stoi[pairs.end] if pairs.end is not None else None
    out: list[list[str]] = []
    bar = work_bar(len(sources), f"decoding (beam {beam})", "pair") if progress else None
    for s in range(0, len(sources), batch):
        xs, lengths = pairs.encode_sources(sources[s:s + batch])
        lens = None if (lengths == xs.shape[1]).all() else lengths
        ids = model.generate(xs, start, length, lengths=lens, end_id=end, beam=beam)
        out += [pairs.decode_target(row) for row in ids]
        if bar is not None:
            bar.update(len(ids))
    if bar is not None:
        bar.close()
    return out


def score_pairs(model: Seq2seqModel, pairs: PairSet, items: Sequence[tuple[list[str],
                list[str]]], beam: int = 1, progress: bool = False) -> dict[str, float]:
    """Exact match, char accuracy (and BLEU at word level) of the model on ``items``."""
    guesses = decode_pairs(model, pairs, [s for s, _ in items], beam=beam, progress=progress)
    answers = [t for _, t in items]
    out = {"acc": exact_match(guesses, answers),
           "char_acc": char_accuracy(guesses, answers, pairs.end)}
    if pairs.level == "word":
        out["bleu"] = corpus_bleu(guesses, answers)
    return out


# -- the learner --------------------------------------------------------------------------------
class Seq2seqLearner:
    """Pairs for :class:`~bptt.train.trainer.Trainer`: shuffled minibatches (one permutation per
    epoch from ``default_rng(seed)``, resumable), evaluation by decoding the test pairs."""

    unit = "seq"
    monitor, monitor_label = "test_error", "test error"
    loss_limit = MAX_LOG_PERPLEXITY

    def __init__(self, model: Seq2seqModel, pairs: PairSet, cfg: Seq2seqConfig,
                 position: dict[str, Any] | None = None) -> None:
        self.model, self.pairs, self.cfg = model, pairs, cfg
        self.params, self.grads = model.params, model.grads
        self.xs, lengths = pairs.encode_sources([s for s, _ in pairs.train])
        self.lengths = None if (lengths == self.xs.shape[1]).all() else lengths
        self.ts = pairs.encode_targets([t for _, t in pairs.train])
        self.batches = ShuffledBatches(len(self.xs), cfg.batch, cfg.seed, position=position)
        self.steps_per_epoch = self.batches.steps_per_epoch
        self.test = pairs.test[:cfg.eval_size] if cfg.eval_size else pairs.test

    def shard(self, rank: int, size: int) -> None:
        """Data-parallel: train on this rank's share of each batch (``--batch`` is global)."""
        self.batches.shard(rank, size)

    def train_step(self) -> tuple[float, int]:
        idx = self.batches.next()
        self.loss_weight = float((self.ts[idx, 1:] != -1).sum())  # the tokens it averages
        if not len(idx):  # a last batch smaller than the ranks: nothing here this step
            for g in self.grads:
                g[...] = 0
            return 0.0, 0
        lens = None if self.lengths is None else self.lengths[idx]
        loss = float(self.model.forward(self.xs[idx], self.ts[idx], lens))
        self.model.backward()
        return loss, len(idx)

    def evaluate(self, train_loss: float | None) -> dict[str, Any]:
        scores = score_pairs(self.model, self.pairs, self.test)
        return {"loss": train_loss, "test_error": 1.0 - scores["acc"],
                **{f"test_{k}": v for k, v in scores.items()}}

    def describe(self, rec: dict[str, Any]) -> str:
        loss = f"loss {rec['loss']:.4f} | " if rec["loss"] is not None else ""
        bleu = f" | BLEU {rec['test_bleu']:.1f}" if "test_bleu" in rec else ""
        return (f"epoch {rec['epoch']:6.2f} | {loss}test acc {100 * rec['test_acc']:6.2f} % | "
                f"char acc {100 * rec['test_char_acc']:6.2f} %{bleu}"
                f"{' *' if rec['best'] else '  '}")

    def position(self) -> dict[str, Any]:
        return self.batches.position()

    def checkpoint(self, resumable: bool) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        return seq2seq_files(self.model, self.pairs, asdict(self.cfg))

    def set_training(self, on: bool) -> None:
        pass  # no dropout in these models


TEST_PAIRS = "test_pairs.json"


def seq2seq_files(model: Seq2seqModel, pairs: PairSet, train: dict[str, Any]
                  ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """model.npz, config.json (the model, the run's settings, the pairs' vocabularies) and
    test_pairs.json (the run's test split, so ``seq2seq eval`` scores the pairs held out when
    it trained, whatever happens to the data file later)."""
    params = {n: backend.to_numpy(p) for n, p in zip(model.param_names, model.params,
                                                     strict=True)}
    cfg = header(KIND, model_class=type(model).__name__, model=model.config, train=train,
                 pairs=pairs.to_dict())
    test = [[pairs.join(src), pairs.join(tgt)] for src, tgt in pairs.test]
    return {"model.npz": params}, {"config.json": cfg, TEST_PAIRS: {"pairs": test}}


def load_seq2seq(path: str | Path) -> tuple[Seq2seqModel, PairSet, Any]:
    """(model, pair symbols and vocabularies, the stored checkpoint) of a run or checkpoint."""
    stored = read_checkpoint(path, kind=KIND)
    try:
        pairs = PairSet.from_dict(stored.config["pairs"])
        model = Seq2seqModel(**stored.config["model"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{stored.directory / 'config.json'}: bad seq2seq config "
                              f"({type(e).__name__}: {e})") from None
    arrays = stored.arrays("model.npz")
    check_finite(stored.directory / "model.npz", arrays)
    try:
        model.set_params(arrays, source=stored.directory / "model.npz")
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    return model, pairs, stored


@dataclass
class Seq2seqCheckpoint:
    """A seq2seq checkpoint: the model, its pair symbols and vocabularies, its config."""

    directory: Path
    config: dict[str, Any]
    model: Seq2seqModel
    pairs: PairSet
    kind: str = KIND


def load_seq2seq_checkpoint(path: str | Path) -> Seq2seqCheckpoint:
    """:func:`load_seq2seq` as one object (what ``bptt.load_checkpoint`` gives)."""
    model, pairs, stored = load_seq2seq(path)
    return Seq2seqCheckpoint(stored.directory, stored.config, model, pairs)


# -- the three commands -----------------------------------------------------------------------
def train_seq2seq(cfg: Seq2seqConfig, explicit: set[str] | None = None,
                  stream: TextIO | None = None,
                  on_step: Callable[[Trainer], None] | None = None,
                  log: Callable[[str], Any] = print, comm: Any = None) -> dict[str, Any]:
    """Train (or ``resume``) a seq2seq model as ``cfg`` says; returns the metrics.
    Data-parallel under ``mpiexec`` (or ``comm``): rank 0 alone writes and reports."""
    wall0 = time.perf_counter()
    comm = comm if comm is not None else world()
    if comm.rank != 0:
        log = silent
    applied: dict[str, Any] = {}
    if not cfg.resume:
        cfg, applied = with_recipe(cfg, explicit)
    cfg.check()
    out = Path(cfg.out)
    with Run(cfg.out, "seq2seq", resume=cfg.resume, overwrite=cfg.overwrite, force=cfg.force,
             comm=comm, command="bptt seq2seq train") as run:
        state, stored = None, None
        if cfg.resume:
            model, pairs_saved, stored = load_seq2seq(out / "last")
            cfg = _resumed_config(cfg, Seq2seqConfig.from_dict(stored.config.get("train", {})),
                                  explicit, out)
        elif cfg.data not in BUILTIN and Path(cfg.data).exists():  # eval may run elsewhere
            cfg.data = str(Path(cfg.data).resolve())
        pairs = load_pairs(cfg.data, level=cfg.level, reverse=cfg.reverse, n=cfg.pairs)
        run.check_data(pairs_fingerprint(pairs))
        check_fits(estimate_memory(cfg, pairs),
                   f"parameters, gradients, optimizer state, activations of a batch of "
                   f"{min(cfg.batch, len(pairs.train))} pairs of up to "
                   f"{pairs.max_source:,} + {pairs.max_target:,} tokens",
                   "--hidden, --embed, --layers or --batch, or shorten the longest pairs")
        backend.seed(cfg.seed)
        if stored is None:
            model = Seq2seqModel(len(pairs.source_vocab), len(pairs.target_vocab), cfg.embed,
                                 cfg.hidden, cfg.model, cfg.cell, cfg.layers, cfg.bidirectional,
                                 cfg.score, target_pad=pairs.target_vocab.stoi.get(pairs.pad, 0),
                                 dtype=cfg.dtype, seed=cfg.seed)
        optimizer = make_optimizer(cfg.optimizer, cfg.lr)
        if stored is not None:
            if pairs_saved.to_dict()["source_vocab"] != pairs.to_dict()["source_vocab"]:
                raise ValueError(f"the pairs of {cfg.data} are not those of the run being "
                                 f"resumed (other vocabulary): resume with the same data")
            optimizer.load_state_dict(stored.arrays("optimizer.npz"))
            set_rng_state(stored.state.get("rng"))
            state = TrainState.from_dict(stored.state.get("trainer", {}),
                                         str(stored.directory / "state.json"))
        log(f"{pairs!r}")
        if applied:
            log(recipe_line(cfg.data, applied))
        log(f"model: {model!r}")
        learner = Seq2seqLearner(model, pairs, cfg, state.learner if state else None)
        settings = TrainerSettings(epochs=cfg.epochs, max_steps=cfg.max_steps,
                                   max_minutes=cfg.max_minutes, clip=cfg.clip or None,
                                   log_every=cfg.log_every, quiet=cfg.quiet)
        with run.training():
            trainer = Trainer(learner, optimizer, settings, out, state, stream,
                              title=repr(model), on_step=run.on_step(on_step), comm=comm)
            stopped = trainer.fit()
        if comm.rank != 0:
            return {"rank": comm.rank, "stopped": stopped, "steps": trainer.state.step}
        st = trainer.state
        done = [r for r in st.history if not r.get("partial")]
        metrics: dict[str, Any] = {
            "stopped": stopped, "steps": st.step, "epochs": round(st.step / trainer.iters, 4),
            "history": [{k: v for k, v in r.items() if k != "best"} for r in st.history],
            "best_epoch": st.best_epoch, "train_time_s": round(st.train_time, 2),
            "num_params": model.num_params(), "model": model.config, "config": asdict(cfg),
            "data": {"name": pairs.name, "train_pairs": len(pairs.train),
                     "test_pairs": len(pairs.test)},
        }
        last = st.history[-1] if st.history else {}
        metrics.update({k: last[k] for k in ("test_acc", "test_char_acc", "test_bleu")
                        if k in last})
        metrics["best_test_acc"] = max((r["test_acc"] for r in done), default=None)
        metrics["wall_time_s"] = round(time.perf_counter() - wall0, 2)
        if stopped != "interrupted":
            write_json_atomic(out / "metrics.json", metrics)
        return metrics


def _resumed_config(cfg: Seq2seqConfig, saved: Seq2seqConfig, explicit: set[str] | None,
                    out: Path) -> Seq2seqConfig:
    """The settings of the run being resumed; those the user gave must match, except the
    ones a session may change."""
    given = explicit if explicit is not None else set()
    may_change = {"epochs", "max_steps", "max_minutes", "quiet", "resume", "out", "eval_size",
                  "force", "data"}  # the data file may move: its content is checked
    for name in sorted(given - may_change):
        if getattr(cfg, name) != getattr(saved, name):
            raise ValueError(f"--{name.replace('_', '-')} {getattr(cfg, name)} differs from "
                             f"the run being resumed ({getattr(saved, name)}); a resumed "
                             f"run keeps its settings")
    keep = {k: getattr(cfg, k) for k in ("epochs", "quiet", "eval_size", "force", "data")
            if k in given}
    if "data" in keep and keep["data"] not in BUILTIN and Path(keep["data"]).exists():
        keep["data"] = str(Path(keep["data"]).resolve())
    resumed = Seq2seqConfig.from_dict({**asdict(saved), **keep, "resume": True,
                                       "out": str(out), "max_steps": cfg.max_steps,
                                       "max_minutes": cfg.max_minutes})
    if resumed.data not in BUILTIN and not Path(resumed.data).exists():
        raise FileNotFoundError(2, "the run's training pairs are no longer there: pass --data "
                                "with their new place (their content is checked)", resumed.data)
    return resumed


def estimate_memory(cfg: Seq2seqConfig, pairs: PairSet) -> int:
    """Bytes to train the model ``cfg`` describes on ``pairs`` (see :mod:`bptt.train.memory`),
    from the settings alone."""
    Vs, Vt = len(pairs.source_vocab), len(pairs.target_vocab)
    D, H, L = cfg.embed, cfg.hidden, cfg.layers
    ways = 2 if cfg.bidirectional else 1
    He = ways * H  # the decoder's width: the encoder's output
    params = (Vs + Vt) * D + stack_params(cfg.cell, D, H, L, ways)
    params += stack_params(cfg.cell, D + (He if cfg.model == "peeky" else 0), He, L)
    params += (He + (He if cfg.model in ("peeky", "attention") else 0) + 1) * Vt
    if cfg.model == "attention":
        params += {"dot": 0, "general": He * He, "additive": 2 * He * He + He}[cfg.score]
    N = min(cfg.batch, len(pairs.train))
    acts = (step_activations(cfg.cell, N, pairs.max_source, H, L, ways)
            + step_activations(cfg.cell, N, pairs.max_target, He, L)
            + 3 * N * pairs.max_target * Vt)
    return training_bytes(params, acts, cfg.dtype)


def pairs_fingerprint(pairs: PairSet) -> dict[str, Any]:
    """What identifies a run's training pairs: their name, number and SHA-256."""
    text = json.dumps(pairs.train, ensure_ascii=False).encode("utf-8")
    return fingerprint(pairs.name, "pairs", len(pairs.train), [text])


def evaluate_seq2seq(path: str | Path, data: str | None = None, beam: int = 1,
                     limit: int | None = None) -> dict[str, Any]:
    """Scores of a trained model on its test split (``test_acc``, ...) or, given ``data``, on
    every pair of that file (``acc``, ...: training pairs included if it trained on them);
    ``scored`` says which."""
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise ValueError(f"--limit must be a positive integer, got {limit}")
    if beam < 1:
        raise ValueError(f"--beam must be a positive integer, got {beam}")
    model, pairs, stored = load_seq2seq(path)
    items = pairs_for(pairs, stored, data)
    if limit is not None:
        items = items[:limit]
    prefix = "test_" if data is None else ""
    scored = (f"the run's test split ({len(items):,} pairs)" if data is None else
              f"every pair of {data} ({len(items):,}; training pairs included if the run "
              f"trained on this file)")
    scores = score_pairs(model, pairs, items, beam, progress=True)
    return {"scored": scored, "pairs": len(items), "beam": beam,
            **{f"{prefix}{k}": v for k, v in scores.items()},
            "checkpoint": str(stored.directory)}


def _split_tokens(pairs: PairSet, text: Any, where: Path) -> list[str]:
    if not isinstance(text, str) or not text:
        raise CheckpointError(f"{where}: a test pair holds {text!r}, not a text")
    return pairs.tokenize_source(text)


def pairs_for(pairs: PairSet, stored: Any, data: str | None) -> list[tuple[list[str],
                                                                           list[str]]]:
    """The run's test split (kept in the run; runs written before that regenerate or re-read
    it), or all pairs of a file."""
    if data is None:
        if stored.has(TEST_PAIRS):
            where = stored.directory / TEST_PAIRS
            doc = stored.document(TEST_PAIRS)
            rows = doc.get("pairs") if isinstance(doc, dict) else None
            if not isinstance(rows, list) or not all(isinstance(r, list) and len(r) == 2
                                                     for r in rows):
                raise CheckpointError(f"{where}: field 'pairs' must be a list of "
                                      f"[source, target] texts")
            return [(_split_tokens(pairs, s, where), _split_tokens(pairs, t, where))
                    for s, t in rows]
        train = Seq2seqConfig.from_dict(stored.config.get("train", {}))
        again = load_pairs(train.data, level=pairs.level, reverse=pairs.reverse, n=train.pairs,
                           book_order=pairs.book_order)
        return again.test
    other = load_pairs(data, level=pairs.level, reverse=pairs.reverse)
    items = other.train + other.test
    limit = pairs.max_target
    for _, target in items:
        if len(target) > limit:
            raise ValueError(f"{data}: a target of {len(target)} tokens "
                             f"({pairs.join(target)!r}) is longer than this model generates "
                             f"({limit}, the longest answer of its training data)")
    return items


def attention_map(path: str | Path, text: str) -> tuple[list[str], list[str], np.ndarray]:
    """(source tokens in reading order, output tokens, attention weights (Tout, Tsrc)) of an
    attention model answering ``text`` greedily (the book's ``visualize_attention``)."""
    model, pairs, _ = load_seq2seq(path)
    if model.kind != "attention":
        raise ValueError(f"{path} holds a {model.kind} model: only an attention model has "
                         f"attention weights to draw")
    (_, weights), = _translate(model, pairs, [text], beam=1)
    source = _padded_source(pairs, text)
    output = decode_pairs(model, pairs, [source])[0]
    if pairs.end is not None:
        output = output + [pairs.end]
    weights = weights[:len(output)]
    if pairs.reverse:  # the encoder read the source backwards: put it back in reading order
        weights = weights[:, ::-1]
    return source, output, weights


def _padded_source(pairs: PairSet, text: str) -> list[str]:
    if not text.strip():
        raise ValueError("an empty source text: give the text to translate")
    tokens = pairs.tokenize_source(text)
    width = pairs.info.get("max_source")
    if pairs.pad is None and width and len(tokens) < width:  # the book's fixed width
        tokens = tokens + [" "] * (width - len(tokens))
    if not tokens:
        raise ValueError("an empty input: give the text to translate")
    return tokens


def translate(path: str | Path, texts: Sequence[str], beam: int = 1
              ) -> list[tuple[str, Any]]:
    """(answer, attention weights (Tt, Ts) or None) for each source text."""
    model, pairs, _ = load_seq2seq(path)
    return _translate(model, pairs, texts, beam)


def _translate(model: Seq2seqModel, pairs: PairSet, texts: Sequence[str], beam: int
               ) -> list[tuple[str, Any]]:
    out = []
    for text in texts:
        tokens = _padded_source(pairs, text)
        guess = decode_pairs(model, pairs, [tokens], beam=beam)[0]
        weights = None
        if beam == 1 and getattr(model, "attention_weights", None):
            weights = np.stack([w[0] for w in model.attention_weights])[:len(guess) + 1]
        out.append((pairs.join(guess).rstrip(), weights))
    return out
