"""Figures as PNG files through matplotlib's object API (``Figure`` + the Agg canvas).

No pyplot and no change of matplotlib's global backend, so drawing from a library call never
disturbs the caller's own figures. matplotlib is an optional extra: it is imported only when a
figure is made, and its absence is one clear error naming ``pip install 'bptt[plot]'``.
"""

from __future__ import annotations

import io
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


def _png_bytes(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def save_figure(fig: Any, path: str | os.PathLike[str] | None) -> Any:
    """Write ``fig`` as a PNG at ``path`` (its folder is made if missing) and return the path;
    with ``path=None`` return the Figure itself, which a notebook displays inline."""
    fig.tight_layout()
    if path is None:  # Jupyter shows an object's _repr_png_ (no pyplot backend needed)
        fig._repr_png_ = lambda: _png_bytes(fig)
        return fig
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(os.fspath(path))
    return path
