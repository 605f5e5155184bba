"""scripts/gpu_check.py, the prepared GPU run, works end to end on the device double
(`--dry-run`), so it is known to run the day a GPU is lent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.gpu_double
def test_the_gpu_check_runs_end_to_end_on_the_double(tmp_path):
    out = tmp_path / "report.md"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--dry-run",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all steps passed" in done.stdout
    rep = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert rep["dry_run"] and rep["tests"]["rc"] == 0 and " passed" in rep["tests"]["summary"]
    assert rep["bench"]["figures"]["training"]  # the bench wrote its figures
    assert rep["awd"]["figures"]["steps"] == 3
    assert {r["cell"] for r in rep["scan_vs_loop"]} == {"TimeMinGRU", "TimeMinLSTM"}
    assert all(r["max_abs_diff"] < 1e-10 for r in rep["scan_vs_loop"])  # float64: equal
    assert "| TimeMinGRU | 64 |" in out.read_text(encoding="utf-8")
