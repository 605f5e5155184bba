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
