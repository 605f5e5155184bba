"""One true map: the README's layout of src/bptt/ and docs/architecture.md name the modules the
code has, and the places the architecture page sends a new cell, model or command exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "bptt"


def _layout() -> dict[str, str]:
    """The README's layout block, floor by floor: {'': ground lines, 'nn': ..., ...}."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text[text.index("\nsrc/bptt/\n"):text.index("\ntests/ ")]
    floors: dict[str, str] = {"": ""}
    current = ""
    for line in block.splitlines()[2:]:
        m = re.match(r"  (\w+)/ ", line)
        if m:
            current = m.group(1)
        floors[current] = floors.get(current, "") + " " + line
    return floors


def test_the_readme_layout_names_every_module():
    floors = _layout()
    ground = [p.name for p in SRC.glob("*.py")
              if p.stem not in ("__init__", "__main__", "cli")]
    assert [n for n in ground if n not in floors[""]] == []
    for floor in ("nn", "data", "models", "train", "tools"):
        words = set(re.findall(r"[\w]+", floors[floor]))
        missing = [p.relative_to(SRC / floor).as_posix() for p in (SRC / floor).rglob("*.py")
                   if p.stem != "__init__" and p.stem not in words]
        assert missing == [], f"{floor}/ modules the README's layout does not name: {missing}"
        for sub in (SRC / floor).iterdir():
            if sub.is_dir() and (sub / "__init__.py").exists():
                assert f"{sub.name}/" in floors[floor], f"{floor}/{sub.name}/"


def test_the_places_the_architecture_page_names_exist():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = text[text.index("## Where a new thing goes"):text.index("## One cell registry")]
    paths = set(re.findall(r"`((?:nn|models|data|train|tools|commands)/[\w/.]*)`", table))
    assert len(paths) > 8
    for path in paths:
        real = re.sub(r"NAME\.py$", "", path)
        assert (SRC / real).exists(), path
