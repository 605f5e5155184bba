"""Figures as PNG files through matplotlib's object API (``Figure`` + the Agg canvas).

No pyplot and no change of matplotlib's global backend, so drawing from a library call never
disturbs the caller's own figures. matplotlib is an optional extra: it is imported only when a
figure is made, and its absence is one clear error naming ``pip install 'bptt[plot]'``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def require_matplotlib(what: str = "plots need") -> None:
    """Raise a clear error if matplotlib is missing: ``f"{what} matplotlib, ..."``."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise RuntimeError(f"{what} matplotlib, which is not installed: "
                           "pip install 'bptt[plot]' (or pip install matplotlib)") from None


def new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure on the file-only Agg canvas (no pyplot, no global backend change)."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` as a PNG at ``path`` (its folder is made if missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(os.fspath(path))
    return path
