"""`python -m bptt` is the `bptt` command."""

import subprocess
import sys


def test_python_dash_m_bptt_runs_the_command_line():
    done = subprocess.run([sys.executable, "-m", "bptt", "--version"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("bptt "), done.stderr


def test_python_dash_m_bptt_reports_bad_input_in_one_line():
    done = subprocess.run([sys.executable, "-m", "bptt", "train", "--hidden", "x"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1


def test_every_command_guards_the_blas_threads(monkeypatch, tmp_path):
    """One BLAS thread unless told otherwise, for every command that does BLAS work."""
    import pytest

    import bptt.commands.options as options
    from bptt.cli import main

    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    commands = [["gradcheck", "--layer", "Affine"], ["explain", "rnn"],
                ["gradflow", "-T", "4", "-H", "3", "-N", "2", "--cells", "rnn",
                 "--scales", "1"],
                ["fit", "sine", "--epochs", "1", "--hidden", "3", "--quiet", "--out",
                 str(tmp_path / "f")],
                ["train", "--max-steps", "2", "--quiet", "--out", str(tmp_path / "t")]]
    for argv in commands:
        calls = []
        monkeypatch.setattr(options, "set_blas_threads", calls.append)
        assert main(argv) == 0, argv
        assert calls == [1], argv
        calls.clear()
        assert main([*argv[:1], "--threads", "2", *argv[1:]]) in (0, 2)
        assert calls == [2], argv
    with pytest.raises(SystemExit):
        main(["fit", "--threads"])


def test_threads_auto_is_the_cores_this_process_may_use(monkeypatch):
    import os

    import bptt.commands.options as options
    from bptt.cli import main

    calls = []
    monkeypatch.setattr(options, "set_blas_threads", calls.append)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert options.usable_cores() == 3  # its share, not the machine's cores
    assert main(["gradcheck", "--layer", "Affine", "--threads", "auto"]) == 0
    assert calls == [3]
    assert main(["gradcheck", "--layer", "Affine", "--threads", "many"]) == 2


def test_device_and_threads_are_accepted_after_nested_commands_too(tmp_path):
    from bptt.cli import main

    assert main(["seq2seq", "train", "--data", "addition", "--pairs", "200", "--epochs", "1",
                 "--hidden", "4", "--quiet", "--out", str(tmp_path / "s"), "--threads", "1",
                 "--device", "cpu"]) == 0


def test_help_texts_show_no_sphinx_roles():
    """Commands take their help from docstrings: what a terminal shows has no :func:`...`."""
    import re

    from bptt.cli import _command_parsers, build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.choices and "train" in a.choices)
    for p in _command_parsers(sub):
        text = p.format_help()
        assert not re.search(r":(func|class|mod|meth|attr):`", text), (p.prog, text)
        assert "``" not in text, p.prog


_INTERRUPT_WHILE_IMPORTING = """
import sys

class Interrupt:  # a Ctrl-C that lands while {module} is being imported
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            raise KeyboardInterrupt
sys.meta_path.insert(0, Interrupt())
from _bptt_entry import main
sys.argv = ["bptt", "--version"]
sys.exit(main())
"""


def test_a_ctrl_c_while_the_command_imports_is_one_line():
    """The console script's target imports nothing heavy: a Ctrl-C in the first instants (the
    library's imports, then each command's) is `bptt: interrupted`, exit 130, no traceback."""
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "bptt"]
    assert script.value == "_bptt_entry:main"
    for module in ("bptt.cli", "bptt.commands.seq2seq"):
        done = subprocess.run([sys.executable, "-c", _INTERRUPT_WHILE_IMPORTING.format(
            module=module)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 130, (module, done.stderr)
        assert done.stderr == "bptt: interrupted\n", (module, done.stderr)


def test_a_model_size_is_checked_once_and_named_by_its_flag(tmp_path, capsys):
    """The library checks a size once, in its own names (hidden_size...); every command says
    it with the flag that sets it, in the same words."""
    import pytest

    import bptt
    from bptt.cli import main

    with pytest.raises(ValueError, match="^hidden_size must be a positive integer, got 0$"):
        bptt.LanguageModel(10, hidden_size=0)
    for argv, flag in ((["train", "--hidden", "0"], "--hidden"),
                       (["fit", "sine", "--layers", "0"], "--layers"),
                       (["seq2seq", "train", "--embed", "-1"], "--embed"),
                       (["train", "--last-hidden", "0"], "--last-hidden")):
        assert main([*argv, "--out", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.endswith(f"error: {flag} must be a positive integer, got "
                            f"{argv[-1]}"), err
        assert not (tmp_path / "r").exists()
