"""``bptt gradcheck`` through bptt.cli.main, and the installed ``bptt`` script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bptt
from bptt.cli import main
from bptt.nn.layers import Tanh
from bptt.tools.verification import gradcheck_suite
from bptt.tools.verification.gradcheck_suite import GradcheckCase, layer_cases, run_suite


def test_all_layers_pass(capsys):
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    names = [n for n, _ in layer_cases()]
    for name in ["MulLayer", "Affine", "SoftmaxWithLoss", "Dropout", "Embedding"]:
        assert name in names
    rows = [line.split() for line in out.splitlines()[1:-1]]
    assert [r[0] for r in rows] == names
    assert all(r[2] == "PASS" and float(r[1]) < 1e-6 for r in rows)
    assert f"{len(names)}/{len(names)} layers pass" in out


def test_recurrent_layers_join_when_exported():
    names = {n for n, _ in layer_cases()}
    for name in ["RNN", "LSTM", "GRU", "TimeRNN", "TimeLSTM", "TimeGRU", "TimeEmbedding",
                 "TimeAffine", "TimeSoftmaxWithLoss"]:
        assert (name in names) == (getattr(bptt, name, None) is not None), name


def test_layer_option_and_tol(capsys):
    assert main(["gradcheck", "--layer", "affine", "--layer", "Tanh", "--layer", "Affine"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()[1:-1]] == ["Affine", "Tanh"]
    # an absurd tolerance makes everything fail: exit 1
    assert main(["gradcheck", "--layer", "Tanh", "--tol", "1e-30"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "failed: Tanh" in out


def test_unknown_layer_is_one_line_exit_2(capsys):
    assert main(["gradcheck", "--layer", "Transformer"]) == 2
    err = capsys.readouterr().err
    assert "unknown layer 'Transformer'" in err and "known layers: MulLayer" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["gradcheck", "--tol", "0"]) == 2


class WrongTanh(Tanh):
    def backward(self, dout):
        return dout * (1 - self.out)  # should be 1 - out**2


def test_wrong_layer_fails_and_broken_case_is_reported(monkeypatch, capsys):
    x = np.random.default_rng(0).standard_normal((2, 3))

    def broken():
        raise RuntimeError("cannot build")

    cases = [("Good", lambda: GradcheckCase(Tanh(), [x])),
             ("Wrong", lambda: GradcheckCase(WrongTanh(), [x])),
             ("Broken", broken)]
    monkeypatch.setattr(gradcheck_suite, "layer_cases", lambda: cases)
    results = {r.name: r for r in run_suite()}
    assert results["Good"].passed and not results["Wrong"].passed
    assert results["Wrong"].worst > 0.1
    assert not results["Broken"].passed and "cannot build" in results["Broken"].error
    assert main(["gradcheck"]) == 1
    out = capsys.readouterr().out
    assert "Wrong" in out and "RuntimeError: cannot build" in out
    assert "1/3 layers pass" in out


def _script() -> str:
    exe = Path(sys.executable).parent / "bptt"
    if not exe.exists():
        pytest.skip("the bptt console script is not installed next to this Python")
    return str(exe)


def test_installed_script_help_and_version():
    exe = _script()
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    assert "gradcheck" in out
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"bptt {bptt.__version__}"


def test_device_is_accepted_before_and_after_the_command(monkeypatch):
    from bptt.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["--device", "cpu", "gradcheck"]).device == "cpu"
    assert parser.parse_args(["gradcheck", "--device", "cpu"]).device == "cpu"
    assert parser.parse_args(["fit", "sine", "--device", "gpu"]).device == "gpu"
    assert parser.parse_args(["fit", "sine"]).device is None
