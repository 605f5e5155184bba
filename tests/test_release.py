"""A release-ready package: the version written once, an sdist and a wheel that `twine check`
passes, and a wheel that installs in a fresh venv with the built-in corpus inside and trains."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

import bptt

ROOT = Path(__file__).resolve().parents[1]


def test_the_version_is_written_once():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'dynamic = ["version"]' in text and not re.search(r'^version\s*=\s*"', text, re.M)
    assert 'version = {attr = "bptt.__version__"}' in text
    assert version("bptt") == bptt.__version__
    assert (ROOT / "CHANGELOG.md").read_text(encoding="utf-8").startswith("# Changelog")


def test_the_wheel_installs_in_a_fresh_venv_and_trains(tmp_path):
    pytest.importorskip("build", reason="needs the dev extra (build)")
    pytest.importorskip("twine", reason="needs the dev extra (twine)")
    tree = tmp_path / "tree"  # a copy: building writes build/ and egg-info beside the sources
    tree.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md"):
        shutil.copy(ROOT / name, tree / name)
    shutil.copytree(ROOT / "src", tree / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    dist = tmp_path / "dist"
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--sdist",
                           "--wheel", "--outdir", str(dist), str(tree)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    wheel = next(dist.glob("*.whl"))
    sdist = next(dist.glob("*.tar.gz"))
    assert wheel.name.startswith(f"bptt-{bptt.__version__}-")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    assert "bptt/data/builtin.txt" in names  # the built-in corpus: no download, no checkout
    assert "_bptt_entry.py" in names
    twine = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(wheel),
                            str(sdist)], capture_output=True, text=True, timeout=300)
    assert twine.returncode == 0, twine.stdout + twine.stderr
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    install = subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-2000:]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([str(venv / "bin" / "bptt"), "train", "--max-steps", "3", "--quiet",
                          "--out", str(tmp_path / "run")], capture_output=True, text=True,
                         timeout=600, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "run" / "best" / "model.npz").exists()
    ver = subprocess.run([str(venv / "bin" / "bptt"), "--version"], capture_output=True,
                         text=True, timeout=120, env=env)
    assert ver.stdout.strip() == f"bptt {bptt.__version__}"
