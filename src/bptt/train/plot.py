"""``--plot``: train and valid perplexity per epoch as a PNG (matplotlib, imported lazily)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any


def require_matplotlib() -> None:
    """Raise a clear error now (not after hours of training) if matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise RuntimeError("--plot needs matplotlib, which is not installed: "
                           "pip install 'bptt[plot]' (or pip install matplotlib)") from None


def plot_history(history: Sequence[dict[str, Any]], path: str | os.PathLike[str],
                 title: str | None = None) -> None:
    """Write a PNG of ``train_ppl`` and ``valid_ppl`` against ``epoch`` (log scale).

    Uses matplotlib's object API (Figure + Agg canvas): no pyplot, no global backend change.
    """
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
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
        ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(os.fspath(path))
