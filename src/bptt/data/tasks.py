"""Sequence tasks, generated on the spot (no download), each split into train/valid/test.

Every generator returns a :class:`Task`: arrays ``X`` of shape (N, T, D) (float64) and targets
``y`` for three splits, plus what a model and a report need (the kind of problem, the number of
classes, baseline scores). Same ``seed``, same data.

=================  ===============================================  ========================
task               input X (N, T, D)                                target y
=================  ===============================================  ========================
``noisy_sine``     last T values of sin(2 pi t / period) + noise     next value (N, 1)
``series_task``    windows of any (L, D) series (CSV, .npy)          value ``horizon`` ahead
``adding_problem`` (value in [0, 1], marker 0/1), 2 markers          sum of marked values (N, 1)
``copy_task``      S symbols, a pause, a go marker (one-hot)         the S symbols (N, T) ids,
                                                                     -1 where nothing is asked
``waveforms``      noisy ramp up/ramp down/sine/square, 1 feature    class id (N,)
=================  ===============================================  ========================

Shape letters: N sequences, T time steps, D features, L series length.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .corpus import decode_utf8

__all__ = [
    "Task", "noisy_sine", "window_series", "load_series", "series_task", "adding_problem",
    "copy_task", "waveforms", "WAVEFORM_NAMES", "make_task", "TASKS",
]

Split = tuple[float, float, float]


@dataclass
class Task:
    """A generated (or loaded) data set split three ways.

    ``kind`` is ``"regression"`` or ``"classification"``; ``n_classes`` is set for
    classification; ``many_to_many`` tells whether y has a time axis. ``info`` holds the task's
    parameters and ``baselines`` (name -> test score of a trivial predictor: MSE for
    regression, accuracy for classification). Series tasks also keep the whole (standardized)
    ``series`` (L, D) and where the test part starts, for recursive forecasting.
    """

    name: str
    kind: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_valid: np.ndarray
    y_valid: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int | None = None
    many_to_many: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    series: np.ndarray | None = None

    @property
    def train(self) -> tuple[np.ndarray, np.ndarray]:
        return self.X_train, self.y_train

    @property
    def valid(self) -> tuple[np.ndarray, np.ndarray]:
        return self.X_valid, self.y_valid

    @property
    def test(self) -> tuple[np.ndarray, np.ndarray]:
        return self.X_test, self.y_test

    @property
    def baselines(self) -> dict[str, float]:
        return self.info.get("baselines", {})

    def __repr__(self) -> str:
        shapes = ", ".join(f"{s}={getattr(self, 'X_' + s).shape}->{getattr(self, 'y_' + s).shape}"
                           for s in ("train", "valid", "test"))
        return f"Task({self.name!r}, {self.kind}, {shapes})"


# -- helpers ---------------------------------------------------------------------------------

def _check_split(split: Split) -> Split:
    if len(split) != 3 or any(f < 0 for f in split) or min(split[0], split[2]) <= 0:
        raise ValueError(f"split must be three fractions (train, valid, test) with train > 0 and "
                         f"test > 0, got {split}")
    total = float(sum(split))
    return (split[0] / total, split[1] / total, split[2] / total)


def _check_counts(**counts: int) -> None:
    for name, n in counts.items():
        if int(n) != n or n < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {n}")
    if counts.get("n_train", 1) < 1:
        raise ValueError("n_train must be at least 1")


def _split_counts(X: np.ndarray, y: np.ndarray, n_train: int, n_valid: int) -> tuple:
    a, b = n_train, n_train + n_valid
    return X[:a], y[:a], X[a:b], y[a:b], X[b:], y[b:]


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a - b) ** 2)) if a.size else float("nan")


# -- time series -----------------------------------------------------------------------------

def window_series(series: Any, window: int, horizon: int = 1,
                  target: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cut a series (L,) or (L, D) into all windows of ``window`` steps and their targets.

        X[i] = series[i : i + window]                           (window, D)
        y[i] = series[i + window + horizon - 1, target]         (len(target),)

    so N = L - window - horizon + 1 windows. ``target`` selects the predicted columns
    (default: all). Returns X (N, window, D) and y (N, n_target), float64.
    """
    s = np.asarray(series, dtype=np.float64)
    if s.ndim == 1:
        s = s[:, None]
    if s.ndim != 2:
        raise ValueError(f"series must have shape (L,) or (L, D), got {s.shape}")
    if window < 1 or horizon < 1:
        raise ValueError(f"window and horizon must be >= 1, got window={window}, "
                         f"horizon={horizon}")
    L, D = s.shape
    n = L - window - horizon + 1
    if n < 1:
        raise ValueError(f"a series of {L} steps has no window of {window} steps with a target "
                         f"{horizon} step(s) ahead; use a shorter --window or a longer series")
    cols = list(range(D)) if target is None else list(target)
    for c in cols:
        if not 0 <= c < D:
            raise ValueError(f"target column {c} is out of range: the series has {D} column(s)")
    idx = np.arange(n)[:, None] + np.arange(window)[None, :]  # (N, window)
    X = s[idx]  # (N, window, D)
    y = s[np.arange(n) + window + horizon - 1][:, cols]  # (N, n_target)
    return X, y


