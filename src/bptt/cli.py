"""The ``bptt`` command line: argument parsing and error reporting only.

Each subcommand lives in ``bptt.commands.<name>`` and exposes ``add_parser(sub)``, which adds its
parser and sets ``run`` (a function of the parsed arguments returning an exit code or None).
The library does the work and raises clear errors; here they become one line and a non-zero exit.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import warnings
from collections.abc import Sequence
from typing import NoReturn

from . import __version__
from .commands.options import add_shared, apply_shared, procs_wanted, run_on_ranks
from .nn.registry import load_plugin_cells
from .train.memory import ModelTooLarge

# modules under bptt.commands, in the order `bptt --help` lists them
COMMANDS = ["gradcheck", "explain", "gradflow", "plot", "train", "evaluate", "generate", "fit",
            "seq2seq", "report", "bench", "import_book", "export", "import_torch"]


# the library's names of the values the commands' flags set: its one check of a value names
# the field, and the command line names the flag instead
FLAGS = {"hidden_size": "--hidden", "embed_size": "--embed", "num_layers": "--layers",
         "last_hidden": "--last-hidden"}
_FIELD = re.compile(r"^(" + "|".join(FLAGS) + r")\b")


def flag_names(message: str) -> str:
    """An error of the library as the command line says it: a field name it begins with
    becomes the flag that sets it (``hidden_size must be ...`` -> ``--hidden must be ...``)."""
    return _FIELD.sub(lambda m: FLAGS[m.group(1)], message)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors (a bad int, an unknown option) are one line, not a usage
    dump; its subcommand parsers are of the same class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bptt",
        description="Recurrent networks from scratch: exact backprop through time on NumPy/CuPy.",
    )
    parser.add_argument("--version", action="version", version=f"bptt {__version__}")
    add_shared(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"bptt.commands.{name}").add_parser(sub)
    for p in _command_parsers(sub):  # `bptt fit --device gpu` = `bptt --device gpu fit`
        add_shared(p)
        p.description = plain_text(p.description)
        p.epilog = plain_text(p.epilog)
    return parser


_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|exc|obj):`~?(?:[\w.]*\.)?([^`<]+?)`")


def plain_text(doc: str | None) -> str | None:
    """A docstring as help text: Sphinx roles (``:func:`bptt.x.y```) become the plain name,
    double backquotes single ones."""
    if not doc:
        return doc
    return _ROLE.sub(r"`\1`", doc).replace("``", "`")


def _command_parsers(sub: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    """Every command's parser, nested ones (``bptt seq2seq train``) included."""
    out = []
    for p in sub.choices.values():
        out.append(p)
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                out += _command_parsers(action)
    return out


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str,
                      lineno: int, line: str | None = None) -> str:
    return f"bptt: warning: {message}\n"


def _reports() -> bool:
    """Only rank 0 of a data-parallel run prints errors (every rank meets the same ones)."""
    return (os.environ.get("PMI_RANK") or os.environ.get("OMPI_COMM_WORLD_RANK") or "0") == "0"


def main(argv: Sequence[str] | None = None) -> int:
    warnings.formatwarning = _one_line_warning  # the library's warnings as one line each
    try:
        for problem in load_plugin_cells():  # cells of installed packages: --cell choices
            print(f"bptt: warning: {problem}", file=sys.stderr)
        parser = build_parser()  # imports every command's module
    except KeyboardInterrupt:
        print("bptt: interrupted", file=sys.stderr)
        return 130
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 0
    try:
        ranks = procs_wanted(args)  # --procs K: this command again, on K MPI ranks
        if ranks is not None:
            return run_on_ranks(ranks, args, list(sys.argv[1:] if argv is None else argv))
        apply_shared(args)  # every command: the device, and BLAS threads guarded
        code = args.run(args)
    except KeyboardInterrupt:
        print("bptt: interrupted", file=sys.stderr)
        return 130
    except ModelTooLarge as e:  # the estimate's refusal: it names the options to lower
        if _reports():
            print(f"bptt {args.command}: error: {e}", file=sys.stderr)
        return 2
    except MemoryError as e:
        if not _reports():
            return 2
        print(f"bptt {args.command}: error: out of memory ({e or 'an array did not fit'}); "
              f"use smaller sizes (--hidden, --embed, --batch, --bptt)", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError, RuntimeError, KeyError) as e:
        if not _reports():
            return 2
        msg = flag_names(str(e) or type(e).__name__)
        if isinstance(e, OSError) and e.strerror and e.filename:
            msg = f"{e.strerror}: {e.filename}"  # the library's own text, without [Errno N]
        print(f"bptt {args.command}: error: {msg}", file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
