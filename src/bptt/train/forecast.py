"""Recursive (closed-loop) forecasting with a many-to-one model, and its plot.

A model trained to predict the next step from the last T steps (``noisy_sine``,
``series_task(horizon=1)``) forecasts k steps ahead by feeding its predictions back, the
figure of 詳解ディープラーニング ch. 5:

    window_0 = series[start - T : start]                       (T, D) observed
    y_k      = model.predict(window_k)                         (D,)   step start + k
    window_{k+1} = [window_k[1:], y_k]                         (T, D) slides over predictions

Errors compound: nothing observed after ``start`` is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..figures import new_figure, save_figure

__all__ = ["forecast", "forecast_series", "one_step_predictions", "plot_forecast"]


def _as_batch(window: Any) -> tuple[np.ndarray, bool]:
    w = np.asarray(window, dtype=np.float64)
    if w.ndim == 1:
        w = w[:, None]
    if w.ndim == 2:
        return w[None], True
    if w.ndim == 3:
        return w, False
    raise ValueError(f"window must have shape (T,), (T, D) or (N, T, D), got {w.shape}")


def forecast(model: Any, window: Any, steps: int) -> np.ndarray:
    """Predict ``steps`` steps after ``window`` (T, D) or (N, T, D), feeding predictions back.

    ``model.predict`` must map (N, T, D) to the next step (N, D) (or (N,) when D = 1): a
    many-to-one regressor trained with horizon 1 on all D columns. Returns (steps, D), or
    (N, steps, D) for a batch of windows.
    """
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps}")
    buf, single = _as_batch(window)
    N, T, D = buf.shape
    out = np.empty((N, int(steps), D))
    for k in range(int(steps)):
        y = np.asarray(model.predict(buf), dtype=np.float64).reshape(N, -1)
        if y.shape[1] != D:
            raise ValueError(f"the model predicts {y.shape[1]} value(s) per step but the window "
                             f"has D={D} features; recursive forecasting feeds predictions "
                             f"back as inputs, so the model must predict every input column")
        out[:, k] = y
        buf = np.concatenate([buf[:, 1:], y[:, None]], axis=1)
    return out[0] if single else out


def forecast_series(model: Any, series: Any, start: int, steps: int, window: int) -> np.ndarray:
    """Forecast ``series`` (L,) or (L, D) from ``start`` on, seeded with the ``window`` steps
    before it: ``forecast(model, series[start - window:start], steps)`` -> (steps, D)."""
    s = np.asarray(series, dtype=np.float64)
    if not window <= start <= len(s):
        raise ValueError(f"start must lie in [window={window}, len(series)={len(s)}], "
                         f"got {start}")
    return forecast(model, s[start - window:start], steps)


def one_step_predictions(model: Any, series: Any, start: int, stop: int,
                         window: int) -> np.ndarray:
    """Open-loop (teacher-forced) predictions of steps start..stop-1, each from the observed
    ``window`` steps before it: (stop - start, K)."""
    s = np.asarray(series, dtype=np.float64)
    if s.ndim == 1:
        s = s[:, None]
    if not window <= start <= stop <= len(s):
        raise ValueError(f"need window <= start <= stop <= len(series), got window={window}, "
                         f"start={start}, stop={stop}, len={len(s)}")
    idx = np.arange(start - window, stop - window)[:, None] + np.arange(window)[None, :]
    y = np.asarray(model.predict(s[idx]), dtype=np.float64)
    return y.reshape(stop - start, -1)


def plot_forecast(truth: Any, prediction: Any, start: int, path: str | Path, *,
                  window: int | None = None, one_step: Any = None, column: int = 0,
                  context: int | None = None, title: str | None = None) -> Path:
    """Save a PNG of the true series against a forecast starting at index ``start``.

    ``truth`` (L,) or (L, D); ``prediction`` (k,) or (k, D) for steps start..start+k-1;
    ``one_step`` optionally the open-loop predictions of the same steps; ``window`` shades the
    seed window before ``start``; ``column`` picks the feature plotted; ``context`` limits the
    truth drawn before ``start`` to that many steps (default: all). matplotlib is
    imported here (``pip install matplotlib``), on the file-only Agg canvas.
    """
    def col(a: Any) -> np.ndarray:
        a = np.asarray(a, dtype=np.float64)
        return a if a.ndim == 1 else a[:, column]

    t_true, p = col(truth), col(prediction)
    steps = np.arange(start, start + len(p))
    first = 0 if context is None else max(0, start - int(context))
    fig = new_figure(9, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(np.arange(first, len(t_true)), t_true[first:], color="0.6", lw=1, ls="--",
            label="truth")
    if one_step is not None:
        ax.plot(steps, col(one_step), color="tab:orange", lw=1, label="one step ahead")
    ax.plot(steps, p, color="tab:blue", lw=1.5, label="recursive forecast")
    if window:
        ax.axvspan(start - window, start, color="tab:green", alpha=0.12, label="seed window")
    ax.axvline(start, color="0.3", lw=0.8)
    ax.set_xlabel("t")
    ax.set_title(title or f"forecast of {len(p)} steps from t = {start}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return save_figure(fig, path)
