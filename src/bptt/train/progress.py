"""Progress while training (a ``tqdm.auto`` bar) and the JSON-lines log of a run."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any, TextIO

from tqdm.auto import tqdm

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


def work_bar(total: int, what: str, unit: str = "it", stream: TextIO | None = None) -> Any:
    """A bar for a command that works for a while outside training (``seq2seq eval``,
    ``eval``, ``bench``): drawn on a terminal (stderr) or in a notebook, nothing in a pipe or a
    log; use as a context manager, ``bar.update(n)`` as the work goes."""
    return tqdm(total=total, desc=what, unit=unit, file=stream if stream is not None
                else sys.stderr, disable=None, leave=False, dynamic_ncols=True,
                mininterval=0.5)


class Progress:
    """A ``tqdm.auto`` bar: ``epoch 2/4:  28%|###   | 1500/5308 [02:31<06:12, loss 4.91 ppl 135.6,
    9,870 tok/s, lr 20]``.

    tqdm draws it as a widget in a notebook and as a line in a terminal, and nothing when
    ``stream`` is not a terminal (a log file, a pipe: the JSON-lines log and the epoch lines
    are the record there) or when ``quiet``. ``message()`` prints a whole line (epoch
    summaries) above the bar unless quiet. ``unit``: what the rate counts (tok, seq);
    ``show_ppl``: the loss is a cross-entropy, show its perplexity too.
    """

    def __init__(self, total_steps: int, epochs: int, quiet: bool = False,
                 stream: TextIO | None = None, interval: float = 0.2, unit: str = "tok",
                 show_ppl: bool = True) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.total, self.epochs = total_steps, epochs
        self.unit, self.show_ppl = unit, show_ppl
        self.bar: Any = None
        if not quiet:  # disable=None: off unless a terminal (a notebook always shows)
            self.bar = tqdm(total=total_steps, file=self.stream, disable=None, leave=False,
                            mininterval=interval, unit="step", dynamic_ncols=True)

    @property
    def live(self) -> bool:
        """Whether a bar is drawn."""
        return self.bar is not None and not self.bar.disable

    def update(self, step: int, epoch: int, loss: float, rate: float, lr: float,
               force: bool = False) -> None:
        """``rate``: units per second of training; ``step``: updates done so far."""
        if not self.live:
            return
        ppl = f" ppl {math.exp(min(loss, 50.0)):.1f}" if self.show_ppl else ""
        self.bar.set_description_str(f"epoch {epoch}/{self.epochs}", refresh=False)
        self.bar.set_postfix_str(f"loss {loss:.4g}{ppl}, {rate:,.0f} {self.unit}/s, lr {lr:g}",
                                 refresh=False)
        self.bar.update(step - self.bar.n)
        if force:
            self.bar.refresh()

    def clear(self) -> None:
        if self.live:
            self.bar.clear()

    def message(self, text: str) -> None:
        if self.quiet:
            return
        if self.live:
            self.bar.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


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
