"""Training language models with truncated BPTT, the book's way (``RnnlmTrainer``), made resumable.

One step: a batch (N, T) of the book's offset streams (:class:`~bptt.data.StreamBatcher`),
``loss = model.forward(xs, ts)``, ``model.backward()``, global-norm clipping, one optimizer update.
The recurrent state flows from batch to batch (the model is stateful). At each epoch's end the
validation perplexity is measured (on a copy of the state, so training continues where it was);
if it improved, the model is saved to ``OUT/best``; if not, the learning rate is divided by
``lr_decay`` (4, the book's ``train_better_rnnlm``). ``OUT/last`` always holds a checkpoint to
resume from: parameters, optimizer state, recurrent state, RNG state, stream position, history.

Perplexity (:func:`perplexity`): ``exp(mean cross-entropy per token)`` over the split read as 10
contiguous streams in chunks of 35 (the book's ``eval_perplexity``), starting from a zero state.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .. import backend, optim
from ..atomic import write_json_atomic
from ..data.batching import StreamBatcher, eval_batches
from ..data.corpus import Corpus, load_corpus, read_text, tokenize
from ..models.rnnlm import LanguageModel
from ..optim import make_optimizer
from .checkpoint import load_checkpoint, save_checkpoint
from .config import RESUME_MAY_CHANGE, TrainConfig
from .plot import plot_history, require_matplotlib
from .progress import JsonlLog, Progress, format_seconds


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite, or so large that its perplexity is infinite."""


# exp(x) overflows a float64 for x above log(max float64) ~ 709.78: a mean cross-entropy that
# large means the model gives the right token a probability below 1e-308, i.e. it has diverged.
MAX_LOG_PERPLEXITY = math.log(np.finfo(np.float64).max)


def perplexity_of(mean_loss: float) -> float:
    """exp(mean cross-entropy), ``inf`` where that overflows (never an OverflowError)."""
    return math.exp(mean_loss) if mean_loss <= MAX_LOG_PERPLEXITY else math.inf


def loss_has_diverged(loss: float) -> bool:
    """NaN, infinite, or finite but past the point where its perplexity is infinite."""
    return not math.isfinite(loss) or loss > MAX_LOG_PERPLEXITY


def perplexity(model: LanguageModel, ids: Any, batch_size: int = 10,
               time_size: int = 35) -> float:
    """exp(mean cross-entropy per token) of ``ids``, stateful over ``batch_size`` streams.

    The model's state is reset before and after (dropout off). Every token of the streams
    counts once, the short last chunk weighted by its size.
    """
    model.reset_state()
    total, count = 0.0, 0
    for xs, ts in eval_batches(ids, batch_size, time_size):
        loss = model.forward(xs, ts, train_flg=False)
        total += float(loss) * ts.size
        count += ts.size
    model.reset_state()
    return perplexity_of(total / count)


def get_rng_state() -> dict[str, Any] | None:
    """State of bptt's generator (dropout masks) as JSON-able data; None if not available."""
    try:
        return backend.rng().bit_generator.state
    except AttributeError:  # pragma: no cover - CuPy generators keep no such state
        return None


def set_rng_state(state: dict[str, Any] | None) -> None:
    if state is not None:
        backend.rng().bit_generator.state = state


@dataclass
class TrainState:
    """Where a run is; saved in every checkpoint so ``--resume`` continues exactly."""

    step: int = 0                 # optimizer updates done
    position: int = 0             # stream position of the batcher
    lr: float = 0.0
    best_ppl: float | None = None
    best_epoch: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    train_time: float = 0.0       # seconds spent in training steps (all sessions)
    tokens: int = 0               # tokens trained on
    loss_sum: float = 0.0         # this epoch so far
    loss_steps: int = 0
    evaluated_step: int = -1      # step of the last validation

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainState:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})


