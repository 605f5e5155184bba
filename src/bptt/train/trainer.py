"""The one training loop: :class:`Trainer` runs any :class:`Learner` (a model on its data).

One step, the same for every model (language models, sequence estimators, MLP classifiers):

    loss, size = learner.train_step()       forward and backward on the next batch
    guard: loss NaN, infinite or past learner.loss_limit -> TrainingDiverged (one line)
    norm = clip_grads(learner.grads, clip)  global-norm clipping (if clip); guard the norm
    optimizer.update(learner.params, learner.grads)

At the end of every epoch (``learner.steps_per_epoch`` steps) the learner is evaluated; if its
``monitor`` value improved, the model is kept as the best (``OUT/best``, or in memory); if not,
the learning rate is divided by ``lr_decay`` and ``patience`` (early stopping) counts down.
With ``decay_after`` = E the learning rate is also divided after every epoch from the E-th on
(the schedule of Zaremba et al. 2014), improved or not.
``OUT/last`` holds a checkpoint to resume from bit for bit: parameters, optimizer state, the
learner's position and carried state, bptt's RNG state, the history. Ctrl-C stops after the
current step and saves; a second Ctrl-C stops at once. A stop inside an epoch (``max_steps``,
``max_minutes``, Ctrl-C) reports an evaluation but never counts it as a best: the resumed run
takes the same decisions as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TextIO

import numpy as np

from .. import backend, optim
from ..blas import share_threads
from .checkpoint import checked_rng_state, write_checkpoint
from .comm import SingleProcess
from .progress import JsonlLog, Progress, format_seconds

# exp(x) overflows a float64 for x above log(max float64) ~ 709.78: a mean cross-entropy that
# large means the model gives the right token a probability below 1e-308, i.e. it has diverged.
MAX_LOG_PERPLEXITY = math.log(np.finfo(np.float64).max)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite, or so large that its perplexity is infinite."""


def perplexity_of(mean_loss: float) -> float:
    """exp(mean cross-entropy), ``inf`` where that overflows (never an OverflowError)."""
    return math.exp(mean_loss) if mean_loss <= MAX_LOG_PERPLEXITY else math.inf


def loss_has_diverged(loss: float, limit: float = MAX_LOG_PERPLEXITY) -> bool:
    """NaN, infinite, or finite but past ``limit`` (for a cross-entropy: where its perplexity
    is infinite)."""
    return not math.isfinite(loss) or loss > limit


def get_rng_state() -> dict[str, Any] | None:
    """State of bptt's generator (dropout masks) as JSON-able data; None if not available."""
    try:
        return backend.rng().bit_generator.state
    except AttributeError:  # pragma: no cover - CuPy generators keep no such state
        return None


def set_rng_state(state: dict[str, Any] | None) -> None:
    if state is not None:
        backend.rng().bit_generator.state = checked_rng_state(state)


class Learner(Protocol):
    """What :class:`Trainer` trains. ``params``/``grads`` are read after every ``train_step``."""

    params: list[Any]
    grads: list[Any]
    steps_per_epoch: int
    monitor: str          # the key of evaluate()'s result to minimise
    monitor_label: str    # ... in words, for messages ("validation perplexity")
    loss_limit: float     # a finite loss above this has diverged (math.inf: no limit)
    unit: str             # what ``size`` counts: "tok", "seq"...

    def train_step(self) -> tuple[float, int]: ...          # (mean loss, batch size)
    def evaluate(self, train_loss: float | None) -> dict[str, Any]: ...
    def describe(self, record: dict[str, Any]) -> str: ...  # one line per evaluation
    def position(self) -> dict[str, Any]: ...               # JSON-able, to resume
    def checkpoint(self, resumable: bool) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        ...                                                 # (.npz files, .json files)
    def set_training(self, on: bool) -> None: ...


