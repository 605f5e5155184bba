"""The docs tour (docs/tour/*.md) never goes stale: its examples run and its code links hold.

- every ``>>>`` example runs (doctest, one namespace per page);
- every ```` ```console ```` block's ``$ bptt ...`` commands run with exit code 0 and print the
  lines shown under them (in a temporary directory; blocks after ``<!-- slow -->`` only with
  ``-m slow``);
- every ```` ```python ```` block is a doctest (no code that is shown but never run);
- every link into ``src/`` has the form ``[text](../../src/bptt/FILE.py#L42 "Qual.name: code")``
  and line 42 of FILE.py holds ``code`` inside the class/function ``Qual.name``; every row of an
  ``| equation | computed at |`` table has such a link.

When the code moves, fix the line numbers with ``python tests/test_docs_tour.py --fix`` (which
also rewrites the tour's notebooks, docs/tour/notebooks/, from the fixed pages).
"""

from __future__ import annotations

import ast
import doctest
import re
import shlex
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOUR = ROOT / "docs" / "tour"
PAGES = sorted(TOUR.glob("*.md")) + sorted((TOUR / "ja").glob("*.md"))  # English, Japanese
LINK = re.compile(r'\[([^\]]*)\]\(([^)\s#]+)#L(\d+)\s+"([^"]+)"\)')
ANY_SRC_LINK = re.compile(r"\]\(([^)\s]*src/[^)\s]*)")


def _norm(s: str) -> str:
    return " ".join(s.split())


@cache
def _nodes(path: Path) -> dict[str, tuple[int, int]]:
    """Qualified name -> (first line, last line) of every class and function in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: dict[str, tuple[int, int]] = {}

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                out[name] = (child.lineno, child.end_lineno or child.lineno)
                walk(child, name + ".")

    walk(tree, "")
    return out


def _target(page: Path, rel: str) -> Path:
    return (page.parent / rel).resolve()


def _locate(page: Path, rel: str, title: str) -> tuple[list[int], str]:
    """Lines of the file where the title's code occurs inside its qualified name."""
    qual, sep, code = title.partition(": ")
    if not sep:
        return [], f"title {title!r} is not 'Qual.name: code'"
    path = _target(page, rel)
    if not path.is_file():
        return [], f"{rel} does not exist"
    span = _nodes(path).get(qual)
    if span is None:
        return [], f"{qual} is not a class or function of {rel}"
    lines = path.read_text(encoding="utf-8").splitlines()
    hits = [k for k in range(span[0], span[1] + 1) if _norm(code) in _norm(lines[k - 1])]
    return hits, "" if hits else f"{code!r} is not in {qual} ({rel})"


def _links(page: Path) -> list[re.Match]:
    return list(LINK.finditer(page.read_text(encoding="utf-8")))


def test_the_tour_exists():
    names = [p.name for p in PAGES]
    assert "README.md" in names and len(PAGES) >= 5, names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(TOUR).as_posix())
def test_code_links_point_at_the_code(page):
    text = page.read_text(encoding="utf-8")
    problems = []
    found = {m.start() for m in _links(page)}
    for m in ANY_SRC_LINK.finditer(text):  # every link into src/ is a checked one
        start = text.rfind("[", 0, m.start())
        if not any(abs(start - s) < 200 and s <= m.start() for s in found):
            problems.append(f"unchecked link to {m.group(1)} (use '#L<n> \"Qual: code\"')")
    for m in _links(page):
        _, rel, line, title = m.groups()
        hits, why = _locate(page, rel, title)
        if why:
            problems.append(f"{rel}#L{line}: {why}")
        elif int(line) not in hits:
            problems.append(f"{rel}#L{line}: {title!r} is on line {hits[0]} "
                            f"(run python tests/test_docs_tour.py --fix)")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(TOUR).as_posix())