class LMTrainer:
    """Runs the training loop of one configuration (see the module docstring).

    ``on_step(trainer)`` is called after every update (for tests and instrumentation);
    ``request_stop()`` ends the run after the current step, saving a checkpoint (what Ctrl-C does).
    """

    def __init__(self, model: LanguageModel, optimizer: Any, corpus: Corpus, config: TrainConfig,
                 out: Path, state: TrainState | None = None, stream: TextIO | None = None,
                 on_step: Callable[[LMTrainer], None] | None = None) -> None:
        self.model, self.optimizer, self.corpus, self.cfg = model, optimizer, corpus, config
        self.out = out
        self.state = state or TrainState(lr=optimizer.lr)
        self.batcher = StreamBatcher(corpus.train, config.batch, config.bptt,
                                     position=self.state.position)
        self.iters = self.batcher.iters_per_epoch
        total = config.epochs * self.iters
        self.total_steps = min(total, config.max_steps) if config.max_steps else total
        self.log = JsonlLog(out / "log.jsonl")
        self.progress = Progress(self.total_steps, config.epochs, config.batch * config.bptt,
                                 quiet=config.quiet, stream=stream)
        self.on_step = on_step
        self._stop: str | None = None
        tie = ", tied" if model.tie_weights else ""
        drop = f", dropout {model.dropout:g}" if model.dropout else ""
        self.title = (f"{corpus.name}: {model.num_layers}x{model.cell.upper()} "
                      f"D={model.embed_size} H={model.hidden_size}{drop}{tie}")

    def request_stop(self, reason: str = "interrupted") -> None:
        self._stop = reason

    # -- checkpoints ---------------------------------------------------------------------------
    def save_last(self) -> Path:
        self.state.position = self.batcher.position
        self.state.lr = self.optimizer.lr
        return save_checkpoint(self.out / "last", self.model, self.corpus.vocab,
                               self.cfg.to_dict(), self.optimizer, asdict(self.state),
                               get_rng_state())

    def _save_best(self) -> None:
        save_checkpoint(self.out / "best", self.model, self.corpus.vocab, self.cfg.to_dict(),
                        trainer_state={"step": self.state.step, "valid_ppl": self.state.best_ppl,
                                       "epoch": self.state.best_epoch})

    # -- the loop ------------------------------------------------------------------------------
    def _evaluate(self, decay: bool) -> dict[str, Any]:
        """Valid perplexity now; keep the best model; decay the lr if no better (at epoch ends)."""
        st, model = self.state, self.model
        t0 = time.perf_counter()
        saved = model.get_state()
        valid = perplexity(model, self.corpus.valid, self.cfg.eval_batch, self.cfg.eval_bptt)
        if not math.isfinite(valid):  # never save such a model over the last good one
            raise self._diverged(valid, st.step, "the validation perplexity")
        model.set_state(saved)
        train_ppl = perplexity_of(st.loss_sum / st.loss_steps) if st.loss_steps else None
        epoch = st.step / self.iters
        improved = st.best_ppl is None or valid < st.best_ppl
        if improved:
            st.best_ppl, st.best_epoch = valid, epoch
            self._save_best()
        elif decay and self.cfg.lr_decay > 1:
            self.optimizer.lr /= self.cfg.lr_decay
        rec = {"epoch": round(epoch, 4), "step": st.step, "train_ppl": train_ppl,
               "valid_ppl": valid, "lr": self.optimizer.lr, "best": improved,
               "train_time_s": round(st.train_time, 2),
               "eval_time_s": round(time.perf_counter() - t0, 2)}
        st.history.append(rec)
        st.loss_sum, st.loss_steps, st.evaluated_step = 0.0, 0, st.step
        self.log.write("epoch", **rec)
        tp = f"train ppl {train_ppl:8.2f} | " if train_ppl is not None else ""
        self.progress.message(f"epoch {epoch:5.2f} | step {st.step:6d} | {tp}valid ppl "
                              f"{valid:8.2f}{' *' if improved else '  '} | lr "
                              f"{self.optimizer.lr:g} | {format_seconds(st.train_time)}")
        if self.cfg.plot:  # redrawn at every evaluation: watch a long run
            plot_history(st.history, self.cfg.plot, title=self.title)
        return rec

    def _diverged(self, value: float, step: int, what: str = "the loss") -> TrainingDiverged:
        self.progress.clear()
        last = self.out / "last"
        where = (f"the last good checkpoint is {last} (continue from it with --resume and a "
                 f"lower --lr)" if last.exists() else "no checkpoint was saved yet")
        clip = self.cfg.clip
        now = f"--clip {clip:g}" if clip else "no clipping"
        suggest = 0.25 if not clip or clip > 0.25 else clip / 4
        self.log.write("diverged", step=step, what=what, value=value)
        return TrainingDiverged(
            f"{what} became {value:g} at step {step} (epoch {(step - 1) // self.iters + 1}): "
            f"training diverged; lower the learning rate "
            f"(--lr, now {self.optimizer.lr:g}) or clip the gradients (now {now}, try "
            f"--clip {suggest:g}); {where}"
        )

    def fit(self) -> str:
        """Train until the step budget, the time limit or a stop request; returns the reason
        ('completed', 'max_steps', 'max_minutes', 'interrupted')."""
        cfg, st, model, opt = self.cfg, self.state, self.model, self.optimizer
        deadline = (time.monotonic() + 60 * cfg.max_minutes) if cfg.max_minutes else None
        old_handler = self._install_sigint()
        window_t, window_loss, window_steps = time.perf_counter(), 0.0, 0
        try:
            # a diverging run overflows before its loss becomes nan; the finite checks
            # report that in one line, which NumPy's overflow warnings would only precede
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                while st.step < self.total_steps and self._stop is None:
                    t0 = time.perf_counter()
                    xs, ts = self.batcher.next_batch()
                    loss = float(model.forward(xs, ts))
                    if loss_has_diverged(loss):
                        raise self._diverged(loss, st.step + 1)
                    model.backward()
                    norm = optim.clip_grads(model.grads, cfg.clip) if cfg.clip else None
                    if norm is not None and not math.isfinite(norm):
                        raise self._diverged(norm, st.step + 1, "the gradient norm")
                    opt.update(model.params, model.grads)
                    st.step += 1
                    st.tokens += xs.size
                    st.loss_sum += loss
                    st.loss_steps += 1
                    st.train_time += time.perf_counter() - t0
                    window_loss += loss
                    window_steps += 1
                    rate = st.tokens / st.train_time if st.train_time > 0 else 0.0
                    self.progress.update(st.step, st.step // self.iters + 1, st.loss_sum /
                                         st.loss_steps, rate, opt.lr)
                    if st.step % cfg.log_every == 0:
                        now = time.perf_counter()
                        self.log.write("train", step=st.step, epoch=round(st.step / self.iters, 4),
                                       loss=window_loss / window_steps,
                                       ppl=perplexity_of(window_loss / window_steps),
                                       lr=opt.lr, grad_norm=norm,
                                       tokens_per_sec=window_steps * xs.size / (now - window_t))
                        window_t, window_loss, window_steps = now, 0.0, 0
                    if st.step % self.iters == 0:
                        self._evaluate(decay=True)
                        self.save_last()
                    if self.on_step is not None:
                        self.on_step(self)
                    if deadline is not None and time.monotonic() >= deadline:
                        self._stop = self._stop or "max_minutes"
        finally:
            self._restore_sigint(old_handler)
        if self._stop == "interrupted":
            self.progress.clear()
            self.save_last()
            self.log.write("interrupted", step=st.step)
            return "interrupted"
        if st.evaluated_step != st.step:  # stopped inside an epoch: measure where we are
            self._evaluate(decay=False)
        self.save_last()
        if self._stop is not None:
            return self._stop
        return "max_steps" if st.step < cfg.epochs * self.iters else "completed"

    def _install_sigint(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum: int, frame: Any) -> None:
            if self._stop == "interrupted":  # a second Ctrl-C: stop at once
                raise KeyboardInterrupt
            self._stop = "interrupted"
            self.progress.message("\ninterrupt: saving a checkpoint after this step "
                                  "(Ctrl-C again to quit at once)")

        return signal.signal(signal.SIGINT, handler)

    @staticmethod
    def _restore_sigint(old: Any) -> None:
        if old is not None:
            signal.signal(signal.SIGINT, old)