@dataclass
class TrainerSettings:
    """How long and how to train (the learner says what and on which data)."""

    epochs: int = 1
    max_steps: int | None = None
    max_minutes: float | None = None
    clip: float | None = None        # max global gradient norm; None or 0: off
    lr_decay: float = 1.0            # lr /= lr_decay when the monitor does not improve ...
    decay_after: int | None = None   # ... and after every epoch from this epoch's end on
    patience: int | None = None      # stop after this many epochs without improvement
    restore_best: bool = False       # end with the best parameters (in memory)
    log_every: int = 100
    quiet: bool = False              # no progress and no epoch lines
    epoch_lines: bool = True         # a line per evaluation (unless quiet)
    hint: str = "--"                 # prefix of option names in messages ('--' for the CLI)


@dataclass
class TrainState:
    """Where a run is; saved in every checkpoint so ``--resume`` continues exactly."""

    step: int = 0                 # optimizer updates done
    lr: float = 0.0
    best: float | None = None     # best monitored value at an epoch's end
    best_epoch: float | None = None
    waited: int = 0               # epochs since the best (early stopping)
    history: list[dict[str, Any]] = field(default_factory=list)
    train_time: float = 0.0       # seconds spent in training steps (all sessions)
    units: int = 0                # tokens (sequences, rows) trained on
    loss_sum: float = 0.0         # this epoch so far: sum of loss * size ...
    loss_count: int = 0           # ... and of size
    evaluated_step: int = -1      # step of the last evaluation
    learner: dict[str, Any] = field(default_factory=dict)  # the learner's position

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "state.json") -> TrainState:
        """A state read from a checkpoint, every field checked (a ValueError naming it)."""
        if not isinstance(d, dict):
            raise ValueError(f"{where}: field 'trainer' must be an object")
        d = _upgrade(d)
        kinds: dict[str, tuple[type, ...]] = {
            "step": (int,), "lr": (int, float), "best": (int, float, type(None)),
            "best_epoch": (int, float, type(None)), "waited": (int,), "history": (list,),
            "train_time": (int, float), "units": (int,), "loss_sum": (int, float),
            "loss_count": (int,), "evaluated_step": (int,), "learner": (dict,)}
        for name, value in d.items():
            if name not in kinds:
                continue
            if isinstance(value, bool) or not isinstance(value, kinds[name]):
                raise ValueError(f"{where}: field 'trainer.{name}' has the wrong type "
                                 f"({type(value).__name__}: {value!r})")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{where}: field 'trainer.{name}' is {value}, not a finite "
                                 f"number")
        for name in ("step", "waited", "units", "loss_count", "train_time"):
            if d.get(name, 0) < 0:
                raise ValueError(f"{where}: field 'trainer.{name}' must be >= 0, got "
                                 f"{d[name]}")
        if d.get("evaluated_step", -1) < -1 or d.get("evaluated_step", -1) > d.get("step", 0):
            raise ValueError(f"{where}: field 'trainer.evaluated_step' is out of range")
        if "lr" in d and not d["lr"] > 0:
            raise ValueError(f"{where}: field 'trainer.lr' must be positive, got {d['lr']}")
        if not all(isinstance(r, dict) for r in d.get("history", [])):
            raise ValueError(f"{where}: field 'trainer.history' must be a list of objects")
        return cls(**{k: v for k, v in d.items() if k in kinds})


def _upgrade(d: dict[str, Any]) -> dict[str, Any]:
    """The state of bptt 0.1's language-model trainer in today's names."""
    d = dict(d)
    if "best_ppl" in d:
        d.setdefault("best", d.pop("best_ppl"))
    if "tokens" in d:
        d.setdefault("units", d.pop("tokens"))
    if "loss_steps" in d:  # 0.1 summed unweighted step losses
        d.setdefault("loss_count", d.pop("loss_steps"))
    if "position" in d:
        d.setdefault("learner", {"position": d.pop("position")})
    return d


