"""``bptt fit TASK``: train a sequence model on a built-in task or a CSV series and report.

    bptt fit sine --cell lstm --epochs 20 --plot sine.png
    bptt fit adding --seq-len 100 --cell gru --epochs 8
    bptt fit waveforms --cell lstm
    bptt fit csv:data.csv --column temp --window 30 --horizon 1 --plot forecast.png

Prints the training loss and the validation metric after every epoch, then the test metrics
next to the task's trivial baselines, and writes ``metrics.json`` (configuration, history,
test metrics, baselines) and ``model.npz`` under ``--out``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..atomic import write_json_atomic
from ..data.tasks import TASKS, Task, load_series, make_task, series_task
from ..figures import new_figure, save_figure
from ..nn.registry import cell_names
from ..train.estimators import OPTIMIZERS, SequenceClassifier, SequenceRegressor
from ..train.forecast import forecast_series, one_step_predictions, plot_forecast

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

    @classmethod
    def from_args(cls, a: argparse.Namespace) -> FitConfig:
        return cls(**{k: getattr(a, k) for k in cls.__dataclass_fields__})

    def check(self) -> None:
        """Raise ValueError naming the first option out of range (before any work is done)."""
        for name in ("hidden", "layers", "seq_len", "epochs", "batch", "patience", "n_train",
                     "window", "horizon"):
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


def fit_task(cfg: FitConfig, log: Any = print) -> dict[str, Any]:
    """Train, evaluate and write the outputs; returns the metrics dictionary."""
    task = build_task(cfg)
    model = build_model(cfg, task)
    log(f"{task!r}")
    log(f"model: {model!r}")
    t0 = time.perf_counter()
    hist = model.fit(*task.train, epochs=cfg.epochs, batch_size=cfg.batch,
                     validation_data=task.valid if len(task.y_valid) else None,
                     early_stopping=cfg.patience,
                     callback=lambda e, row: log(_fmt(row, cfg.epochs)))
    train_time = time.perf_counter() - t0
    test = model.evaluate(*task.test)
    metric = "accuracy" if task.kind == "classification" else "mse"
    log(f"test {metric} {test[metric]:.5f}  " + "  ".join(
        f"{name} baseline {v:.5f}" for name, v in task.baselines.items())
        + f"  ({train_time:.1f} s training)")
    metrics: dict[str, Any] = {
        "task": task.name, "kind": task.kind, "config": asdict(cfg),
        "model": model.get_config(), "task_info": {k: v for k, v in task.info.items()
                                                   if k not in ("mean", "std")},
        "history": hist, "test": test, "baselines": task.baselines,
        "train_time_s": train_time,
        "steps": len(hist["epoch"]) * -(-len(task.y_train) // cfg.batch),  # ceil per epoch
    }
    if cfg.plot:
        metrics["plot"] = str(_plot(cfg, task, model, hist, metrics))
        if "forecast" in metrics:
            f = metrics["forecast"]
            log(f"forecast of the test part ({f['steps']} steps): recursive mse "
                f"{f['mse_recursive']:.5f}, one-step mse {f['mse_one_step']:.5f}")
        log(f"plot written to {metrics['plot']}")
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in task.name)
    out = Path(cfg.out) if cfg.out else Path("runs") / f"fit-{safe}-{cfg.cell}"
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.npz")
    write_json_atomic(out / "metrics.json", metrics, indent=2)
    log(f"metrics written to {out / 'metrics.json'}")
    return metrics


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
    ax.set_title(title)
    ax.legend()
    return save_figure(fig, path)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit", help="train a sequence model on a task or a CSV series",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", help=TASK_HELP)
    p.add_argument("--cell", choices=cell_names(), default="lstm",
                   help="recurrent cell: a built-in or a registered one")
    p.add_argument("--hidden", type=int, default=32, help="hidden size H (default 32)")
    p.add_argument("--layers", type=int, default=1, help="stacked recurrent layers")
    p.add_argument("--bidirectional", action="store_true")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout between layers")
    p.add_argument("--seq-len", type=int, default=None,
                   help="sequence length T (sine: window; copy: the pause between input and "
                        "answer)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=32, help="batch size")
    p.add_argument("--lr", type=float, default=0.01, help="learning rate (default 0.01)")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam")
    p.add_argument("--clip", type=float, default=5.0, help="gradient-norm clipping (0: off)")
    p.add_argument("--patience", type=int, default=None,
                   help="early stopping after N epochs without a better validation loss")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-train", type=int, default=None, help="training sequences (generated "
                                                             "tasks)")
    p.add_argument("--classes", type=int, default=None, help="waveforms: 2-4 classes")
    p.add_argument("--column", default=None,
                   help="csv: column name(s) or 0-based index(es), comma-separated")
    p.add_argument("--window", type=int, default=None, help="csv/sine: input window (T)")
    p.add_argument("--horizon", type=int, default=1, help="csv/sine: steps ahead to predict")
    p.add_argument("--plot", default=None, metavar="PATH",
                   help="PNG: the recursive forecast (sine, csv) or the loss curves")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="where metrics.json and model.npz go (default runs/fit-TASK-CELL)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    cfg = FitConfig.from_args(args)
    cfg.check()
    if cfg.clip is not None and cfg.clip <= 0:
        cfg.clip = None
    fit_task(cfg)
    return 0
