"""Check, without a GPU, that the installed CuPy has every name bptt's device code may use.

    pip install 'cupy-cuda12x>=13,<14'   # or >=14,<15; imports without a GPU or a driver
    python scripts/cupy_names.py

Device code is tested on the device double (``bptt.device_double``), which refuses any name
it does not offer; so if CuPy has every name the double offers (module functions, ufuncs and
their ``at``, types, ``linalg``/``random``, transfers, ndarray methods), no call that passes
on the double meets a missing name on that CuPy. Prints the version and what is missing;
exits 1 if anything is. Names only: the arithmetic waits for a GPU (``scripts/gpu_check.py``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def missing_names(cupy: Any, offered: dict[str, list[str]]) -> dict[str, list[str]]:
    """The offered names ``cupy`` lacks, by kind ({} when none)."""
    def has(obj: Any, dotted: str) -> bool:
        for part in dotted.split("."):
            if not hasattr(obj, part):
                return False
            obj = getattr(obj, part)
        return True

    out = {
        "functions": [n for n in offered["functions"] if not has(cupy, n)],
        "types": [n for n in offered["types"] if not has(cupy, n)],
        "ufunc.at": [n for n in offered["ufunc.at"] if not has(cupy, f"{n}.at")],
        "submodules": [n for n in offered["submodules"] if not has(cupy, n)],
        "transfers": [n for n in offered["transfers"] if not has(cupy, n)],
        "ndarray": [n for n in offered["ndarray"] if not has(cupy.ndarray, n)],
    }
    return {kind: names for kind, names in out.items() if names}


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    try:
        import cupy
    except ImportError as e:
        print(f"error: CuPy is not installed ({e}); pip install cupy-cuda12x, then run this "
              f"again", file=sys.stderr)
        return 2
    from bptt.device_double import offered_names

    offered = offered_names()
    missing = missing_names(cupy, offered)
    total = sum(len(v) for v in offered.values())
    if missing:
        print(f"CuPy {cupy.__version__}: missing {missing}")
        return 1
    print(f"CuPy {cupy.__version__}: all {total} names the device double offers are there")
    return 0


if __name__ == "__main__":
    sys.exit(main())