def test_every_equation_row_links_to_code(page):
    rows, table = [], False
    for line in page.read_text(encoding="utf-8").splitlines():
        if re.match(r"^\|\s*(equation|式)\s*\|\s*(computed at|計算している行)\s*\|", line):
            table = True
            continue
        if table and line.startswith("|"):
            if not set(line) <= set("|-: "):
                rows.append(line)
        else:
            table = False
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) >= 2 and LINK.search(cells[-1]), f"{page.name}: no code link: {row}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(TOUR).as_posix())
def test_python_blocks_are_doctests(page):
    text = page.read_text(encoding="utf-8")
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.S):
        assert block.lstrip().startswith(">>>"), f"{page.name}: a python block that never runs"


def _python_only(text: str) -> str:
    """The page with everything outside ```python blocks blanked (line numbers kept)."""
    out, inside = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            inside = line.strip() == "```python"
            out.append("")
        else:
            out.append(line if inside else "")
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(TOUR).as_posix())
def test_doctests(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = _python_only(page.read_text(encoding="utf-8"))
    test = doctest.DocTestParser().get_doctest(text, {}, page.name, str(page), 0)
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    result = runner.run(test)
    assert result.attempted > 0 or ">>>" not in text
    assert result.failed == 0, f"{page.name}: {result.failed} of {result.attempted} failed"


def _console_blocks(page: Path) -> list[tuple[bool, list[tuple[str, list[str]]]]]:
    """(slow, [(command, expected lines)]) for each console block."""
    text = page.read_text(encoding="utf-8")
    out = []
    for m in re.finditer(r"(<!--\s*slow\s*-->\s*)?```console\n(.*?)```", text, flags=re.S):
        cmds: list[tuple[str, list[str]]] = []
        for line in m.group(2).splitlines():
            if line.startswith("$ "):
                cmds.append((line[2:], []))
            elif cmds and line.strip() and line.strip() != "...":
                cmds[-1][1].append(line)
        out.append((bool(m.group(1)), cmds))
    return out


def _run_console(page: Path, want_slow: bool, tmp_path: Path, monkeypatch, capsys) -> int:
    from bptt.cli import main

    monkeypatch.chdir(tmp_path)
    ran = 0
    for slow, cmds in _console_blocks(page):
        if slow != want_slow:
            continue
        for cmd, expected in cmds:
            argv = shlex.split(cmd)
            assert argv[0] == "bptt", cmd
            code = main(argv[1:])
            out = capsys.readouterr()
            assert code == 0, f"{cmd}\n{out.err}"
            text = _norm(out.out + out.err)
            for line in expected:
                assert _norm(line) in text, f"{cmd}: {line!r} not in the output:\n{out.out}"
            ran += 1
    return ran


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(TOUR).as_posix())
def test_console_examples(page, tmp_path, monkeypatch, capsys):
    _run_console(page, False, tmp_path, monkeypatch, capsys)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(TOUR).as_posix())
def test_slow_console_examples(page, tmp_path, monkeypatch, capsys):
    _run_console(page, True, tmp_path, monkeypatch, capsys)


def fix_links() -> int:
    """Rewrite every checked link's line number to where its code is now."""
    changed = 0
    for page in PAGES:
        text = page.read_text(encoding="utf-8")

        def repl(m: re.Match, page: Path = page) -> str:
            nonlocal changed
            label, rel, line, title = m.groups()
            hits, why = _locate(page, rel, title)
            if why:
                print(f"{page.name}: {rel}: {why}", file=sys.stderr)
                return m.group(0)
            if int(line) in hits:
                return m.group(0)
            changed += 1
            new_label = label.replace(f"#L{line}", f"#L{hits[0]}").replace(
                f"L{line}", f"L{hits[0]}")
            return f'[{new_label}]({rel}#L{hits[0]} "{title}")'

        new = LINK.sub(repl, text)
        if new != text:
            page.write_text(new, encoding="utf-8")
    return changed


if __name__ == "__main__":
    if "--fix" in sys.argv:
        print(f"fixed {fix_links()} link(s)")
        try:  # the notebooks are written from the pages: keep them equal
            from helpers import import_file
            import_file(TOUR / "make_notebooks.py").main()
        except ImportError as e:
            print(f"notebooks not rewritten ({e}): pip install -e '.[notebooks]'")
    else:
        print(__doc__)
