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


def page_id(page: Path) -> str:
    return page.relative_to(make.TOUR).with_suffix("").as_posix()


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_the_committed_notebook_is_the_page(page):
    pytest.importorskip("nbformat", reason="needs the notebooks extra: pip install "
                                           "'bptt[notebooks]'")
    committed = make.notebook_path(page)
    assert committed.exists(), f"run: python docs/tour/make_notebooks.py ({committed} missing)"
    assert committed.read_text(encoding="utf-8") == make.notebook_text(page), \
        f"{committed.name} is stale: run python docs/tour/make_notebooks.py"


@pytest.mark.notebooks
@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_the_notebook_runs(page, tmp_path):
    nbclient = pytest.importorskip("nbclient", reason="needs the notebooks extra: pip install "
                                                      "'bptt[notebooks]'")
    pytest.importorskip("ipykernel", reason="needs the notebooks extra (ipykernel)")
    nb = make.notebook_of(page)
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    printed = "\n".join(o.get("text") or o.get("data", {}).get("text/plain", "")
                        for o in outputs)  # printed and displayed values
    text = page.read_text(encoding="utf-8")
    # every line the page's doctests show (not a >>> line, not "...") appears in the output
    shown = [line for block in re.findall(r"```python\n(.*?)```", text, flags=re.S)
             for line in block.splitlines()
             if line.strip() and not line.startswith((">>>", "...")) and "..." not in line]
    missing = [line for line in shown if " ".join(line.split()) not in " ".join(printed.split())]
    assert not missing, f"{page.name}: results the page shows that the notebook does not"
    # every picture a run command writes is shown inline, and nothing lands beside the notebook
    runs = [b for slow, b in re.findall(r"(<!--\s*slow\s*-->\s*)?```console\n(.*?)```", text,
                                        flags=re.S) if not slow]
    pictures = [n for b in runs for n in make.PICTURE.findall(b)]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == len(pictures)
    pages = [n for b in runs for n in make.PAGE.findall(b)]  # explainer pages, inline
    assert sum("<iframe srcdoc=" in o.get("data", {}).get("text/html", "")
               for o in outputs) == len(pages)
    assert not list(folder.iterdir()), "the notebook wrote into its own folder"
