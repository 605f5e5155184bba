"""Forward and backward equations of a layer, read from its docstring.

The docstring is the one source of a layer's equations: ``bptt explain`` and the docs print
what this module parses, so what they show cannot drift from what the class documents. The
layout the parser understands is the one of ``STYLE.md``::

    class RNN:
        \"\"\"One step of a vanilla RNN.            <- summary

            a      = x @ Wx + h_prev @ Wh + b        <- forward block (indented)
            h_next = tanh(a)
        backward, with dh_next = dL/dh_next:          <- backward header (optional note)
            da = dh_next * (1 - h_next**2)            <- backward block (indented)

        Params: Wx (D, H), Wh (H, H), b (H,)          <- end of the equations
        \"\"\"

and the compact one of the feed-forward layers, with labels inside the indented block::

        forward:  out = x @ W + b
        backward: dx = dout @ W.T
                  dW = x.T @ dout

Rules: the forward equations are the first indented block after the summary (and a ``where ...``
line right after it); the backward equations are the indented block after a ``backward...:``
header, or the lines labelled ``backward:``. Prose paragraphs between blocks are skipped.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any

# "forward:", "forward (train):" before equations on the same line
_INLINE = re.compile(r"^(forward|backward)(\s*\([^)]*\))?\s*:\s?", re.IGNORECASE)
# "backward, t = T-1..0, with dh = ...:" (a header line), or "forward, t = 0..T-1:  a_t = ..."
_HEADER_LINE = re.compile(r"^(forward|backward)\b(.*):\s*$", re.IGNORECASE)
_LABEL = re.compile(r"^(forward|backward)\b([^:]{0,100}):\s?", re.IGNORECASE)


def _label(stripped: str) -> re.Match | None:
    return _INLINE.match(stripped) or _HEADER_LINE.match(stripped) or _LABEL.match(stripped)
_HEADER = re.compile(r"^backward\b(.*?):?\s*$", re.IGNORECASE)


@dataclass
class Equations:
    """The equations of one layer class, as written in its docstring."""

    layer: str  # class name, e.g. "RNN"
    qualname: str  # module path, e.g. "bptt.nn.cells.RNN"
    summary: str  # first line of the docstring
    forward: list[str] = field(default_factory=list)
    backward: list[str] = field(default_factory=list)
    forward_note: str = ""  # e.g. "t = 0..T-1"
    backward_note: str = ""  # e.g. "with dh_next = dL/dh_next"
    file: str = ""  # source file of the class
    line: int = 0  # line of the class statement (1-based), 0 if unknown

    @property
    def complete(self) -> bool:
        """True when both a forward and a backward block were found."""
        return bool(self.forward) and bool(self.backward)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _dedent(lines: list[str]) -> list[str]:
    text = textwrap.dedent("\n".join(lines))
    return [ln.rstrip() for ln in text.splitlines() if ln.strip()]


def _relative_lines(doc: str) -> list[str]:
    """Docstring lines with the class body's indentation removed (not the common indentation:
    a docstring made only of equations keeps them indented). The body's indentation is the
    one of the closing quotes' line, else the smallest one."""
    lines = doc.expandtabs().splitlines()
    if not lines:
        return []
    rest = lines[1:]
    if rest and not rest[-1].strip():
        base = len(rest[-1])
    else:
        base = min((_indent(ln) for ln in rest if ln.strip()), default=0)
    body = [ln[min(base, _indent(ln)):].rstrip() for ln in rest]
    while body and not body[-1]:
        body.pop()
    return [lines[0].strip(), *body]


