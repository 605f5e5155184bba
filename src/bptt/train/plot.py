"""``--plot``: train and valid perplexity per epoch as a PNG (matplotlib, imported lazily)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from ..figures import new_figure, require_matplotlib, save_figure

__all__ = ["plot_history", "require_matplotlib"]  # the trainer checks early, not after hours


def plot_history(history: Sequence[dict[str, Any]], path: str | os.PathLike[str] | None = None,
                 title: str | None = None) -> Any:
    """Write a PNG of ``train_ppl`` and ``valid_ppl`` against ``epoch`` (log scale) and return
    its path; with no ``path``, return the Figure (shown inline in a notebook).

    Uses matplotlib's object API (Figure + Agg canvas): no pyplot, no global backend change.
    """
    fig = new_figure(6, 4)
    from matplotlib.ticker import FuncFormatter

    ax = fig.add_subplot(1, 1, 1)
    epochs = [h["epoch"] for h in history]
    for key, label, style in (("train_ppl", "train", "o-"), ("valid_ppl", "valid", "s-")):
        ys = [h.get(key) for h in history]
        pts = [(e, y) for e, y in zip(epochs, ys, strict=True) if y is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("perplexity")
    if history:
        ax.set_yscale("log")  # plain numbers on the axis: 100, 200, 500, not 10^2
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(_minor_label))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def _minor_label(y: float, _: Any) -> str:
    """Label the 2, 3 and 5 of each decade on a log axis, nothing else."""
    if y <= 0:
        return ""
    mantissa = round(y / 10 ** math.floor(math.log10(y)), 6)
    return f"{y:g}" if mantissa in (2, 3, 5) else ""