def _data_spec(data: str | None) -> str | None:
    """Paths are stored absolute (eval/generate may run elsewhere); 'ptb'/'builtin' as is."""
    if data is None or data == "builtin" or not Path(data).exists():
        return data
    return str(Path(data).resolve())


_RUN_FILES = ("last", "best", "last.old", "best.old", "log.jsonl", "metrics.json")


def _check_out_is_free(out: Path, overwrite: bool) -> None:
    """A fresh run never silently deletes a model trained earlier into the same folder."""
    found = [name for name in _RUN_FILES if (out / name).exists()]
    if found and not overwrite:
        raise FileExistsError(
            17, f"already holds a trained run ({', '.join(found)}): continue it with --resume, "
            f"train into another --out DIR, or replace it with --overwrite", str(out))


def _prepare_out(out: Path, resume: bool) -> None:
    if resume:
        return
    for name in ("last", "best", "last.old", "best.old"):
        if (out / name).exists():
            shutil.rmtree(out / name)
    for name in ("log.jsonl", "metrics.json"):
        if (out / name).exists():
            (out / name).unlink()


def train_language_model(config: TrainConfig, explicit: set[str] | None = None,
                         stream: TextIO | None = None,
                         on_step: Callable[[LMTrainer], None] | None = None) -> dict[str, Any]:
    """Train (or resume) a language model as ``config`` says; returns the metrics dict.

    Writes ``OUT/best`` (best validation model), ``OUT/last`` (resumable), ``OUT/log.jsonl``,
    ``OUT/metrics.json`` and the ``--plot`` PNG. ``explicit``: the settings the user gave (when
    resuming, changing one that shapes the run is an error). ``metrics['stopped']`` is
    'interrupted' after Ctrl-C (a checkpoint is saved; metrics.json is not written).
    """
    wall0 = time.perf_counter()
    out = Path(config.out)
    if config.device:
        backend.set_device(config.device)
    ck = None
    if config.resume:
        last = out / "last"
        if not last.exists() and not (out / "last.old").exists():
            raise FileNotFoundError(2, "nothing to resume: no checkpoint (train without "
                                    "--resume first)", str(last))
        ck = load_checkpoint(last)
        if not ck.resumable:
            raise ValueError(f"{ck.directory} has no optimizer state: it cannot be resumed")
        saved = TrainConfig.from_dict(ck.train_config)
        given = explicit if explicit is not None else set()
        for name in sorted(given - set(RESUME_MAY_CHANGE)):
            new, old = getattr(config, name), getattr(saved, name)
            if name == "data":
                new = _data_spec(new)
            if new != old:
                raise ValueError(f"--{name.replace('_', '-')} {new} differs from the run being "
                                 f"resumed ({old}); a resumed run keeps its settings (drop the "
                                 f"option, or train into another --out)")
        for name in RESUME_MAY_CHANGE:
            if name in given:
                setattr(saved, name, getattr(config, name))
        saved.resume, saved.out = True, str(out)
        cfg = saved.resolved()
    else:
        _check_out_is_free(out, config.overwrite)
        cfg = config.resolved()
        cfg.data = _data_spec(cfg.data)
    if cfg.plot:
        require_matplotlib("--plot needs")
    out.mkdir(parents=True, exist_ok=True)
    corpus = load_corpus(cfg.data, cfg.level, min_freq=cfg.min_freq, max_size=cfg.max_size,
                         vocab=ck.vocab if ck is not None else None)
    backend.seed(cfg.seed)
    model = LanguageModel(**cfg.model_kwargs(len(corpus.vocab)), seed=cfg.seed)
    optimizer = make_optimizer(cfg.optimizer, cfg.lr)
    state = None
    if ck is not None:
        model.load_params(ck.directory / "model.npz")
        optimizer.load_state_dict(ck.optimizer_state)
        xp = backend.get_xp()
        model.set_state([(None if h is None else xp.asarray(h, dtype=model.dtype),
                          None if c is None else xp.asarray(c, dtype=model.dtype))
                         for h, c in ck.rnn_state])
        set_rng_state(ck.rng_state)
        state = TrainState.from_dict(ck.trainer_state)
    else:
        _prepare_out(out, resume=False)
    trainer = LMTrainer(model, optimizer, corpus, cfg, out, state, stream, on_step)
    trainer.log.write("resume" if ck is not None else "start", step=trainer.state.step,
                      config=cfg.to_dict(), model=model.config)
    trainer.progress.message(
        f"{'resuming' if ck is not None else 'training'} {model} on {corpus.name}: "
        f"{len(corpus.train):,} train tokens, {trainer.iters:,} steps/epoch, "
        f"{trainer.total_steps:,} steps ({cfg.preset} preset, {cfg.optimizer} lr {cfg.lr:g}) "
        f"-> {out}"
    )
    stopped = trainer.fit()
    st = trainer.state
    metrics: dict[str, Any] = {
        "stopped": stopped, "steps": st.step, "epochs_completed": st.step // trainer.iters,
        "epochs": round(st.step / trainer.iters, 4), "valid_ppl": st.best_ppl,
        "test_ppl": None, "best_epoch": st.best_epoch,
        "final_valid_ppl": st.history[-1]["valid_ppl"] if st.history else None,
        "final_train_ppl": st.history[-1]["train_ppl"] if st.history else None,
        "train_tokens_per_sec": st.tokens / st.train_time if st.train_time else None,
        "train_tokens": st.tokens, "train_time_s": round(st.train_time, 2),
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
        model.load_params(out / "best" / "model.npz")  # test the model that eval/generate use
        metrics["test_ppl"] = perplexity(model, corpus.test, cfg.eval_batch, cfg.eval_bptt)
    metrics["wall_time_s"] = round(time.perf_counter() - wall0, 2)
    trainer.log.write("end", **{k: v for k, v in metrics.items() if k != "config"})
    write_json_atomic(out / "metrics.json", metrics)
    if cfg.plot:
        plot_history(st.history, cfg.plot, title=trainer.title)
    return metrics


def evaluate(path: str | os.PathLike[str], data: str | None = None, split: str = "test",
             level: str | None = None, batch_size: int | None = None,
             time_size: int | None = None) -> dict[str, Any]:
    """Perplexity of a saved model (``OUT`` or a checkpoint directory) on a split.

    ``data`` defaults to the data the model was trained on; it is encoded with the model's
    vocabulary (unseen tokens become ``<unk>``; ``unk_fraction`` says how many tokens are
    ``<unk>``). Batch and time sizes default to the run's.
    """
    ck = load_checkpoint(path)
    tc = ck.train_config
    spec = data if data is not None else tc.get("data")
    level = level or ck.vocab.level
    if split == "all" and spec is not None and Path(spec).is_file():  # a text of any length
        ids, name = ck.vocab.encode(tokenize(read_text(spec), level)), Path(spec).name
    else:
        corpus = load_corpus(spec, level, vocab=ck.vocab)
        ids, name = corpus.split(split), corpus.name
    N = batch_size or tc.get("eval_batch", 10)
    T = time_size or tc.get("eval_bptt", 35)
    ppl = perplexity(ck.model, ids, N, T)
    unk = ck.vocab.unk_id  # unseen tokens count as <unk>: many of them make ppl meaningless
    unk_fraction = float((ids == unk).mean()) if unk is not None and len(ids) else 0.0
    return {"perplexity": ppl, "split": split, "tokens": int(len(ids)),
            "unk_fraction": unk_fraction, "data": name, "checkpoint": str(ck.directory)}
