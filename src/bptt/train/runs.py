"""The output folder of a training run (``bptt train``, ``bptt fit``): never lose a trained run.

A fresh run refuses a folder that holds one (:func:`check_out_is_free`) unless told to
``--resume`` it or to ``--overwrite`` it; with ``--overwrite`` the earlier run is moved into
``OUT/.replaced`` (:func:`set_aside`) and deleted only once the new run has saved a checkpoint,
or put back (:func:`put_back`) if the new run fails before. :func:`run_folder` does all of
it around a run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
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


class RunFolder:
    """The output folder of a run in progress; ``aside``: the earlier run it replaces."""

    def __init__(self, out: Path, aside: Path | None) -> None:
        self.out, self.aside = out, aside

    def drop_replaced(self) -> None:
        """Delete the earlier run, once the new one has a checkpoint (``OUT/last``)."""
        if self.aside is not None and (self.out / "last").exists():
            shutil.rmtree(self.aside, ignore_errors=True)
            self.aside = None


@contextmanager
def run_folder(out: Path, replace: bool) -> Iterator[RunFolder]:
    """Make ``out`` ready for a run (``replace``: set an earlier run aside). If the run fails
    before its first checkpoint, the earlier run comes back (or a folder made here and left
    empty goes); when it ends, the earlier run is deleted."""
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    folder = RunFolder(out, set_aside(out) if replace else None)
    try:
        yield folder
    except BaseException:
        if folder.aside is not None and not (out / "last").exists():
            put_back(out, folder.aside)  # the new run saved nothing: the earlier one stays
        elif made and out.exists() and not any(out.iterdir()):
            out.rmdir()  # nothing was written: leave no empty folder behind
        raise
    folder.drop_replaced()
