"""A one-line progress bar on stderr (tqdm-style, no dependency) and a JSON-lines log."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any, TextIO

from ..atomic import json_text


def silent(text: str) -> None:
    """A report function that reports nothing (the ranks other than 0 of a parallel run)."""


def format_seconds(s: float) -> str:
    """3:05 or 1:02:03."""
    if not math.isfinite(s) or s < 0:
        return "?"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class Progress:
    """``epoch 2/4 | step 1500/5308 | loss 4.91 ppl 135.6 | 9,870 tok/s | lr 20 | ETA 6:12``.

    Drawn in place (carriage return) at most every ``interval`` seconds, only when ``stream`` is
    a terminal and not ``quiet``; elsewhere (a log file, a pipe) one plain line every
    ``every`` seconds, so a long epoch never stays silent. ``message()`` prints a whole line
    (epoch summaries) unless quiet. ``unit``: what the rate counts (tok, seq); ``show_ppl``:
    the loss is a cross-entropy, show its perplexity too.
    """

    def __init__(self, total_steps: int, epochs: int, quiet: bool = False,
                 stream: TextIO | None = None, interval: float = 0.2, unit: str = "tok",
                 show_ppl: bool = True, every: float = 30.0) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.live = not quiet and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.total, self.epochs = total_steps, epochs
        self.interval = interval if self.live else every
        self.unit, self.show_ppl = unit, show_ppl
        self._last = time.monotonic() if not self.live else 0.0
        self._width = 0
        self._start: tuple[float, int] | None = None  # (time, step) of the first update

    def update(self, step: int, epoch: int, loss: float, rate: float, lr: float,
               force: bool = False) -> None:
        """``rate``: units per second of training."""
        if self.quiet:
            return
        now = time.monotonic()
        if self._start is None:
            self._start = (now, step)
        if not force and now - self._last < self.interval:
            return
        self._last = now
        t0, s0 = self._start
        per_step = (now - t0) / (step - s0) if step > s0 else float("inf")
        eta = (self.total - step) * per_step
        ppl = f" ppl {math.exp(min(loss, 50.0)):.1f}" if self.show_ppl else ""
        line = (f"epoch {epoch}/{self.epochs} | step {step}/{self.total} | loss {loss:.4g}"
                f"{ppl} | {rate:,.0f} {self.unit}/s | lr {lr:g} | ETA {format_seconds(eta)}")
        if self.live:
            self._draw(line)
        else:
            self.stream.write(line + "\n")
            self.stream.flush()

    def _draw(self, line: str) -> None:
        pad = max(0, self._width - len(line))
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()
        self._width = len(line)

    def clear(self) -> None:
        if self.live and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0

    def message(self, text: str) -> None:
        if self.quiet:
            return
        self.clear()
        self.stream.write(text + "\n")
        self.stream.flush()


class JsonlLog:
    """Append one JSON object per line to ``path`` (flushed each time; None: no log)."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = path

    def write(self, event: str, **fields: Any) -> None:
        if self.path is None:
            return
        rec = {"event": event, "time": round(time.time(), 3), **fields}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json_text(rec, indent=None) + "\n")  # NaN as "nan": still JSON


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a JSON-lines log."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
