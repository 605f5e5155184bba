"""The cells at an equal time budget on PTB: valid/test perplexity and tokens/s per cell.

    python benchmarks/cells_ptb.py --data ../shared/data/ptb                 # 15 min per cell
    python benchmarks/cells_ptb.py --data ../shared/data/ptb --minutes 2 --cells lstm mingru

Each cell trains the same language model around it (embedding D = H = 200 tied to the output,
2 recurrent layers, dropout 0.3, Adam lr 0.002, clip 1, batch 20 x 35, the book's initial
weights) with `bptt train --max-minutes M` on one BLAS thread; `--parallel 2` runs two cells
at a time (one per core). The recurrent parameter counts differ by cell (minGRU has no
recurrent weight at all); with a 10,000-word embedding shared by input and output they differ
by at most ~15 % of the whole model, which the table lists.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--cells", nargs="*",
                   default=["lstm", "gru", "mingru", "minlstm", "indrnn", "lnlstm"])
    p.add_argument("--minutes", type=float, default=15.0)
    p.add_argument("--parallel", type=int, default=1)
    p.add_argument("--out", default="runs/cells", help="folder of the runs")
    p.add_argument("--json", default=None, metavar="FILE")
    a = p.parse_args()
    common = ["--data", a.data, "--layers", "2", "--embed", "200", "--hidden", "200", "--tie",
              "--dropout", "0.3", "--optimizer", "adam", "--lr", "0.002", "--clip", "1",
              "--epochs", "100", "--max-minutes", str(a.minutes), "--threads", "1", "--quiet",
              "--init", "book"]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    pending, running, done = list(a.cells), [], {}
    t0 = time.time()
    while pending or running:
        while pending and len(running) < a.parallel:
            cell = pending.pop(0)
            out = Path(a.out) / cell
            cmd = [sys.executable, "-m", "bptt", "train", "--cell", cell, "--out", str(out),
                   "--overwrite", *common]
            running.append((cell, out, subprocess.Popen(cmd, env=env)))
        for item in list(running):
            cell, out, proc = item
            if proc.poll() is not None:
                running.remove(item)
                m = json.loads((out / "metrics.json").read_text()) if proc.returncode == 0 \
                    else {}
                done[cell] = m
                print(f"{cell:8} valid {m.get('valid_ppl', float('nan')):8.2f}  test "
                      f"{m.get('test_ppl', float('nan')):8.2f}  "
                      f"{m.get('train_tokens_per_sec', 0):7,.0f} tok/s  "
                      f"{m.get('num_params', 0):,} params  epochs "
                      f"{m.get('epochs', 0):.2f}  ({time.time() - t0:.0f} s)", flush=True)
        time.sleep(2)
    if a.json:
        Path(a.json).write_text(json.dumps(done, indent=1))


if __name__ == "__main__":
    main()
