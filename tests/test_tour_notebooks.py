"""The docs tour as notebooks (docs/tour/notebooks/): generated from the same Markdown (the
committed files are what `python docs/tour/make_notebooks.py` writes now), and every one runs
top to bottom in a Jupyter kernel (nbclient), its printed output the page's doctest output."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import import_file

ROOT = Path(__file__).resolve().parents[1]
MAKER = ROOT / "docs" / "tour" / "make_notebooks.py"


make = import_file(MAKER)
PAGES = make.pages()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_the_committed_notebook_is_the_page(page):
    pytest.importorskip("nbformat", reason="needs the notebooks extra: pip install "
                                           "'bptt[notebooks]'")
    committed = make.OUT / (page.stem + ".ipynb")
    assert committed.exists(), f"run: python docs/tour/make_notebooks.py ({committed} missing)"
    assert committed.read_text(encoding="utf-8") == make.notebook_text(page), \
        f"{committed.name} is stale: run python docs/tour/make_notebooks.py"


@pytest.mark.notebooks
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_the_notebook_runs(page, tmp_path):
    nbclient = pytest.importorskip("nbclient", reason="needs the notebooks extra: pip install "
                                                      "'bptt[notebooks]'")
    pytest.importorskip("ipykernel", reason="needs the notebooks extra (ipykernel)")
    nb = make.notebook_of(page)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = "\n".join(o.get("text") or o.get("data", {}).get("text/plain", "")
                        for c in nb.cells if c.cell_type == "code"
                        for o in c.get("outputs", []))  # printed and displayed values
    text = page.read_text(encoding="utf-8")
    # a line the page's doctests print (not a >>> line, not "...") appears in the output
    shown = [line for block in re.findall(r"```python\n(.*?)```", text, flags=re.S)
             for line in block.splitlines()
             if line.strip() and not line.startswith((">>>", "...")) and "..." not in line]
    if shown:
        assert any(" ".join(line.split()) in " ".join(printed.split()) for line in shown), \
            f"{page.name}: none of the page's output lines were printed"