def _series_splits(s: np.ndarray, window: int, horizon: int, target: list[int] | None,
                   split: Split) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[int]]:
    """Split (L, D) in time order, window each part. A valid/test window may start with the last
    steps of the part before it (its inputs, never its targets), so no target is seen twice."""
    L = s.shape[0]
    ftr, fva, _ = split
    b1 = int(round(L * ftr))
    b2 = int(round(L * (ftr + fva)))
    need = window + horizon
    if b1 < need or L - b2 < horizon or (b2 > b1 and b2 - b1 < horizon):
        raise ValueError(f"series of {L} steps is too short for window={window}, "
                         f"horizon={horizon} and split {split}: each part needs at least "
                         f"{horizon} target step(s) and train {need} steps")
    parts = []
    for a, b in ((0, b1), (b1, b2), (b2, L)):
        if b <= a:
            D = s.shape[1]
            n_t = D if target is None else len(target)
            parts.append((np.zeros((0, window, D)), np.zeros((0, n_t))))
            continue
        lo = max(0, a - window - horizon + 1)  # inputs may reach back; targets stay in [a, b)
        parts.append(window_series(s[lo:b], window, horizon, target))
    return parts, [b1, b2]


def noisy_sine(n_periods: int = 10, period: int = 100, noise: float = 0.05, seq_len: int = 25,
               horizon: int = 1, split: Split = (0.7, 0.15, 0.15), seed: int = 0) -> Task:
    """The book's noisy sine wave (詳解ディープラーニング ch. 5), windowed for next-step prediction.

        f(t) = sin(2 pi t / period) + noise * u_t,   u_t ~ U(-1, 1),   t = 0 .. n_periods*period

    X (N, seq_len, 1) holds seq_len consecutive values, y (N, 1) the value ``horizon`` steps
    after the last one. The series is split in time order (train first, test last), so the test
    windows are the future. ``baselines``: ``last_value`` (predict x[T-1]) and ``mean``.
    """
    _check_counts(n_periods=n_periods, period=period)
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    t = np.arange(n_periods * period + 1)
    series = np.sin(2 * np.pi * t / period) + noise * rng.uniform(-1.0, 1.0, t.shape)
    return _series_to_task("sine", series[:, None], seq_len, horizon, None, split,
                           standardize=False,
                           info={"n_periods": n_periods, "period": period, "noise": noise})


