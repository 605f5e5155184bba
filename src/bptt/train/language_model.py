"""Training language models with truncated BPTT, the book's way (``RnnlmTrainer``), made resumable.

One step: a batch (N, T) of the book's offset streams (:class:`~bptt.data.StreamBatcher`),
``loss = model.forward(xs, ts)``, ``model.backward()``, global-norm clipping, one optimizer update
(the one training loop, :class:`bptt.train.trainer.Trainer`). The recurrent state flows from batch
to batch (the model is stateful). At each epoch's end the validation perplexity is measured (on
a copy of the state, so training continues where it was); if it improved, the model is saved to
``OUT/best``; if not, the learning rate is divided by ``lr_decay`` (4, the book's
``train_better_rnnlm``). ``OUT/last`` always holds a checkpoint to resume from: parameters,
optimizer state, recurrent state, RNG state, stream position, history.

Perplexity (:func:`perplexity`): ``exp(mean cross-entropy per token)`` over the split read as 10
contiguous streams in chunks of 35 (the book's ``eval_perplexity``), starting from a zero state.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .. import backend
from ..atomic import write_json_atomic
from ..data.batching import StreamBatcher, eval_batches, variable_bptt_length
from ..data.corpus import Corpus, load_corpus, read_text, tokenize
from ..models.rnnlm import LanguageModel
from ..nn.registry import get_cell
from ..optim import make_optimizer
from .comm import world
from .config import RESUME_MAY_CHANGE, TrainConfig
from .lm_checkpoint import language_model_files, load_language_model
from .memory import check_fits, stack_params, training_bytes
from .neural_cache import CacheSettings, cache_perplexity, stream_states, tune_cache
from .plot import plot_history, require_matplotlib
from .progress import work_bar
from .run import Run
from .trainer import (
    MAX_LOG_PERPLEXITY,
    Trainer,
    TrainerSettings,
    TrainingDiverged,
    TrainState,
    loss_has_diverged,
    perplexity_of,
    set_rng_state,
)

__all__ = ["LanguageModelLearner", "Trainer", "TrainingDiverged", "TrainState", "evaluate",
           "loss_has_diverged", "make_optimizer", "perplexity", "perplexity_of",
           "train_language_model"]


def perplexity(model: LanguageModel, ids: Any, batch_size: int = 10,
               time_size: int = 35, progress: bool = False) -> float:
    """exp(mean cross-entropy per token) of ``ids``, stateful over ``batch_size`` streams.

    The model's state is reset before and after (dropout off). Every token of the streams
    counts once, the short last chunk weighted by its size (``progress``: a bar on a
    terminal).
    """
    model.reset_state()
    total, count = 0.0, 0
    chunks = list(eval_batches(ids, batch_size, time_size))
    bar = work_bar(len(chunks), "perplexity", "chunk") if progress else None
    for xs, ts in chunks:
        loss = model.forward(xs, ts, train_flg=False)
        total += float(loss) * ts.size
        count += ts.size
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    model.reset_state()
    return perplexity_of(total / count)


def book_perplexity(model: LanguageModel, ids: Any, batch_size: int = 10,
                    time_size: int = 35, progress: bool = False) -> float:
    """The book's ``eval_perplexity`` (common/util.py), exactly: stream i starts at
    i * jump with jump = (len - 1) // N, only the max_iters = (len - 1) // (N T) whole windows
    are scored (each stream's last tokens are not), and the windows' mean losses are averaged.
    On the book's Rnnlm.pkl: 136.08, where :func:`perplexity` scores every token: 135.90."""
    ids = np.asarray(backend.to_numpy(ids))
    size = len(ids)
    max_iters = (size - 1) // (batch_size * time_size)
    if max_iters < 1:
        raise ValueError(f"the book's evaluation needs more than N x T = "
                         f"{batch_size * time_size} tokens, got {size}: lower --batch/--bptt")
    jump = (size - 1) // batch_size
    starts = jump * np.arange(batch_size)[:, None] + np.arange(time_size)[None, :]
    model.reset_state()
    total = 0.0
    bar = work_bar(max_iters, "perplexity (the book's)", "window") if progress else None
    for it in range(max_iters):
        at = starts + it * time_size
        xs, ts = ids[at % size], ids[(at + 1) % size]
        total += float(model.forward(xs, ts, train_flg=False))
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    model.reset_state()
    return perplexity_of(total / max_iters)


def corpus_fingerprint(corpus: Corpus) -> dict[str, Any]:
    """What identifies the training data of a run: its name, size and the SHA-256 of its ids."""
    ids = np.ascontiguousarray(np.asarray(corpus.train, dtype=np.int64))
    return {"name": corpus.name, "level": corpus.level, "vocab_size": len(corpus.vocab),
            "train_tokens": int(len(ids)), "train_sha256": hashlib.sha256(ids.data).hexdigest()}


class LanguageModelLearner:
    """A language model on a corpus, for :class:`~bptt.train.trainer.Trainer` (truncated BPTT)."""

    unit = "tok"
    monitor, monitor_label = "valid_ppl", "validation perplexity"
    loss_limit = MAX_LOG_PERPLEXITY  # a cross-entropy: past it the perplexity is infinite

    def __init__(self, model: LanguageModel, corpus: Corpus, config: TrainConfig,
                 position: int = 0, data: dict[str, Any] | None = None) -> None:
        self.model, self.corpus, self.cfg = model, corpus, config
        self.params, self.grads = model.params, model.grads
        self.batcher = StreamBatcher(corpus.train, config.batch, config.bptt, position=position)
        self.steps_per_epoch = self.batcher.iters_per_epoch
        self.data = data or {}
        self.optimizer_name: str | None = None
        self.rows = slice(None)  # this rank's streams (data-parallel: a share of the batch)
        self.lr_scale = 1.0  # of this step's update (variable-length BPTT)
        self._full_state: list[tuple[Any, Any]] | None = None

    def shard(self, rank: int, size: int) -> None:
        """Train on this rank's share of the batch's streams (``--batch`` stays global)."""
        N = self.cfg.batch
        if N % size:
            raise ValueError(f"--batch {N} must be divisible by the {size} ranks (the batch is "
                             f"split across them)")
        self.rows = slice(rank * N // size, (rank + 1) * N // size)
        states = self.model.get_state()  # a resumed state holds every stream: keep ours
        if any(h is not None and h.shape[0] == N for h, _ in states):
            self.model.set_state([(None if h is None else h[self.rows],
                                   None if c is None else c[self.rows]) for h, c in states])

    def gather_state(self, comm: Any) -> None:
        """Every rank's carried state, assembled (on all ranks) for rank 0's checkpoint."""
        N, full = self.cfg.batch, []
        for h, c in self.model.get_state():
            pair = []
            for part in (h, c):
                if part is None:
                    pair.append(None)
                    continue
                buf = np.zeros((N,) + tuple(part.shape[1:]), dtype=np.float64)
                buf[self.rows] = backend.to_numpy(part)
                pair.append(comm.allreduce_(buf).astype(part.dtype))
            full.append((pair[0], pair[1]))
        self._full_state = full

    def train_step(self) -> tuple[float, int]:
        T = None
        if self.cfg.variable_bptt:  # the lr follows the window: lr * T / bptt (AWD-LSTM)
            T = variable_bptt_length(self.cfg.bptt, self.cfg.seed, self.batcher.position)
            self.lr_scale = T / self.cfg.bptt
        xs, ts = self.batcher.next_batch(T)
        xs, ts = xs[self.rows], ts[self.rows]
        loss = float(self.model.forward(xs, ts))
        if not loss_has_diverged(loss):
            self.model.backward()
        return loss, int(xs.size)

    def evaluate(self, train_loss: float | None) -> dict[str, Any]:
        saved = self.model.get_state()
        valid = perplexity(self.model, self.corpus.valid, self.cfg.eval_batch, self.cfg.eval_bptt)
        self.model.set_state(saved)
        return {"train_ppl": None if train_loss is None else perplexity_of(train_loss),
                "valid_ppl": valid}

    def describe(self, rec: dict[str, Any]) -> str:
        tp = f"train ppl {rec['train_ppl']:8.2f} | " if rec["train_ppl"] is not None else ""
        return (f"epoch {rec['epoch']:5.2f} | step {rec['step']:6d} | {tp}valid ppl "
                f"{rec['valid_ppl']:8.2f}{' *' if rec['best'] else '  '} | lr {rec['lr']:g}")

    def position(self) -> dict[str, Any]:
        return {"position": self.batcher.position}

    def checkpoint(self, resumable: bool) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        return language_model_files(self.model, self.corpus.vocab, self.cfg.to_dict(),
                                    self.optimizer_name, self.data, with_state=resumable,
                                    states=self._full_state)

    def set_training(self, on: bool) -> None:
        pass  # LanguageModel.forward switches its dropout itself (train_flg)


def _data_spec(data: str | None) -> str | None:
    """Paths are stored absolute (eval/generate may run elsewhere); 'ptb'/'builtin' as is."""
    if data is None or data == "builtin" or not Path(data).exists():
        return data
    return str(Path(data).resolve())


def _resumed_config(config: TrainConfig, explicit: set[str] | None, ck: Any,
                    out: Path) -> TrainConfig:
    saved = TrainConfig.from_dict(ck.train_config)
    given = explicit if explicit is not None else set()
    for name in sorted(given - set(RESUME_MAY_CHANGE)):
        new, old = getattr(config, name), getattr(saved, name)
        if new != old:
            raise ValueError(f"--{name.replace('_', '-')} {new} differs from the run being "
                             f"resumed ({old}); a resumed run keeps its settings (drop the "
                             f"option, or train into another --out)")
    saved.max_steps = saved.max_minutes = None  # limits of the session that stopped
    for name in RESUME_MAY_CHANGE:
        if name in given:
            setattr(saved, name, getattr(config, name))
    saved.data = _data_spec(saved.data)
    if saved.data and saved.data not in ("builtin", "ptb") and not Path(saved.data).exists():
        raise FileNotFoundError(2, "the run's training data is no longer there: pass --data "
                                "with its new place (its content is checked)", saved.data)
    saved.resume, saved.out = True, str(out)
    return saved.resolved()


def _data_fingerprint(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """A corpus fingerprint (:func:`corpus_fingerprint`) as the run header keeps it."""
    if not data or not data.get("train_sha256"):
        return None
    return {"name": data.get("name"), "unit": "tokens", "size": data.get("train_tokens") or 0,
            "sha256": data["train_sha256"]}


def train_language_model(config: TrainConfig, explicit: set[str] | None = None,
                         stream: TextIO | None = None,
                         on_step: Callable[[Trainer], None] | None = None,
                         comm: Any = None) -> dict[str, Any]:
    """Train (or resume) a language model as ``config`` says; returns the metrics dict.

    Writes ``OUT/best`` (best validation model), ``OUT/last`` (resumable), ``OUT/log.jsonl``,
    ``OUT/metrics.json`` and the ``--plot`` PNG. ``explicit``: the settings the user gave (when
    resuming, changing one that shapes the run is an error). ``metrics['stopped']`` is
    'interrupted' after Ctrl-C (a checkpoint is saved; metrics.json is not written).

    Data-parallel (``mpiexec -n K bptt train``, or ``comm``: see :mod:`bptt.train.comm`): every
    rank trains on its share of the ``batch`` streams with the same weights; rank 0 alone
    writes; the other ranks return ``{"rank": r, "stopped": ..., "steps": ...}``.
    """
    wall0 = time.perf_counter()
    comm = comm if comm is not None else world()
    out = Path(config.out)
    if config.device:
        backend.set_device(config.device)
    with Run(config.out, "language-model", resume=config.resume, overwrite=config.overwrite,
             force=config.force, comm=comm) as run:
        ck = None
        if config.resume:
            ck = load_language_model(out / "last")
            if not ck.resumable:
                raise ValueError(f"{ck.directory} has no optimizer state: it cannot be resumed")
            cfg = _resumed_config(config, explicit, ck, out)
        else:
            cfg = config.resolved()
            cfg.data = _data_spec(cfg.data)
        if cfg.plot:
            require_matplotlib("--plot needs")
        corpus = load_corpus(cfg.data, cfg.level, min_freq=cfg.min_freq, max_size=cfg.max_size,
                             tokenizer=cfg.tokenizer,
                             vocab=ck.vocab if ck is not None else None)
        data = corpus_fingerprint(corpus)
        run.check_data(_data_fingerprint(data),
                       then=_data_fingerprint(ck.config.get("data")) if ck else None)
        backend.seed(cfg.seed)
        check_memory(cfg, len(corpus.vocab))
        model = LanguageModel(**cfg.model_kwargs(len(corpus.vocab)), seed=cfg.seed)
        optimizer = make_optimizer(cfg.optimizer, cfg.lr)
        state = None
        if ck is not None:
            model.set_params(dict(zip(ck.model.param_names, ck.model.params, strict=True)))
            optimizer.load_state_dict(ck.optimizer_state)
            xp = backend.get_xp()
            model.set_state([(None if h is None else xp.asarray(h, dtype=model.dtype),
                              None if c is None else xp.asarray(c, dtype=model.dtype))
                             for h, c in ck.rnn_state])
            set_rng_state(ck.rng_state)
            try:
                state = TrainState.from_dict(ck.trainer_state, f"{ck.directory / 'state.json'}")
            except ValueError as e:
                raise ValueError(f"{e}; the checkpoint cannot be resumed") from None
        with run.training():
            return _run(cfg, model, optimizer, corpus, data, out, state, ck is not None,
                        stream, run.on_step(on_step), wall0, comm)


def check_memory(cfg: TrainConfig, vocab_size: int) -> None:
    """Refuse a model that cannot fit in this machine's memory, with the estimate, before
    anything is allocated."""
    check_fits(estimate_memory(cfg, vocab_size),
               f"parameters, gradients, optimizer state, activations of a {cfg.batch}x"
               f"{cfg.bptt} batch", "--hidden, --embed, --layers, --batch or --bptt")


def estimate_memory(cfg: TrainConfig, vocab_size: int) -> int:
    """Bytes for parameters, gradients, two optimizer slots and the forward/backward arrays
    of one (batch, bptt) step, from the settings alone."""
    kw = cfg.model_kwargs(vocab_size)
    V, D, H, L = vocab_size, kw["embed_size"], kw["hidden_size"], kw["num_layers"]
    last = kw.get("last_hidden") or H
    params = V * D + V + (0 if kw["tie_weights"] else last * V)
    params += stack_params(kw["cell"], D, H, L, last_hidden=last)
    acts = cfg.batch * cfg.bptt * (3 * V + 2 * get_cell(kw["cell"]).gates * H * L + D)
    return training_bytes(params, acts, kw["dtype"])


def _run(cfg: TrainConfig, model: LanguageModel, optimizer: Any, corpus: Corpus,
         data: dict[str, Any], out: Path, state: TrainState | None, resumed: bool,
         stream: TextIO | None, on_step: Callable[[Trainer], None], wall0: float,
         comm: Any) -> dict[str, Any]:
    position = state.learner.get("position", 0) if state is not None else 0
    learner = LanguageModelLearner(model, corpus, cfg, position=position, data=data)
    learner.optimizer_name = type(optimizer).__name__
    tie = ", tied" if model.tie_weights else ""
    drop = f", dropout {model.dropout:g}" if model.dropout else ""
    title = (f"{corpus.name}: {model.num_layers}x{model.cell.upper()} "
             f"D={model.embed_size} H={model.hidden_size}{drop}{tie}")

    warned = []

    def redraw(tr: Trainer, rec: dict[str, Any]) -> None:
        if cfg.plot:  # redrawn at every evaluation: watch a long run
            plot_history(tr.state.history, cfg.plot, title=title)
        V = model.vocab_size
        if not warned and rec.get("valid_ppl", 0) > V and not rec.get("partial"):
            warned.append(True)  # once: worse than a uniform guess after a whole epoch
            tr.progress.message(
                f"bptt: warning: valid ppl {rec['valid_ppl']:,.0f} is worse than a uniform guess "
                f"over the {V:,} tokens: the model is stuck (saturated units with tied weights "
                f"and the book's initial weights, or too high an lr); try --init torch or a "
                f"lower --lr")

    settings = TrainerSettings(epochs=cfg.epochs, max_steps=cfg.max_steps,
                               max_minutes=cfg.max_minutes, clip=cfg.clip or None,
                               lr_decay=cfg.lr_decay, decay_after=cfg.decay_after,
                               log_every=cfg.log_every, quiet=cfg.quiet)
    trainer = Trainer(learner, optimizer, settings, out, state, stream, title,
                      on_step=on_step, on_evaluate=redraw, comm=comm)
    trainer.log.write("resume" if resumed else "start", step=trainer.state.step,
                      config=cfg.to_dict(), model=model.config)
    trainer.progress.message(
        f"{'resuming' if resumed else 'training'} {model} on {corpus.name}: "
        f"{len(corpus.train):,} train tokens, {trainer.iters:,} steps/epoch, "
        f"{trainer.total_steps:,} steps ({cfg.preset} preset, {cfg.optimizer} lr {cfg.lr:g}) "
        f"-> {out}")
    stopped = trainer.fit()
    st = trainer.state
    if comm.rank != 0:
        return {"rank": comm.rank, "stopped": stopped, "steps": st.step}
    last_valid = st.history[-1]["valid_ppl"] if st.history else None
    metrics: dict[str, Any] = {
        "stopped": stopped, "steps": st.step, "epochs_completed": st.step // trainer.iters,
        "epochs": round(st.step / trainer.iters, 4),
        "valid_ppl": st.best if st.best is not None else last_valid,
        "test_ppl": None, "best_epoch": st.best_epoch,
        "final_valid_ppl": last_valid,
        "final_train_ppl": st.history[-1]["train_ppl"] if st.history else None,
        "train_tokens_per_sec": st.units / st.train_time if st.train_time else None,
        "train_tokens": st.units, "train_time_s": round(st.train_time, 2),
        "num_params": model.num_params(), "model": model.config,
        "data": {"name": corpus.name, "level": corpus.level, "vocab_size": len(corpus.vocab),
                 "train_tokens": len(corpus.train), "valid_tokens": len(corpus.valid),
                 "test_tokens": None if corpus.test is None else len(corpus.test)},
        "config": cfg.to_dict(), "best_checkpoint": str(out / "best"),
    }
    if stopped == "interrupted":
        metrics["wall_time_s"] = round(time.perf_counter() - wall0, 2)
        return metrics
    if corpus.test is not None:
        best = load_language_model(out / "best")  # test the model that eval/generate use
        model.set_params(dict(zip(best.model.param_names, best.model.params, strict=True)))
        metrics["test_ppl"] = perplexity(model, corpus.test, cfg.eval_batch, cfg.eval_bptt)
        if cfg.cache:
            found = cache_evaluation(model, corpus.valid, corpus.test, cfg.eval_batch,
                                     cfg.eval_bptt)
            metrics["test_ppl_cache"], metrics["cache"] = found["cache_perplexity"], found["cache"]
    metrics["wall_time_s"] = round(time.perf_counter() - wall0, 2)
    trainer.log.write("end", **{k: v for k, v in metrics.items() if k != "config"})
    write_json_atomic(out / "metrics.json", metrics)
    if cfg.plot:
        plot_history(st.history, cfg.plot, title=title)
    return metrics

def evaluate(path: str | os.PathLike[str], data: str | None = None, split: str = "test",
             level: str | None = None, batch_size: int | None = None,
             time_size: int | None = None, book: bool = False, progress: bool = False,
             cache: CacheSettings | bool = False) -> dict[str, Any]:
    """Perplexity of a saved model (``OUT`` or a checkpoint directory) on a split.

    ``data`` defaults to the data the model was trained on; it is encoded with the model's
    vocabulary (unseen tokens become ``<unk>``; ``unk_fraction`` says how many tokens are
    ``<unk>``). Batch and time sizes default to the run's. ``book``: the book's
    ``eval_perplexity`` (:func:`book_perplexity`: whole windows only) instead of every token.
    ``cache``: also the perplexity with the continuous cache (:mod:`bptt.train.neural_cache`),
    with these settings, or (True) with the settings best on the validation split.
    """
    ck = load_language_model(path)
    tc = ck.train_config
    spec = data if data is not None else tc.get("data")
    level = level or ck.vocab.level
    corpus = None
    if split == "all" and spec is not None and Path(spec).is_file():  # a text of any length
        text = read_text(spec)
        ids = ck.vocab.encode(tokenize(text, level, ck.vocab.tokenizer, ck.vocab.subword))
        name = Path(spec).name
    else:
        corpus = load_corpus(spec, level, vocab=ck.vocab)
        ids, name = corpus.split(split), corpus.name
    N = batch_size or tc.get("eval_batch", 10)
    T = time_size or tc.get("eval_bptt", 35)
    unk = ck.vocab.unk_id  # unseen tokens count as <unk>: many of them make ppl meaningless
    unk_fraction = float((ids == unk).mean()) if unk is not None and len(ids) else 0.0
    streams = max(1, min(N, len(ids) - 1))  # eval_batches' streams
    scored = N * T * ((len(ids) - 1) // (N * T)) if book else streams * ((len(ids) - 1)
                                                                           // streams)
    if cache is not False and book:
        raise ValueError("the cache scores every token of the streams: leave out --book")
    if cache is True and corpus is None:
        raise ValueError("the cache is tuned on a validation split, which one text file has "
                         "not: give --cache-window, --cache-theta and --cache-lambda")
    measure = book_perplexity if book else perplexity
    result = {"perplexity": measure(ck.model, ids, N, T, progress=progress), "split": split,
              "tokens": int(len(ids)), "scored_tokens": int(scored),
              "method": "book" if book else "streams", "unk_fraction": unk_fraction,
              "data": name, "checkpoint": str(ck.directory)}
    if cache is False:
        return result
    return {**result, **cache_evaluation(ck.model, corpus.valid if cache is True else None,
                                         ids, N, T, cache if cache is not True else None)}


def cache_evaluation(model: LanguageModel, valid: Any, ids: Any, batch_size: int,
                     time_size: int, settings: CacheSettings | None = None) -> dict[str, Any]:
    """The perplexity of ``ids`` with the continuous cache, and its settings: ``settings``, or
    the best of :func:`~bptt.train.neural_cache.tune_cache` on ``valid``."""
    tuned_on = None
    if settings is None:
        settings, valid_ppl, _ = tune_cache(stream_states(model, valid, batch_size, time_size))
        tuned_on = {"split": "valid", "perplexity": valid_ppl}
    states = stream_states(model, ids, batch_size, time_size)
    return {"cache_perplexity": cache_perplexity(states, settings),
            "cache": {**settings.as_dict(), "tuned_on": tuned_on}}