def _join_headers(lines: list[str]) -> list[str]:
    """Join a ``forward ...``/``backward ...`` header written over several lines (up to the
    line ending with ':') into one line."""
    out: list[str] = []
    k = 0
    while k < len(lines):
        line = lines[k]
        stripped = line.strip()
        if (k > 0 and re.match(r"^(forward|backward)\b", stripped, re.IGNORECASE)
                and not _INLINE.match(stripped) and not stripped.endswith(":")):
            j = k + 1
            parts = [stripped]
            while j < len(lines) and j <= k + 3 and lines[j].strip() and \
                    _indent(lines[j]) == _indent(line) and \
                    not re.match(r"^(forward|backward)\b", lines[j].strip(), re.IGNORECASE):
                parts.append(lines[j].strip())
                if lines[j].rstrip().endswith(":"):
                    out.append(" " * _indent(line) + " ".join(parts))
                    k = j + 1
                    break
                j += 1
            else:
                out.append(line)
                k += 1
            continue
        out.append(line)
        k += 1
    return out


def parse_docstring(doc: str) -> tuple[str, list[str], list[str], dict[str, str]]:
    """Split a docstring into (summary, forward lines, backward lines, notes).

    ``notes`` maps "forward"/"backward" to the qualifier of their label or header, e.g.
    ``backward, with dh_next = dL/dh_next:`` gives ``{"backward": "with dh_next = dL/dh_next"}``.
    """
    lines = _join_headers(_relative_lines(doc or ""))
    if not lines:
        return "", [], [], {}
    summary = lines[0].strip()
    fwd: list[str] = []
    bwd: list[str] = []
    notes: dict[str, str] = {}
    section: str | None = None  # "forward" | "backward" while inside an indented block
    done_fwd = False
    for raw in lines[1:]:
        stripped = raw.strip()
        if raw.startswith("Params:"):
            break
        if not stripped:
            continue
        if _indent(raw) == 0:  # prose or a header at the docstring's own indentation
            m = _HEADER.match(stripped)
            if m and stripped.endswith(":") and not bwd:
                notes["backward"] = m.group(1).strip().lstrip(",").strip()
                section, done_fwd = "backward", True
                continue
            if section == "forward" and stripped.startswith("where "):
                fwd.append("    " + stripped)  # e.g. "where Wx = [Wxz, Wxr, Wxh]"
                continue
            if section == "forward":
                done_fwd = True
            elif section == "backward" and bwd:
                break  # the backward block is over
            section = None
            continue
        # an indented equation line
        m = _label(stripped)
        if m:
            kind, qual = m.group(1).lower(), (m.group(2) or "").strip()
            if kind == "backward" and bwd:
                break
            if kind == "forward" and done_fwd:
                continue
            section = kind
            if kind == "backward":
                done_fwd = True
            prefix = ""
            if qual.startswith("("):  # "forward (train):" -> "(train) ..." on the line
                prefix = qual + " "
            elif qual:  # "backward, t = T-1..0:" -> a note
                notes[kind] = qual.lstrip(",").strip()
            rest = stripped[len(m.group(0)):]
            if not rest.strip():
                continue  # a label alone on its line: equations follow, indented
            pad = _indent(raw) + len(m.group(0))  # column where the equation text starts
            raw = " " * max(pad - len(prefix), 0) + prefix + rest
        elif section is None:
            if done_fwd:
                continue  # an indented block between the forward and backward ones
            section = "forward"
        (bwd if section == "backward" else fwd).append(raw)
    return summary, _dedent(fwd), _dedent(bwd), notes


def layer_equations(layer: Any) -> Equations:
    """The equations of a layer class (or of the class of a layer object), from its docstring."""
    cls = layer if isinstance(layer, type) else type(layer)
    summary, fwd, bwd, notes = parse_docstring(cls.__doc__ or "")
    try:
        file = inspect.getsourcefile(cls) or ""
        line = inspect.getsourcelines(cls)[1]
    except (OSError, TypeError):
        file, line = "", 0
    return Equations(
        layer=cls.__name__, qualname=f"{cls.__module__}.{cls.__qualname__}", summary=summary,
        forward=fwd, backward=bwd, forward_note=notes.get("forward", ""),
        backward_note=notes.get("backward", ""), file=file, line=line,
    )