class Trainer:
    """Runs the loop of the module docstring. ``out``: where checkpoints and the JSON-lines log
    go (None: nowhere, the best model kept in memory if ``restore_best``).

    ``on_step(trainer)`` is called after every update; ``on_evaluate(trainer, record)`` after
    every evaluation; ``request_stop()`` ends the run after the current step, saving a
    checkpoint (what Ctrl-C does).
    """

    def __init__(self, learner: Learner, optimizer: Any, settings: TrainerSettings,
                 out: Path | None = None, state: TrainState | None = None,
                 stream: TextIO | None = None, title: str = "",
                 on_step: Callable[[Trainer], None] | None = None,
                 on_evaluate: Callable[[Trainer, dict[str, Any]], None] | None = None,
                 checkpoint_state: Callable[[], dict[str, Any]] | None = None,
                 comm: Any = None) -> None:
        self.comm = comm if comm is not None else SingleProcess()
        if self.comm.rank != 0:  # rank 0 alone writes checkpoints, logs and progress
            out, settings = None, replace(settings, quiet=True)
        if self.comm.size > 1:
            shard = getattr(learner, "shard", None)
            if shard is None:
                raise ValueError(f"{type(learner).__name__} cannot be trained data-parallel")
            shard(self.comm.rank, self.comm.size)
            self._check_same_parameters(learner)
        self.learner, self.optimizer, self.cfg, self.out = learner, optimizer, settings, out
        self.state = state or TrainState(lr=optimizer.lr)
        self.iters = learner.steps_per_epoch
        total = settings.epochs * self.iters
        if self.state.step > total:
            raise ValueError(f"the run has trained {self.state.step / self.iters:g} epochs "
                             f"already; --epochs {settings.epochs} asks for fewer: resume with "
                             f"more --epochs to train on (the run is kept as it is)")
        self.total_steps = min(total, settings.max_steps) if settings.max_steps else total
        self.log = JsonlLog(out / "log.jsonl" if out is not None else None)
        self.progress = Progress(self.total_steps, settings.epochs, quiet=settings.quiet,
                                 stream=stream, unit=learner.unit,
                                 show_ppl=learner.loss_limit == MAX_LOG_PERPLEXITY)
        self.title = title
        self.on_step, self.on_evaluate = on_step, on_evaluate
        self.checkpoint_state = checkpoint_state
        self.best_params: list[Any] | None = None
        self._stop: str | None = None
        self._requested: str | None = None  # a stop asked for on this rank (data-parallel)
        self._buffer: Any = None

    @property
    def epoch(self) -> float:
        return self.state.step / self.iters

    def _check_same_parameters(self, learner: Learner) -> None:
        """Every rank must start from rank 0's weights (the same seed, or the same checkpoint)."""
        digest = hashlib.sha256()
        for p in learner.params:
            digest.update(np.ascontiguousarray(backend.to_numpy(p)).tobytes())
        mine = digest.hexdigest()
        theirs = self.comm.bcast(mine, root=0)
        differs = np.array([float(mine != theirs)])
        self.comm.allreduce_(differs)
        if differs[0]:
            raise ValueError(f"{int(differs[0])} rank(s) start from other weights than rank 0 "
                             f"(a different --seed or checkpoint?); every rank must start equal")

    def request_stop(self, reason: str = "interrupted") -> None:
        """End the run after the current step (every rank at the same step)."""
        if self.comm.size == 1:
            self._stop = self._stop or reason
        else:  # shared with the other ranks at the next step's reduction
            self._requested = self._requested or reason

    def _reduce(self, loss: float, size: int) -> tuple[float, int]:
        """Sum the ranks' gradients in one in-place allreduce of a flat buffer; afterwards
        every rank holds the gradient of the mean loss over the whole (global) batch.

            g = sum_r w_r g_r / sum_r w_r      loss = sum_r w_r L_r / sum_r w_r
        with w_r the number of terms rank r's loss averaged (its tokens, sequences...). The
        buffer's last slots carry the loss, the weight, the stop requests and the batch size."""
        grads = self.learner.grads
        weight = float(getattr(self.learner, "loss_weight", size))
        if self._buffer is None:
            self._buffer = np.empty(sum(int(g.size) for g in grads) + 5,
                                    dtype=backend.to_numpy(grads[0]).dtype)
        buf, o = self._buffer, 0
        for g in grads:  # one pass each way: w_r g_r into the buffer, the mean back
            n = int(g.size)
            np.multiply(backend.to_numpy(g).ravel(), weight, out=buf[o:o + n])
            o += n
        asked = self._requested
        buf[o:] = (loss * weight, weight, asked == "max_minutes",
                   asked is not None and asked != "max_minutes", size)
        self.comm.allreduce_(buf)
        total = float(buf[o + 1])
        scale = 1.0 / total if total else 0.0
        xp, o = backend.get_xp(), 0
        for g in grads:  # the mean, written straight back (one pass)
            n = int(g.size)
            if xp is np:
                np.multiply(buf[o:o + n].reshape(g.shape), scale, out=g)
            else:  # pragma: no cover - GPU only
                g[...] = xp.asarray(buf[o:o + n].reshape(g.shape)) * scale
            o += n
        if buf[o + 3] > 0:  # some rank asked to stop: every rank stops after this step
            self._stop = self._stop or "interrupted"
        elif buf[o + 2] > 0:
            self._stop = self._stop or "max_minutes"
        return float(buf[o] / total) if total else 0.0, int(round(float(buf[o + 4])))

    # -- checkpoints ---------------------------------------------------------------------------
    def _save(self, name: str, resumable: bool) -> Path | None:
        gather = getattr(self.learner, "gather_state", None)
        if resumable and self.comm.size > 1 and gather is not None:
            gather(self.comm)  # every rank takes part; rank 0 then holds the whole state
        if self.out is None:
            return None
        arrays, documents = self.learner.checkpoint(resumable)
        st = self.state
        if resumable:
            arrays["optimizer.npz"] = {k: np.asarray(v) for k, v in
                                       self.optimizer.state_dict().items()}
            st.lr, st.learner = self.optimizer.lr, self.learner.position()
            trainer = asdict(st)
        else:
            trainer = {"step": st.step, "best": st.best, "epoch": st.best_epoch}
        extra = self.checkpoint_state() if self.checkpoint_state is not None else {}
        return write_checkpoint(self.out / name, arrays, documents,
                                {"trainer": trainer, "rng": get_rng_state(), **extra})

    def save_last(self) -> Path | None:
        return self._save("last", resumable=True)

    # -- the loop ------------------------------------------------------------------------------
    def _evaluate(self, epoch_end: bool) -> dict[str, Any]:
        """Evaluate now. At an epoch's end: keep the best model, or decay the lr / count down
        the patience. Inside an epoch (a stop): report only."""
        st, learner = self.state, self.learner
        t0 = time.perf_counter()
        train_loss = st.loss_sum / st.loss_count if st.loss_count else None
        swap = getattr(self.optimizer, "swap_average", None)  # NT-ASGD: judge the average
        swapped = swap is not None and swap(learner.params)
        try:
            return self._judge(epoch_end, train_loss, t0)
        finally:
            if swapped:
                swap(learner.params)

    def _judge(self, epoch_end: bool, train_loss: float | None, t0: float) -> dict[str, Any]:
        st, learner = self.state, self.learner
        learner.set_training(False)
        metrics = learner.evaluate(train_loss)
        learner.set_training(True)
        value = metrics[learner.monitor]
        if value is None or not math.isfinite(value):  # never save such a model as the best
            raise self._diverged(value, st.step, f"the {learner.monitor_label}")
        improved = False
        observe = getattr(self.optimizer, "observe", None)
        if epoch_end and observe is not None and observe(value):
            self.log.write("averaging", step=st.step, epoch=round(self.epoch, 4))
            self.progress.message(f"averaging the weights from step {st.step} on (NT-ASGD: "
                                  f"no better {learner.monitor_label} for "
                                  f"{int(getattr(self.optimizer, 'nonmono', 0))} epochs)")
        if epoch_end:
            improved = st.best is None or value < st.best
            scheduled = (self.cfg.decay_after is not None
                         and round(self.epoch) >= self.cfg.decay_after)
            if improved:
                st.best, st.best_epoch, st.waited = value, self.epoch, 0
                self._keep_best()
            else:
                st.waited += 1
            if self.cfg.lr_decay > 1 and (scheduled or not improved):
                self.optimizer.lr /= self.cfg.lr_decay
            st.loss_sum, st.loss_count = 0.0, 0
        elif self.out is not None and not (self.out / "best").exists():
            self._save("best", resumable=False)  # a usable model, not a best of the run
        rec = {"epoch": round(self.epoch, 4), "step": st.step, **metrics,
               "lr": self.optimizer.lr, "best": improved,
               "train_time_s": round(st.train_time, 2),
               "eval_time_s": round(time.perf_counter() - t0, 2)}
        if not epoch_end:
            rec["partial"] = True  # a stop inside an epoch: reported, never a best
        st.history.append(rec)
        st.evaluated_step = st.step
        self.log.write("epoch", **rec)
        if self.cfg.epoch_lines:
            self.progress.message(learner.describe(rec) + f" | {format_seconds(st.train_time)}")
        if self.on_evaluate is not None:
            self.on_evaluate(self, rec)
        return rec

    def _keep_best(self) -> None:
        if self.out is not None:
            self._save("best", resumable=False)
        if self.cfg.restore_best:
            kept = getattr(self.learner, "kept_params", self.learner.params)
            self.best_params = [p.copy() for p in kept]

    def _diverged(self, value: Any, step: int, what: str = "the loss") -> TrainingDiverged:
        self.progress.clear()
        h = self.cfg.hint
        last = self.out / "last" if self.out is not None else None
        where = (f"; the last good checkpoint is {last} (continue from it with {h}resume and a "
                 f"lower {h}lr)" if last is not None and last.exists()
                 else "; no checkpoint was saved yet" if last is not None else "")
        clip = self.cfg.clip
        now = f"{h}clip {clip:g}" if clip else "no clipping"
        suggest = 0.25 if not clip or clip > 0.25 else clip / 4
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        self.log.write("diverged", step=step, what=what, value=value)
        return TrainingDiverged(
            f"{what} became {shown} at step {step} (epoch {(step - 1) // self.iters + 1}): "
            f"training diverged; lower the learning rate ({h}lr, now {self.optimizer.lr:g}) "
            f"or clip the gradients (now {now}, try {h}clip {suggest:g}){where}")

    def fit(self) -> str:
        """Train until the step budget, the time limit, early stopping or a stop request;
        returns the reason ('completed', 'max_steps', 'max_minutes', 'early_stopping',
        'interrupted'). Data-parallel, a failure of one rank ends every rank (one line)
        instead of leaving the others waiting; a divergence is seen by all at the same step."""
        if self.comm.size == 1:
            return self._fit()
        try:
            return self._fit()
        except TrainingDiverged:
            raise
        except BaseException as e:
            self.comm.abort(f"bptt: rank {self.comm.rank} failed ({type(e).__name__}: {e}); "
                            f"every rank of the run stops")
            raise

    def _fit(self) -> str:
        cfg, st, learner, opt = self.cfg, self.state, self.learner, self.optimizer
        if self.comm.size > 1:  # rank 0's progress speaks for the run: say how it is split
            self.progress.message(f"data-parallel on {self.comm.size} ranks: each trains on "
                                  f"its share of every batch, gradients averaged every step")
        deadline = (time.monotonic() + 60 * cfg.max_minutes) if cfg.max_minutes else None
        share_threads()  # BLAS's threads also run the compiled loops (when Numba is there)
        old_handler = self._install_sigint()
        window_t, window_loss, window_steps = time.perf_counter(), 0.0, 0
        learner.set_training(True)
        try:
            # a diverging run overflows before its loss becomes nan; the finite checks
            # report that in one line, which NumPy's overflow warnings would only precede
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                while st.step < self.total_steps and self._stop is None:
                    t0 = time.perf_counter()
                    loss, size = learner.train_step()
                    if self.comm.size > 1:  # the whole batch's loss, size and gradient
                        loss, size = self._reduce(loss, size)
                    if loss_has_diverged(loss, learner.loss_limit):
                        raise self._diverged(loss, st.step + 1)
                    norm = optim.clip_grads(learner.grads, cfg.clip) if cfg.clip else None
                    if norm is not None and not math.isfinite(norm):
                        raise self._diverged(norm, st.step + 1, "the gradient norm")
                    base_lr = opt.lr
                    opt.lr = base_lr * getattr(learner, "lr_scale", 1.0)
                    opt.update(learner.params, learner.grads)
                    opt.lr = base_lr
                    st.step += 1
                    st.units += size
                    st.loss_sum += loss * size
                    st.loss_count += size
                    st.train_time += time.perf_counter() - t0
                    window_loss += loss
                    window_steps += 1
                    rate = st.units / st.train_time if st.train_time > 0 else 0.0
                    self.progress.update(st.step, st.step // self.iters + 1,
                                         st.loss_sum / st.loss_count, rate, opt.lr)
                    if st.step % cfg.log_every == 0:
                        now = time.perf_counter()
                        self.log.write("train", step=st.step, epoch=round(self.epoch, 4),
                                       loss=window_loss / window_steps, lr=opt.lr,
                                       grad_norm=norm, **{f"{learner.unit}_per_sec":
                                                          window_steps * size / (now - window_t)})
                        window_t, window_loss, window_steps = now, 0.0, 0
                    if st.step % self.iters == 0:
                        self._evaluate(epoch_end=True)
                        self.save_last()
                        if cfg.patience is not None and st.waited >= cfg.patience:
                            self._stop = self._stop or "early_stopping"
                    if self.on_step is not None:
                        self.on_step(self)
                    if deadline is not None and time.monotonic() >= deadline:
                        self.request_stop("max_minutes")
        finally:
            self._restore_sigint(old_handler)
            learner.set_training(False)
            self.progress.close()
        if self._stop == "interrupted":
            self.progress.clear()
            self.save_last()
            self.log.write("interrupted", step=st.step)
            return "interrupted"
        if st.evaluated_step != st.step:  # stopped inside an epoch: measure where we are
            self._evaluate(epoch_end=False)
        self.save_last()
        if self.best_params is not None:
            kept = getattr(learner, "kept_params", learner.params)
            for p, b in zip(kept, self.best_params, strict=True):
                p[...] = b
        if self._stop is not None:
            return self._stop
        return "max_steps" if st.step < cfg.epochs * self.iters else "completed"

    def _install_sigint(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum: int, frame: Any) -> None:
            if "interrupted" in (self._stop, self._requested):  # a second Ctrl-C: at once
                raise KeyboardInterrupt
            self.request_stop("interrupted")
            self.progress.message("\ninterrupt: saving a checkpoint after this step "
                                  "(Ctrl-C again to quit at once)")

        return signal.signal(signal.SIGINT, handler)

    @staticmethod
    def _restore_sigint(old: Any) -> None:
        if old is not None:
            signal.signal(signal.SIGINT, old)


