"""The report of ``bptt explain``: :class:`Explanation` and its text and Markdown forms."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .records import LETTER_MEANING, ArrayInfo, Call, Flow


@dataclass
class Explanation:
    """What ``bptt explain`` prints, as data: ``forward`` and ``backward`` lists of ``Call``."""

    model: str
    dims: dict[str, int]
    loss: float | None
    forward: list[Call] = field(default_factory=list)
    backward: list[Call] = field(default_factory=list)
    cells: dict[str, dict[str, Any]] = field(default_factory=dict)  # cell name -> equations

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_text(self) -> str:
        return render_text(self)

    def to_markdown(self) -> str:
        return render_markdown(self)

    def _repr_markdown_(self) -> str:
        """Jupyter shows an explanation as its Markdown tables."""
        return self.to_markdown()

    def render(self, fmt: str = "text") -> str:
        """``text``, ``markdown`` or ``json``."""
        renderers = {"text": self.to_text, "markdown": self.to_markdown, "json": self.to_json}
        if fmt not in renderers:
            raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(renderers)}")
        return renderers[fmt]()


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.4g}"


def _arr(a: ArrayInfo, arrow: str, grad: bool = False) -> str:
    if not a.shape and (a.dtype in ("default", "int", "float") or a.name == "L"):
        text = f"{a.name} = {_num(a.norm)}"
    elif not a.shape and a.letters == "":
        text = f"{a.name} = {a.dtype}"
    else:
        text = f"{a.name:<6} {a.shape_text}  {a.dtype}"
        if grad and a.norm is not None:
            text += f"  |{a.name}| = {_num(a.norm)}"
    return f"{text}  {arrow} {a.peer}" if a.peer else text


def _params(ps: list[ArrayInfo], grad: bool) -> str:
    parts = []
    for p in ps:
        s = f"{p.name} {p.shape_text}"
        if grad and p.norm is not None:
            s += f" |{p.name}|={_num(p.norm)}"
        parts.append(s)
    return ", ".join(parts)


def _flow(f: Flow, arrow: str) -> str:
    n = f"  |{f.name.split('[')[0]}|={_num(f.norm)}" if f.norm is not None else ""
    return f"{f.name} {f.letters} {arrow} {f.peer}{n}"


def _note(note: str) -> str:
    if not note:
        return ""
    return f" {note}" if note.startswith("(") else f", {note}"


def _header(ex: Explanation) -> list[str]:
    sizes = " ".join(f"{k}={v}" for k, v in ex.dims.items())
    loss = f", loss L = {ex.loss:.4f}" if ex.loss is not None else ""
    legend = ", ".join(f"{k} {LETTER_MEANING.get(k, '?')}" for k in ex.dims)
    return [f"bptt explain {ex.model}: one batch with {sizes}{loss}",
            f"shape letters: {legend}; dX means dL/dX"]


def render_text(ex: Explanation) -> str:
    out = _header(ex)
    out += ["", "FORWARD: the layers in the order forward() calls them", ""]
    for c in ex.forward:
        out.append(f"[{c.number}] {c.layer}.forward" + (f"   {c.cls}" if c.cls not in c.layer
                                                        else ""))
        if c.params:
            out.append(f"      params: {_params(c.params, False)}")
        out += [f"      in   {_arr(a, '<-')}" for a in c.inputs]
        out += [f"      out  {_arr(a, '->')}" for a in c.outputs]
        if c.equations:
            out.append("    forward" + _note(c.note) + ":")
            out += [f"      {e}" for e in c.equations]
        out.append("")
    out += ["BACKWARD: the same layers in reverse order; numbers (k) give the execution order",
            ""]
    for c in ex.backward:
        out.append(f"{c.numbers} {c.layer}.backward")
        out += [f"      in   {_arr(a, '<-', True)}" for a in c.inputs]
        out += [f"      out  {_arr(a, '->', True)}" for a in c.outputs]
        if c.params:
            out.append(f"      grads: {_params(c.params, True)}")
        if c.equations:
            out.append("    backward" + _note(c.note) + ":")
            out += [f"      {e}" for e in c.equations]
        if c.steps:
            out += _steps_text(c, ex)
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _steps_text(c: Call, ex: Explanation) -> list[str]:
    out = [f"    one {c.cell} cell per time step, t = {c.steps[0].t} down to {c.steps[-1].t}"
           f" (each step adds its share to the parameter gradients):"]
    for s in c.steps:
        lead = f"      ({s.number}) t={s.t}"
        pad = " " * len(lead)
        total = f"   |dh_next|={_num(s.dh_next)}" if s.dh_next is not None else ""
        extra = ", dc_next = dc" if any(f.name == "dc" for f in s.receives) else ""
        out.append(f"{lead}  {c.cell}.backward(dh_next = dhs[:, {s.t}] + dh{extra}){total}")
        out += [f"{pad}    {_flow(f, '<-')}" for f in s.receives]
        out += [f"{pad}    {_flow(f, '->')}" for f in s.sends]
    if c.replay_ok is False:
        out.append("      (the per-step numbers could not be reproduced with the cells: norms "
                   "omitted)")
    cell = ex.cells.get(c.cell)
    if cell:
        note = _note(cell.get("backward_note", ""))
        out.append(f"    {c.cell} cell backward (bptt.nn.cells.{c.cell}){note}:")
        out += [f"      {e}" for e in cell["backward"]]
    return out


# -- markdown -------------------------------------------------------------------------------------
def _md_cell(s: Any) -> str:
    return str(s).replace("|", "\\|")


def render_markdown(ex: Explanation) -> str:
    head = _header(ex)
    out = [f"# {head[0]}", "", head[1], "", "## Forward", ""]
    for c in ex.forward:
        out.append(f"### [{c.number}] {c.layer}.forward (`{c.qualname}`)")
        out.append("")
        out += _md_table(c.params, c.inputs, c.outputs, grad=False)
        if c.equations:
            out += ["", "```text", *c.equations, "```"]
        out.append("")
    out += ["## Backward", "", "The numbers (k) give the execution order.", ""]
    for c in ex.backward:
        out.append(f"### {c.numbers} {c.layer}.backward")
        out.append("")
        out += _md_table(c.params, c.inputs, c.outputs, grad=True)
        if c.equations:
            note = _note(c.note).lstrip(",").strip()
            note = f" {note}" if note.startswith("(") else (f" ({note})" if note else "")
            out += ["", f"Equations{note}:", "", "```text", *c.equations, "```"]
        if c.steps:
            out += ["", f"Per time step ({c.cell} cell):", "",
                    "| step | t | receives | sends |", "|---|---|---|---|"]
            for s in c.steps:
                r = "<br>".join(_md_cell(_flow(f, "<-")) for f in s.receives)
                se = "<br>".join(_md_cell(_flow(f, "->")) for f in s.sends)
                out.append(f"| ({s.number}) | {s.t} | {r} | {se} |")
            cell = ex.cells.get(c.cell)
            if cell:
                out += ["", f"{c.cell} cell backward:", "", "```text", *cell["backward"], "```"]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _md_table(params: list[ArrayInfo], ins: list[ArrayInfo], outs: list[ArrayInfo],
              grad: bool) -> list[str]:
    rows = ["| | name | shape | dtype | norm / value | from / to |",
            "|---|---|---|---|---|---|"]
    for role, arrs in (("in", ins), ("out", outs), ("grad" if grad else "param", params)):
        for a in arrs:
            if a.dtype == "None":  # returned nothing (an embedding's ids have no gradient)
                shape, dtype = "none", ""
            else:
                shape = a.shape_text if a.shape or a.letters else "scalar"
                dtype = a.dtype
            rows.append(f"| {role} | `{a.name}` | {_md_cell(shape)} | {dtype} | "
                        f"{_num(a.norm)} | {_md_cell(a.peer)} |")
    return rows
