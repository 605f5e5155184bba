"""The output folder of a training run (``bptt train``, ``bptt fit``): never lose a trained run.

A fresh run refuses a folder that holds one (:func:`check_out_is_free`) unless told to
``--resume`` it or to ``--overwrite`` it; with ``--overwrite`` the earlier run is moved into
``OUT/.replaced`` (:func:`set_aside`) and deleted only once the new run has saved a checkpoint,
or put back (:func:`put_back`) if the new run fails before.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

RUN_FILES = ("last", "best", "model", "last.old", "best.old", "log.jsonl", "metrics.json",
             "model.npz")
REPLACED = ".replaced"


def check_out_is_free(out: Path, overwrite: bool) -> None:
    """A fresh run never silently deletes a model trained earlier into the same folder."""
    found = [name for name in RUN_FILES if (out / name).exists()]
    if found and not overwrite:
        raise FileExistsError(
            17, f"already holds a trained run ({', '.join(found)}): continue it with --resume, "
            f"train into another --out DIR, or replace it with --overwrite", str(out))


def set_aside(out: Path) -> Path | None:
    """Move an earlier run's files into ``OUT/.replaced`` (kept until the new run has saved a
    checkpoint; put back if it fails before). None if there was nothing to move."""
    aside = out / REPLACED
    if aside.exists():  # a crash during an earlier --overwrite: aside holds the run to keep
        _remove_run(out)
        return aside
    found = [name for name in RUN_FILES if (out / name).exists()]
    if not found:
        return None
    aside.mkdir()
    for name in found:
        os.replace(out / name, aside / name)
    return aside


def _remove_run(out: Path) -> None:
    for name in RUN_FILES:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def put_back(out: Path, aside: Path) -> None:
    """Undo :func:`set_aside`: the new run's files go, the earlier run's come back."""
    _remove_run(out)
    for p in aside.iterdir():
        os.replace(p, out / p.name)
    aside.rmdir()