class ShuffledBatches:
    """Minibatch indices over N examples: a fresh permutation each epoch from a seeded
    generator, this rank's share of each batch (data-parallel), and a position to resume from
    bit for bit (the generator's state at the epoch's start and the batch number)."""

    def __init__(self, n: int, batch_size: int, seed: int, shuffle: bool = True,
                 position: dict[str, Any] | None = None) -> None:
        self.n, self.batch_size, self.shuffle = n, batch_size, shuffle
        self.steps_per_epoch = -(-n // batch_size)
        self.rng = np.random.default_rng(seed)
        self.rank, self.ranks = 0, 1
        self.k = 0
        self.order: np.ndarray | None = None
        self._epoch_start = self.rng.bit_generator.state
        if position:
            where = "state.json: field 'trainer.learner'"
            k = position.get("k") if isinstance(position, dict) else None
            if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < self.steps_per_epoch:
                raise ValueError(f"{where}: batch number {k!r} is not in 0.."
                                 f"{self.steps_per_epoch - 1}; the checkpoint cannot be resumed")
            self.rng.bit_generator.state = checked_rng_state(position.get("rng"), where)
            self.k = k
            if self.k:
                self._new_order()

    def _new_order(self) -> None:
        self._epoch_start = self.rng.bit_generator.state
        self.order = self.rng.permutation(self.n) if self.shuffle else np.arange(self.n)

    def shard(self, rank: int, size: int) -> None:
        self.rank, self.ranks = rank, size

    def next(self) -> np.ndarray:
        """This rank's indices of the next batch (empty when a last batch has fewer examples
        than there are ranks)."""
        if self.k == 0:
            self._new_order()
        B = self.batch_size
        batch = self.order[self.k * B:(self.k + 1) * B]
        self.k = (self.k + 1) % self.steps_per_epoch
        return np.array_split(batch, self.ranks)[self.rank]

    def position(self) -> dict[str, Any]:
        return {"rng": self._epoch_start if self.k else self.rng.bit_generator.state,
                "k": self.k}
