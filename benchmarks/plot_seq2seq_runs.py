"""Test accuracy per epoch of seq2seq runs, one curve per run, as one PNG (docs/seq2seq.md).

    python benchmarks/plot_seq2seq_runs.py --out docs/img/seq2seq_addition.png \\
        "plain=runs/add-plain" "reversed=runs/add-rev" "reversed + peeky=runs/add-rev-peeky"

Each argument is LABEL=RUN, RUN the --out folder of ``bptt seq2seq train`` (its metrics.json).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bptt.figures import new_figure, save_figure


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="LABEL=RUN")
    p.add_argument("--out", required=True, help="the PNG to write")
    p.add_argument("--title", default="test accuracy (exact match) per epoch")
    a = p.parse_args()
    fig = new_figure(6.4, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    for item in a.runs:
        label, _, run = item.partition("=")
        m = json.loads((Path(run) / "metrics.json").read_text(encoding="utf-8"))
        rows = [r for r in m["history"] if not r.get("partial")]
        ax.plot([r["epoch"] for r in rows], [100 * r["test_acc"] for r in rows], marker="o",
                markersize=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.set_title(a.title, fontsize=10)
    ax.legend()
    print(f"wrote {save_figure(fig, a.out)}")


if __name__ == "__main__":
    main()
