"""``bptt fit`` as a library call: a sequence task, a model for it, training, the report.

    cfg = FitConfig("adding", cell="gru", seq_len=100, epochs=8)
    metrics = fit_task(cfg)          # writes OUT/model, OUT/last, OUT/metrics.json ...

Training runs in the one training loop: progress inside every epoch, Ctrl-C saves, ``--resume``
continues bit for bit, ``--overwrite`` keeps the earlier run until the new one has a checkpoint.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from ..atomic import write_json_atomic
from ..data.tasks import TASKS, Task, load_series, make_task, series_task
from ..figures import new_figure, save_figure
from ..validate import check_sizes
from .checkpoint import CheckpointError, read_checkpoint
from .comm import world
from .estimators import SequenceClassifier, SequenceRegressor
from .forecast import forecast_series, one_step_predictions, plot_forecast
from .memory import check_fits, stack_params, step_activations, training_bytes
from .progress import silent
from .run import Run, fingerprint
from .trainer import Trainer

TASK_HELP = ("sine (noisy sine, next value), adding (adding problem), copy (copy/memory task), "
             "waveforms (classify ramp up/down, sine, square), or csv:PATH (.csv/.npy series)")


@dataclass
class FitConfig:
    task: str
    cell: str = "lstm"
    hidden: int = 32
    layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    seq_len: int | None = None
    epochs: int = 10
    batch: int = 32
    lr: float = 0.01
    optimizer: str = "adam"
    clip: float | None = 5.0
    patience: int | None = None
    seed: int = 0
    n_train: int | None = None
    classes: int | None = None
    column: str | None = None
    window: int | None = None
    horizon: int = 1
    plot: str | None = None
    out: str | None = None
    resume: bool = False
    overwrite: bool = False
    force: bool = False  # resume even though the training data changed
    max_steps: int | None = None
    quiet: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FitConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def out_dir(self) -> Path:
        """``--out``, or runs/fit-TASK-CELL."""
        if self.out:
            return Path(self.out)
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in self.task)
        return Path("runs") / f"fit-{safe}-{self.cell}"

    def check(self) -> None:
        """Raise ValueError naming the first option out of range (before any work is done)."""
        check_sizes(hidden_size=self.hidden, num_layers=self.layers)
        for name in ("seq_len", "epochs", "batch", "patience", "n_train", "window", "horizon",
                     "max_steps"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, "
                                 f"got {v}")
        if self.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {self.seed}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"--dropout must be in [0, 1), got {self.dropout}")
        if not 0 < self.lr < float("inf"):
            raise ValueError(f"--lr must be a positive number, got {self.lr}")
        if self.clip is not None and not self.clip >= 0:
            raise ValueError(f"--clip must be >= 0 (0 turns clipping off), got {self.clip}")


def build_task(cfg: FitConfig) -> Task:
    """The task named by ``cfg.task`` with the sizes the options give."""
    if cfg.task.startswith("csv:"):
        path = cfg.task[4:]
        cols = [c.strip() for c in cfg.column.split(",")] if cfg.column else None
        series = load_series(path, cols)
        window = cfg.window or cfg.seq_len or 25
        return series_task(series, window=window, horizon=cfg.horizon, name=cfg.task)
    kw: dict[str, Any] = {"seed": cfg.seed}
    if cfg.task not in TASKS:
        raise ValueError(f"unknown task {cfg.task!r}: choose {TASK_HELP}")
    if cfg.task == "sine":
        kw["horizon"] = cfg.horizon
        if cfg.seq_len or cfg.window:
            kw["seq_len"] = cfg.window or cfg.seq_len
    elif cfg.seq_len is not None:
        kw["seq_len"] = cfg.seq_len
    if cfg.n_train is not None and cfg.task != "sine":
        kw["n_train"] = cfg.n_train
    if cfg.classes is not None:
        if cfg.task != "waveforms":
            raise ValueError("--classes is for the waveforms task")
        kw["n_classes"] = cfg.classes
    return make_task(cfg.task, **kw)


def build_model(cfg: FitConfig, task: Task) -> SequenceRegressor | SequenceClassifier:
    cls = SequenceClassifier if task.kind == "classification" else SequenceRegressor
    kw: dict[str, Any] = {"n_classes": task.n_classes} if task.kind == "classification" else {}
    return cls(cfg.cell, hidden_size=cfg.hidden, num_layers=cfg.layers,
               bidirectional=cfg.bidirectional, dropout=cfg.dropout,
               many_to_many=task.many_to_many, optimizer=cfg.optimizer, lr=cfg.lr,
               clip=cfg.clip, seed=cfg.seed, **kw)


def _fmt(row: dict[str, float], epochs: int) -> str:
    parts = [f"epoch {row['epoch']:>3}/{epochs}", f"loss {row['loss']:.5f}"]
    for k in ("val_mse", "val_r2", "val_accuracy"):
        if k in row:
            parts.append(f"{k} {row[k]:.5f}")
    parts.append(f"({row['time']:.2f} s)")
    return "  ".join(parts)


RESUME_MAY_CHANGE = ("epochs", "max_steps", "quiet", "plot", "resume", "out", "task", "force")


def fit_task(cfg: FitConfig, log: Callable[[str], Any] = print,
             stream: TextIO | None = None,
             on_step: Callable[[Trainer], None] | None = None,
             explicit: set[str] | None = None, comm: Any = None) -> dict[str, Any]:
    """Train (or resume) a sequence model on its task, evaluate it, write the outputs.

    ``OUT/model`` (the final model, :meth:`SequenceRegressor.load` reads it), ``OUT/last``
    (resumable: ``resume=True``), ``OUT/best``, ``OUT/log.jsonl``, ``OUT/metrics.json``;
    returns the metrics (``metrics['stopped']`` says why training ended). ``log`` gets the
    report lines, ``stream`` the progress inside an epoch. Resuming, the saved settings hold;
    ``explicit`` names the ones the user gave (default: those that differ from FitConfig's
    defaults): epochs, max_steps, quiet and plot may change, others must match.
    Data-parallel under ``mpiexec`` (or ``comm``): rank 0 alone writes and reports.
    """
    comm = comm if comm is not None else world()
    if comm.rank != 0:
        log = silent
    cfg.check()
    out = cfg.out_dir()
    with Run(out, "fit", resume=cfg.resume, overwrite=cfg.overwrite, force=cfg.force,
             comm=comm, command="bptt fit") as run:
        if cfg.resume:
            cfg = _resumed(cfg, _saved_config(out), explicit)
        if cfg.clip is not None and cfg.clip <= 0:
            cfg.clip = None
        task = build_task(cfg)
        run.check_data(task_fingerprint(task))
        check_fits(estimate_memory(cfg, task),
                   f"parameters, gradients, optimizer state, activations of a batch of "
                   f"{cfg.batch} and of the evaluation", "--hidden, --layers or --batch")
        model = build_model(cfg, task)
        log(f"{task!r}")
        log(f"model: {model!r}")
        fit_kw = dict(epochs=cfg.epochs, batch_size=cfg.batch,
                      validation_data=task.valid if len(task.y_valid) else None,
                      early_stopping=cfg.patience, out=out, resume=cfg.resume,
                      max_steps=cfg.max_steps, on_step=run.on_step(on_step),
                      run_config=asdict(cfg), comm=comm)
        with run.training():
            if comm.rank != 0:
                model.fit(*task.train, **fit_kw)
                return {"rank": comm.rank, "stopped": model.stopped_, "steps": model.steps_}
            hist = model.fit(*task.train, **fit_kw,
                             callback=lambda e, row: log(_fmt(row, cfg.epochs)),
                             progress=not cfg.quiet, stream=stream or sys.stderr)
        metrics: dict[str, Any] = {"stopped": model.stopped_}
        if model.stopped_ == "interrupted":
            log(f"interrupted: continue with bptt fit {cfg.task} --out {out} --resume")
            return metrics
        train_time = float(sum(hist["time"]))
        test = model.evaluate(*task.test)
        metric = "accuracy" if task.kind == "classification" else "mse"
        log(f"test {metric} {test[metric]:.5f}  " + "  ".join(
            f"{name} baseline {v:.5f}" for name, v in task.baselines.items())
            + f"  ({train_time:.1f} s training)")
        metrics.update({
            "task": task.name, "kind": task.kind, "config": asdict(cfg),
            "model": model.get_config(), "task_info": {k: v for k, v in task.info.items()
                                                       if k not in ("mean", "std")},
            "history": hist, "test": test, "baselines": task.baselines,
            "train_time_s": train_time, "steps": model.steps_,
        })
        if cfg.plot:
            metrics["plot"] = str(_plot(cfg, task, model, hist, metrics))
            if "forecast" in metrics:
                f = metrics["forecast"]
                log(f"forecast of the test part ({f['steps']} steps): recursive mse "
                    f"{f['mse_recursive']:.5f}, one-step mse {f['mse_one_step']:.5f}")
            log(f"plot written to {metrics['plot']}")
        model.save(out / "model")
        write_json_atomic(out / "metrics.json", metrics, indent=2)
        log(f"model written to {out / 'model'}, metrics to {out / 'metrics.json'}")
        return metrics


def estimate_memory(cfg: FitConfig, task: Task) -> int:
    """Bytes to fit the model ``cfg`` describes on ``task`` (see :mod:`bptt.train.memory`):
    training batches, and evaluation in chunks of up to 1024 sequences."""
    N, T, D = task.X_train.shape
    ways = 2 if cfg.bidirectional else 1
    outputs = task.n_classes or (task.y_train.shape[-1] if task.y_train.ndim > 1 else 1)
    params = stack_params(cfg.cell, D, cfg.hidden, cfg.layers, ways)
    params += (ways * cfg.hidden + 1) * outputs
    train = step_activations(cfg.cell, cfg.batch, T, cfg.hidden, cfg.layers, ways)
    rows = min(1024, max(len(task.X_valid), len(task.X_test)))  # forward only: no gradients
    evaluation = step_activations(cfg.cell, rows, T, cfg.hidden, cfg.layers, ways) // 2
    return training_bytes(params, max(train, evaluation), "float32")


def task_fingerprint(task: Task) -> dict[str, Any]:
    """What identifies a run's training data: the task's name, size and the SHA-256 of its
    training arrays."""
    arrays = [np.ascontiguousarray(a) for a in task.train]
    return fingerprint(task.name, "sequences", len(arrays[0]),
                       [f"{a.dtype.str}{a.shape}".encode() + a.tobytes() for a in arrays])


def _resumed(cfg: FitConfig, saved: dict[str, Any], explicit: set[str] | None) -> FitConfig:
    defaults = FitConfig(cfg.task)
    given = explicit if explicit is not None else {
        k for k in asdict(cfg) if getattr(cfg, k) != getattr(defaults, k)}
    values = {**saved, "resume": True, "out": cfg.out, "max_steps": None}  # a stop is per session
    for name in sorted(given & set(asdict(cfg))):
        new = getattr(cfg, name)
        if name in RESUME_MAY_CHANGE:
            values[name] = new
        elif new != saved.get(name):
            raise ValueError(f"--{name.replace('_', '-')} {new} differs from the run being "
                             f"resumed ({saved.get(name)}); a resumed run keeps its settings "
                             f"(drop the option, or fit into another --out)")
    moved = cfg.task.startswith("csv:") and str(saved.get("task")).startswith("csv:")
    if cfg.task != saved.get("task") and not moved:  # a moved series: its content is checked
        raise ValueError(f"the run in {cfg.out_dir()} was fit on {saved.get('task')!r}, not "
                         f"{cfg.task!r}")
    task = str(values.get("task"))
    if task.startswith("csv:") and not Path(task[4:]).exists():
        raise FileNotFoundError(2, "the run's series is no longer there: give its new place as "
                                "csv:PATH (its content is checked)", task[4:])
    return FitConfig.from_dict(values)


def _saved_config(out: Path) -> dict[str, Any]:
    """The settings of the run saved in ``OUT/last`` (to resume it)."""
    try:
        stored = read_checkpoint(out / "last", required=("model.npz", "optimizer.npz"))
    except FileNotFoundError:
        raise FileNotFoundError(2, "nothing to resume: no checkpoint (fit without --resume "
                                "first)", str(out / "last")) from None
    saved = stored.config.get("train")
    if not isinstance(saved, dict) or "task" not in saved:
        raise CheckpointError(f"{stored.directory / 'config.json'} holds no bptt fit settings; "
                              f"it was not written by bptt fit")
    return saved


def _plot(cfg: FitConfig, task: Task, model: Any, hist: dict[str, list[float]],
          metrics: dict[str, Any]) -> Path:
    """The forecast plot (adds metrics['forecast']) or, for other tasks, the loss curves."""
    can_forecast = (task.series is not None and task.info.get("horizon") == 1
                    and len(task.info["target"]) == task.series.shape[1])
    if can_forecast:
        window = task.info["window"]
        start = task.info["bounds"][1]  # the test part: never seen in training
        steps = len(task.series) - start
        pred = forecast_series(model, task.series, start, steps, window)
        one = one_step_predictions(model, task.series, start, len(task.series), window)
        truth = task.series[start:]
        metrics["forecast"] = {"start": start, "steps": steps,
                               "mse_recursive": float(((pred - truth) ** 2).mean()),
                               "mse_one_step": float(((one - truth) ** 2).mean())}
        return plot_forecast(task.series, pred, start, cfg.plot, window=window, one_step=one,
                             context=max(3 * window, steps // 2),
                             title=f"{task.name}: {cfg.cell}, recursive forecast of the test "
                                   f"part ({steps} steps)")
    return _plot_history(hist, cfg.plot, f"{task.name}: {cfg.cell}")


def _plot_history(hist: dict[str, list[float]], path: str, title: str) -> Path:
    fig = new_figure(6, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(hist["epoch"], hist["loss"], label="training loss")
    if "val_loss" in hist:
        ax.plot(hist["epoch"], hist["val_loss"], label="validation loss")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (log scale)")
    ax.set_title(title)
    ax.legend()
    return save_figure(fig, path)
