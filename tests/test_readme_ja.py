"""README.ja.md: the same two first commands as README.md, and every command it shows is one the
`bptt` parser accepts (so the Japanese page cannot drift from the tool)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from bptt.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def console_blocks(path: Path) -> list[list[str]]:
    text = path.read_text(encoding="utf-8")
    return [block.strip().splitlines()
            for block in re.findall(r"```console\n(.*?)```", text, flags=re.S)]


def test_the_japanese_readme_starts_with_the_readmes_two_commands():
    assert console_blocks(ROOT / "README.ja.md")[0] == console_blocks(ROOT / "README.md")[0]
    assert "README.ja.md" in (ROOT / "README.md").read_text(encoding="utf-8")  # linked


@pytest.mark.parametrize("line", [ln for block in console_blocks(ROOT / "README.ja.md")[1:]
                                  for ln in block if ln.startswith("bptt ")])
def test_every_command_the_japanese_readme_shows_parses(line):
    argv = shlex.split(line.split("  #")[0])[1:]
    args = build_parser().parse_args(argv)
    assert args.command == argv[0]
