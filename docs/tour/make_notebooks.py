"""Write the docs tour as Jupyter notebooks: ``python docs/tour/make_notebooks.py``.

Each page ``docs/tour/N-name.md`` becomes ``docs/tour/notebooks/N-name.ipynb`` from the same
Markdown, so the two never disagree (``tests/test_tour_notebooks.py`` regenerates them and
compares, then runs them with nbclient):

- prose, tables and links -> Markdown cells (links into ``src/`` made relative to the
  notebooks' folder);
- a ```` ```python ```` block of ``>>>`` examples -> code cells holding the example code, a
  new cell after each example the page shows a result of (Jupyter shows the value of a cell's
  last expression only), so every result the page shows appears in the notebook;
- a ```` ```console ```` block -> one ``%%bash`` cell of its ``bptt ...`` commands (a failing
  one fails the cell), then a cell showing each picture it writes, inline; except the blocks
  marked ``<!-- slow -->`` (minutes of training), which stay as Markdown to read.

The first code cell moves the kernel to a scratch folder, so the runs and pictures a notebook
makes never land in the checkout.

Needs only nbformat (the ``notebooks`` extra): ``pip install -e '.[notebooks]'``.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

TOUR = Path(__file__).resolve().parent
OUT = TOUR / "notebooks"
BLOCK = re.compile(r"(<!--\s*slow\s*-->\s*)?```(python|console)\n(.*?)```\n?", re.S)


SCRATCH = """\
# Work in a scratch folder: the runs and pictures this notebook makes stay out of the checkout.
import os
import tempfile

os.chdir(tempfile.mkdtemp(prefix="bptt-tour-"))
print("working in", os.getcwd())"""

PICTURE = re.compile(r"--(?:plot|out)\s+(\S+\.png)\b")
PAGE = re.compile(r"--html\s+(\S+\.html)\b")


def _cells_of_doctest(block: str) -> list[str]:
    """The source of ``>>>`` / ``...`` examples, prompts removed, outputs dropped: one cell per
    run of examples ending with one whose result the page shows."""
    cells: list[str] = []
    lines: list[str] = []
    for line in block.splitlines():
        if line.startswith((">>> ", "... ")) or line in (">>>", "..."):
            lines.append(line[4:])
        elif line.strip() and lines:  # a shown result: the example before it ends a cell
            cells.append("\n".join(lines).rstrip())
            lines = []
    if lines:
        cells.append("\n".join(lines).rstrip())
    return cells


def _pictures_of_console(block: str) -> str | None:
    """A cell showing the pictures and pages a console block's commands write, or None (a page
    in a sandboxed frame: its script runs in its own document)."""
    commands = [line for line in block.splitlines() if line.startswith("$ ")]
    names = [name for line in commands for name in PICTURE.findall(line)]
    pages = [name for line in commands for name in PAGE.findall(line)]
    if not names and not pages:
        return None
    lines = ["from IPython.display import HTML, Image, display"]
    if pages:
        lines += ["", "from bptt.tools.explaining.page import inline_html"]
    lines.append("")
    lines += [f"display(Image({name!r}))" for name in names]
    lines += [f"display(HTML(inline_html(open({name!r}, encoding='utf-8').read())))"
              for name in pages]
    return "\n".join(lines)


def _shell_of_console(block: str) -> str:
    """A %%bash cell of the block's commands; a failing one fails the cell (set -e)."""
    return "\n".join(["%%bash", "set -e"] + [line[2:] for line in block.splitlines()
                                             if line.startswith("$ ")])


def _relink(m: re.Match, up: str = "../") -> str:
    """A link of a tour page, seen from its notebook's folder: pages become notebooks, other
    targets are reached through ``up`` (the page's folder seen from the notebook's)."""
    target = m.group(1)
    if re.match(r"[a-z]+:|#|/", target):
        return m.group(0)
    page = re.fullmatch(r"(\d+-[\w-]+)\.md(#.*)?", target)
    if page:
        return f"]({page.group(1)}.ipynb{page.group(2) or ''}"
    return f"]({up}{target}"


def _markdown(text: str, up: str = "../") -> str:
    return re.sub(r"\]\(([^)\s]+)", lambda m: _relink(m, up), text).strip()


def notebook_path(page: Path) -> Path:
    """docs/tour/N-name.md -> notebooks/N-name.ipynb; docs/tour/ja/N-name.md ->
    notebooks/ja/N-name.ipynb."""
    return OUT / page.relative_to(TOUR).with_suffix(".ipynb")


def notebook_of(page: Path) -> object:
    """The notebook of one tour page (an nbformat v4 NotebookNode)."""
    import nbformat

    text = page.read_text(encoding="utf-8")
    up = os.path.relpath(page.parent, notebook_path(page).parent) + "/"
    cells, at, scratch = [], 0, False
    for m in BLOCK.finditer(text):
        prose = _markdown(text[at:m.start()], up)
        slow, kind, body = bool(m.group(1)), m.group(2), m.group(3)
        if kind == "console" and slow:  # shown, not run: it trains for minutes
            prose = (prose + "\n\n" if prose else "") + f"```console\n{body}```"
        if prose:
            cells.append(nbformat.v4.new_markdown_cell(prose))
        if not scratch and not (kind == "console" and slow):
            cells.append(nbformat.v4.new_code_cell(SCRATCH))
            scratch = True
        if kind == "python":
            cells += [nbformat.v4.new_code_cell(code) for code in _cells_of_doctest(body)]
        elif not slow:
            cells.append(nbformat.v4.new_code_cell(_shell_of_console(body)))
            pictures = _pictures_of_console(body)
            if pictures:
                cells.append(nbformat.v4.new_code_cell(pictures))
        at = m.end()
    rest = _markdown(text[at:], up)
    if rest:
        cells.append(nbformat.v4.new_markdown_cell(rest))
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["bptt_source"] = f"docs/tour/{page.relative_to(TOUR).as_posix()}"
    return nb


def notebook_text(page: Path) -> str:
    import nbformat

    nb = notebook_of(page)
    for k, cell in enumerate(nb.cells):  # stable ids: regenerating changes nothing
        cell["id"] = f"{page.stem[:20]}-{k}"
    return nbformat.writes(nb) + "\n"


def pages() -> list[Path]:
    """The tour's pages, English then Japanese (docs/tour/ja/)."""
    return sorted(TOUR.glob("[0-9]*.md")) + sorted((TOUR / "ja").glob("[0-9]*.md"))


def main() -> int:
    for page in pages():
        target = notebook_path(page)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(notebook_text(page), encoding="utf-8")
        print(f"wrote {target.relative_to(TOUR.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