def load_series(path: str | Path, columns: list[str | int] | str | int | None = None
                ) -> np.ndarray:
    """Read a numeric series (L, D) from a .csv/.txt, .npy or .npz file.

    CSV: a header row is detected (a first row that is not all numbers); ``columns`` picks
    columns by header name or 0-based index (default: every numeric column). ``.npy``: an array
    (L,) or (L, D). ``.npz``: the first array, or the one named by ``columns`` (a str).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "no such file or directory", str(path))
    if isinstance(columns, (str, int)):
        columns = [columns]
    suffix = path.suffix.lower()
    if not path.is_file():  # a FIFO would block the reader
        raise ValueError(f"{path} is not a regular file (a FIFO, socket, device or folder); "
                         f"give a .csv, .npy or .npz file")
    if suffix in (".npy", ".npz"):
        if suffix == ".npz" and columns and len(columns) > 1:
            raise ValueError(f"--column names one array of an .npz, got {len(columns)}: "
                             f"{', '.join(map(str, columns))}")
        try:
            if suffix == ".npz":
                with np.load(path, allow_pickle=False) as data:
                    names = list(data.files)
                    if not names:
                        raise ValueError(f"{path} holds no array")
                    key = str(columns[0]) if columns else names[0]
                    if key not in names:
                        raise ValueError(f"{path} has no array {key!r}; it holds {names}")
                    arr = np.asarray(data[key])
            else:
                arr = np.load(path, allow_pickle=False)
            arr = arr.astype(np.float64)
        except (zipfile.BadZipFile, EOFError, OSError, TypeError) as e:
            raise ValueError(f"{path} is not a readable {suffix} file of numbers "
                             f"({type(e).__name__}: {e})") from None
        except ValueError as e:
            if str(path) in str(e):
                raise
            raise ValueError(f"{path} is not a readable {suffix} file of numbers ({e})") \
                from None
        if arr.ndim == 1:
            arr = arr[:, None]
        if columns and suffix == ".npy" and arr.ndim == 2:
            picked = []
            for c in columns:
                if not (isinstance(c, int) or str(c).isdigit()) or int(c) >= arr.shape[1]:
                    raise ValueError(f"--column {c!r}: {path} has columns 0 to "
                                     f"{arr.shape[1] - 1} (an .npy has no names)")
                picked.append(int(c))
            arr = arr[:, picked]
    else:
        arr = _read_csv(path, columns)
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise ValueError(f"{path} must hold a series of shape (L, D) with L >= 2, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{path} holds missing or non-finite values; fill or drop them first")
    return arr


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _used(row: list[str]) -> int:
    """Fields of a CSV row up to its last non-empty one (a trailing separator adds none)."""
    n = len(row)
    while n and not row[n - 1].strip():
        n -= 1
    return n


def _read_csv(path: Path, columns: list[str | int] | None) -> np.ndarray:
    text = decode_utf8(path.read_bytes(), path)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t ")
    except csv.Error:
        dialect = csv.excel
    rows = [r for r in csv.reader(io.StringIO(text, newline=""), dialect)
            if r and any(c.strip() for c in r)]
    if not rows:
        raise ValueError(f"{path} is empty")
    header = None
    if not all(_is_number(c) for c in rows[0] if c.strip()):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    width = max([_used(header or [])] + [_used(r) for r in rows])
    for i, r in enumerate(rows):  # a short row would silently drop (or shift) a column
        if _used(r) < width:
            raise ValueError(f"{path}: row {i + 1 + (header is not None)} has {_used(r)} "
                             f"field(s) where {'the header' if header else 'other rows'} "
                             f"{'has' if header else 'have'} {width}; fill the missing values")
    if columns:
        idx = []
        for c in columns:
            if isinstance(c, int) or (isinstance(c, str) and c.isdigit()):
                idx.append(int(c))
            elif header is not None and c in header:
                idx.append(header.index(c))
            else:
                have = f"its columns are {header}" if header else "it has no header row"
                raise ValueError(f"{path} has no column {c!r}; {have}")
    else:  # every column whose first data row is numeric (skips dates, labels)
        idx = [j for j, v in enumerate(rows[0]) if _is_number(v)] if rows else []
        if not idx:
            raise ValueError(f"{path} has no numeric column")
    out = np.empty((len(rows), len(idx)))
    for i, r in enumerate(rows):
        for k, j in enumerate(idx):
            if j >= len(r) or not _is_number(r[j]):
                val = r[j] if j < len(r) else "<missing>"
                raise ValueError(f"{path}: row {i + 1 + (header is not None)} column {j} is "
                                 f"{val!r}, not a number")
            out[i, k] = float(r[j])
    return out


def series_task(series: Any, window: int = 25, horizon: int = 1,
                target: list[int] | None = None, split: Split = (0.7, 0.15, 0.15),
                standardize: bool = True, name: str = "series") -> Task:
    """Window any series (L,) or (L, D) into a forecasting :class:`Task` (see
    :func:`window_series`), split in time order.

    With ``standardize`` each column is shifted and scaled by the mean and std of the training
    part (``info['mean']``, ``info['std']``, to undo with ``y * std + mean``).
    """
    s = np.asarray(series, dtype=np.float64)
    if s.ndim == 1:
        s = s[:, None]
    return _series_to_task(name, s, window, horizon, target, split, standardize, info={})


def _series_to_task(name: str, s: np.ndarray, window: int, horizon: int,
                    target: list[int] | None, split: Split, standardize: bool,
                    info: dict[str, Any]) -> Task:
    split = _check_split(split)
    if s.ndim != 2:
        raise ValueError(f"series must have shape (L,) or (L, D), got {s.shape}")
    b1 = int(round(s.shape[0] * split[0]))
    mean = np.zeros(s.shape[1])
    std = np.ones(s.shape[1])
    if standardize:
        with np.errstate(over="ignore", invalid="ignore"):
            mean = s[:b1].mean(axis=0)
            std = s[:b1].std(axis=0)
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            big = float(np.abs(s[:b1]).max())
            raise ValueError(f"{name}: values up to {big:.3g} overflow the standardisation "
                             f"(mean and std in float64); rescale the series first")
        std[std == 0] = 1.0
        s = (s - mean) / std
    parts, bounds = _series_splits(s, window, horizon, target, split)
    (Xtr, ytr), (Xva, yva), (Xte, yte) = parts
    cols = list(range(s.shape[1])) if target is None else list(target)
    baselines = {
        "last_value": _mse(Xte[:, -1, cols], yte),
        "mean": _mse(np.broadcast_to(ytr.mean(axis=0), yte.shape), yte),
    }
    info = {**info, "window": window, "seq_len": window, "horizon": horizon, "target": cols,
            "split": list(split), "bounds": bounds, "mean": mean.tolist(), "std": std.tolist(),
            "baselines": baselines}
    return Task(name, "regression", Xtr, ytr, Xva, yva, Xte, yte, info=info, series=s)


# -- long-range memory ----------------------------------------------------------------------

def adding_problem(n_train: int = 10000, n_valid: int = 1000, n_test: int = 1000,
                   seq_len: int = 100, seed: int = 0) -> Task:
    """The adding problem (Hochreiter & Schmidhuber 1997): add the two marked numbers.

        X[n, t] = (v_t, m_t),  v_t ~ U(0, 1),  m_t = 1 at one step in the first half and one
                                                 in the second half, 0 elsewhere
        y[n]    = sum_t v_t m_t                                        (N, 1)

    The first marker may be up to seq_len steps before the answer is due. Predicting the mean
    (1.0) scores MSE = Var(v_a + v_b) = 2/12 ~ 0.167 (``baselines['variance']``); a model
    that remembers both numbers scores ~0.
    """
    _check_counts(n_train=n_train, n_valid=n_valid, n_test=n_test)
    if seq_len < 2:
        raise ValueError(f"the adding problem needs seq_len >= 2, got {seq_len}")
    rng = np.random.default_rng(seed)
    n = n_train + n_valid + n_test
    half = seq_len // 2
    X = np.zeros((n, seq_len, 2))
    X[:, :, 0] = rng.uniform(0.0, 1.0, (n, seq_len))
    rows = np.arange(n)
    a = rng.integers(0, half, n)
    b = rng.integers(half, seq_len, n)
    X[rows, a, 1] = 1.0
    X[rows, b, 1] = 1.0
    y = (X[rows, a, 0] + X[rows, b, 0])[:, None]  # (N, 1)
    parts = _split_counts(X, y, n_train, n_valid)
    yte = parts[5]
    info = {"seq_len": seq_len, "baselines": {
        "variance": _mse(np.ones_like(yte), yte), "theory": 1.0 / 6.0}}
    return Task("adding", "regression", *parts, info=info)


def copy_task(n_train: int = 5000, n_valid: int = 500, n_test: int = 500, length: int = 5,
              delay: int = 10, n_symbols: int = 8, seed: int = 0) -> Task:
    """Copy/memory task: read ``length`` symbols, wait ``delay`` steps, then write them back.

        T = length + delay + length;   D = n_symbols + 2 (symbols, blank, go)
        X: one-hot symbols s_1..s_S at t < S, blanks for ``delay`` steps, the last of which
           is the go marker (t = S + delay - 1), then blanks while the answer is written
        y: (N, T) ids: s_1..s_S at the last S steps, -1 (ignored) elsewhere

    A model without memory guesses: accuracy 1/n_symbols (``baselines['chance']``).
    """
    _check_counts(n_train=n_train, n_valid=n_valid, n_test=n_test)
    if length < 1 or delay < 1 or n_symbols < 2:
        raise ValueError(f"copy task needs length >= 1, delay >= 1, n_symbols >= 2; got "
                         f"length={length}, delay={delay}, n_symbols={n_symbols}")
    rng = np.random.default_rng(seed)
    n = n_train + n_valid + n_test
    T, blank, go = 2 * length + delay, n_symbols, n_symbols + 1
    sym = rng.integers(0, n_symbols, (n, length))
    ids = np.full((n, T), blank)
    ids[:, :length] = sym
    ids[:, length + delay - 1] = go
    X = np.eye(n_symbols + 2)[ids]  # (N, T, D)
    y = np.full((n, T), -1, dtype=np.int64)
    y[:, T - length:] = sym
    parts = _split_counts(X, y, n_train, n_valid)
    info = {"length": length, "delay": delay, "n_symbols": n_symbols, "seq_len": T,
            "baselines": {"chance": 1.0 / n_symbols}}
    return Task("copy", "classification", *parts, n_classes=n_symbols, many_to_many=True,
                info=info)


# -- sequence classification ----------------------------------------------------------------

WAVEFORM_NAMES = ("ramp_up", "ramp_down", "sine", "square")


def waveforms(n_train: int = 2000, n_valid: int = 500, n_test: int = 500, seq_len: int = 40,
              n_classes: int = 4, noise: float = 0.3, seed: int = 0) -> Task:
    """Which wave is it? Classify a noisy periodic signal by its shape over time.

        x_t = A * wave_k((t / P + phi) mod 1) + noise * e_t,   e_t ~ N(0, 1)
        A ~ U(0.5, 1.5),  P ~ U(8, 20) steps,  phi ~ U(0, 1),  class k in [0, n_classes)
        wave_0(u) = 2u - 1 (ramp up, then drop)    wave_1(u) = 1 - 2u (rise, then ramp down)
        wave_2(u) = sin(2 pi u)                    wave_3(u) = +1 if u < 1/2 else -1 (square)

    X (N, seq_len, 1), y (N,) class ids (the first ``n_classes`` of WAVEFORM_NAMES). The two
    ramps take the same values with the same frequencies, only in opposite time order, so no
    bag-of-values classifier separates them: ``n_classes=2`` (ramp up vs. down) is a binary
    task that needs the order. Amplitude, period and phase vary. Classes are balanced.
    """
    _check_counts(n_train=n_train, n_valid=n_valid, n_test=n_test)
    if not 2 <= n_classes <= len(WAVEFORM_NAMES):
        raise ValueError(f"n_classes must be in [2, {len(WAVEFORM_NAMES)}], got {n_classes}")
    if seq_len < 2:
        raise ValueError(f"seq_len must be >= 2, got {seq_len}")
    rng = np.random.default_rng(seed)
    n = n_train + n_valid + n_test
    y = np.arange(n) % n_classes
    rng.shuffle(y)
    amp = rng.uniform(0.5, 1.5, (n, 1))
    period = rng.uniform(8.0, 20.0, (n, 1))
    phase = rng.uniform(0.0, 1.0, (n, 1))
    u = (np.arange(seq_len)[None, :] / period + phase) % 1.0  # (N, T) position in the cycle
    waves = np.stack([
        2.0 * u - 1.0,  # ramp up, drop
        1.0 - 2.0 * u,  # rise, ramp down
        np.sin(2 * np.pi * u),
        np.where(u < 0.5, 1.0, -1.0),
    ])  # (4, N, T)
    x = amp * waves[y, np.arange(n)] + noise * rng.standard_normal((n, seq_len))
    X = x[:, :, None]
    parts = _split_counts(X, y.astype(np.int64), n_train, n_valid)
    yte = parts[5]
    majority = float(np.mean(yte == np.bincount(parts[1], minlength=n_classes).argmax()))
    info = {"seq_len": seq_len, "noise": noise, "classes": list(WAVEFORM_NAMES[:n_classes]),
            "baselines": {"majority": majority, "chance": 1.0 / n_classes}}
    return Task("waveforms", "classification", *parts, n_classes=n_classes, info=info)


TASKS = {
    "sine": noisy_sine,
    "adding": adding_problem,
    "copy": copy_task,
    "waveforms": waveforms,
}


def make_task(name: str, **kwargs: Any) -> Task:
    """A task by name: 'sine', 'adding', 'copy', 'waveforms' (keyword arguments pass through;
    ``seq_len`` is accepted by all, meaning the copy task's delay for 'copy')."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}: choose one of {', '.join(TASKS)} "
                         f"or csv:PATH")
    if name == "copy" and "seq_len" in kwargs:
        kwargs["delay"] = kwargs.pop("seq_len")
    return TASKS[name](**kwargs)
