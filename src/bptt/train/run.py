"""A training run's output folder, for every kind of run (``bptt train``, ``bptt seq2seq
train``, ``bptt fit``): opened once, the same promises for each.

``OUT/run.json`` is the run's header: its kind, the names of the files it writes, and the
fingerprint of its training data. Around a run, :class:`Run`

- takes a lock on the folder: a second writer is refused in one line (POSIX ``flock``);
- refuses a fresh run in a folder that holds one, unless told to ``--resume`` or
  ``--overwrite`` it, and refuses to write over files that are not a run's;
- with ``--overwrite`` moves the earlier run (only the files its header claims) into
  ``OUT/.replaced``, deletes it once the new run has saved a checkpoint, and puts it back if
  the new run stops before; an earlier run left there by a crash is put back (no checkpoint
  in OUT) or dropped (the new run has one) by the next writer, and readers find it meanwhile
  (:func:`bptt.train.checkpoint.find_checkpoint`);
- on ``--resume``, refuses other training data than the run's (``--force`` continues);
- turns SIGTERM into what Ctrl-C does (the trainer saves and stops);
- makes every refusal on all ranks of a data-parallel run alike (rank 0 decides, every rank
  raises the same error), so no rank waits forever for a rank that has left.

Usage (every pipeline)::

    with Run(out, "seq2seq", resume=..., overwrite=..., force=..., comm=comm) as run:
        ...                      # load the checkpoint (resume), the data, build the model
        run.check_data(fingerprint(data))
        with run.training():
            trainer = Trainer(..., on_step=run.on_step(on_step))
            trainer.fit()
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..atomic import write_json_atomic
from .checkpoint import FORMAT, REPLACED, CheckpointError, find_checkpoint, read_json
from .comm import SingleProcess

try:  # POSIX; elsewhere runs are not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

HEADER = "run.json"
LOCK = ".lock"
HEADER_FORMAT = "bptt.run"
# what a run of each kind may write into OUT (the plot goes where --plot says)
KIND_FILES = {
    "language-model": ("last", "best", "last.old", "best.old", "log.jsonl", "metrics.json"),
    "seq2seq": ("last", "best", "last.old", "best.old", "log.jsonl", "metrics.json"),
    "fit": ("last", "best", "model", "last.old", "best.old", "model.old", "log.jsonl",
            "metrics.json"),
}
# runs written before the header: these names, when a bptt checkpoint is beside them
LEGACY_FILES = ("last", "best", "model", "last.old", "best.old", "log.jsonl", "metrics.json",
                "model.npz")
_CHECKPOINTS = ("last", "best", "model")


def _is_checkpoint(path: Path) -> bool:
    """A directory bptt wrote: its state.json names bptt's checkpoint format."""
    try:
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and state.get("format") == FORMAT


def read_header(folder: Path) -> dict[str, Any] | None:
    """The run header of ``folder``, or None (no header: a run of an earlier bptt, or none)."""
    path = folder / HEADER
    if not path.exists():
        return None
    header = read_json(path)
    if (not isinstance(header, dict) or header.get("format") != HEADER_FORMAT
            or not isinstance(header.get("files"), list)
            or not all(isinstance(n, str) and "/" not in n for n in header["files"])):
        raise CheckpointError(f"{path} is not a bptt run header (corrupt or edited); move it "
                              f"away to treat the folder as holding no run")
    return header


def run_files(folder: Path) -> list[str]:
    """The names in ``folder`` that belong to a run there (the header included): those its
    header claims, or for a run written before headers, bptt's names beside a checkpoint.
    Nothing else is ever moved or deleted."""
    header = read_header(folder)
    if header is not None:
        return [n for n in header["files"] if (folder / n).exists()] + [HEADER]
    if not any(_is_checkpoint(folder / n) for n in _CHECKPOINTS):
        return []
    return [n for n in LEGACY_FILES if (folder / n).exists()
            and (n in ("log.jsonl", "metrics.json", "model.npz") or _is_checkpoint(folder / n)
                 or n.endswith(".old"))]


def _remove(folder: Path, names: list[str]) -> None:
    for name in names:
        target = folder / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()


def _has_checkpoint(folder: Path) -> bool:
    """Whether ``folder`` holds a checkpoint of a run (one cut short between the renames of a
    save included)."""
    for name in ("last", "best"):
        try:
            if _is_checkpoint(find_checkpoint(folder / name)):
                return True
        except (FileNotFoundError, CheckpointError):
            continue
    return False


def settle_replaced(out: Path) -> str | None:
    """After a crash during ``--overwrite``: put the run kept in ``OUT/.replaced`` back if the
    new run saved no checkpoint, else drop it (the new run replaced it). Says what it did."""
    aside = out / REPLACED
    if not aside.is_dir():
        return None
    if _has_checkpoint(out):
        shutil.rmtree(aside, ignore_errors=True)
        return None
    put_back(out, aside)
    return (f"{out}: put back the run that an earlier --overwrite set aside in {REPLACED} "
            f"(the replacing run stopped before its first checkpoint)")


def put_back(out: Path, aside: Path) -> None:
    """The run set aside in ``aside`` back into ``out``, in place of what the new run wrote."""
    _remove(out, run_files(out))
    for p in aside.iterdir():
        os.replace(p, out / p.name)
    aside.rmdir()


def fingerprint(name: str, unit: str, size: int, chunks: Iterator[bytes] | list[bytes]
                ) -> dict[str, Any]:
    """The fingerprint of a run's training data: a description and the SHA-256 of its bytes."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return {"name": name, "unit": unit, "size": int(size), "sha256": digest.hexdigest()}


class Run:
    """The output folder of one training run, on every rank of a data-parallel run (rank 0
    alone touches files; see the module docstring). A context manager: the lock is held
    until it exits."""

    def __init__(self, out: str | os.PathLike[str], kind: str, *, resume: bool = False,
                 overwrite: bool = False, force: bool = False, comm: Any = None,
                 command: str = "bptt train") -> None:
        if kind not in KIND_FILES:
            raise ValueError(f"unknown run kind {kind!r}: one of {', '.join(KIND_FILES)}")
        if isinstance(out, str) and not out.strip():
            raise ValueError("--out is empty: name the folder for the run (e.g. --out runs/x)")
        if resume and overwrite:
            raise ValueError("--resume continues the run in --out, --overwrite replaces it: "
                             "give one of them")
        self.out, self.kind = Path(out), kind
        self.resume, self.overwrite, self.force = resume, overwrite, force
        self.comm = comm if comm is not None else SingleProcess()
        self.command = command
        self.writer = self.comm.rank == 0
        self.aside: Path | None = None
        self._lock: Any = None
        self._made = False
        self._data: dict[str, Any] | None = None

    # -- every rank alike -------------------------------------------------------------------
    def _agree(self, check: Callable[[], Any]) -> Any:
        """``check()`` on rank 0; its error (or its result) on every rank alike."""
        outcome: tuple[str, Any] = ("ok", None)
        if self.writer:
            try:
                outcome = ("ok", check())
            except (OSError, ValueError, CheckpointError, RuntimeError) as e:
                outcome = ("error", e)
        if self.comm.size > 1:
            outcome = self.comm.bcast(outcome, root=0)
        if outcome[0] == "error":
            raise outcome[1]
        return outcome[1]

    def __enter__(self) -> Run:
        self._agree(self._open)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._unlock()

    # -- rank 0 ------------------------------------------------------------------------------
    def _open(self) -> None:
        out = self.out
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(20, "is a file, not a folder: choose another --out",
                                     str(out))
        self._made = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            done = settle_replaced(out)
            if done:
                warnings.warn(done, stacklevel=2)
            if self.resume:
                try:  # a save cut short between its renames is still found
                    find_checkpoint(out / "last")
                except FileNotFoundError:
                    raise FileNotFoundError(2, "nothing to resume: no checkpoint (train "
                                            "without --resume first)",
                                            str(out / "last")) from None
            else:
                self._check_free()
        except BaseException:
            self._unlock()
            raise

    def _take_lock(self) -> None:
        if fcntl is None:
            return
        path = self.out / LOCK
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                holder = ""
                try:
                    holder = f" (process {path.read_text().strip()})"
                except OSError:
                    pass
                raise RuntimeError(f"{self.out} is in use by another bptt run{holder}: wait "
                                   f"for it to end, or choose another --out") from None
            try:  # the file may have been removed by the holder we waited for: lock anew
                if os.fstat(fd).st_ino == os.stat(path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock = fd

    def _unlock(self) -> None:
        if self._lock is None:
            return
        try:
            (self.out / LOCK).unlink()
        except OSError:
            pass
        os.close(self._lock)  # closing releases the lock
        self._lock = None
        if self._made and self.out.is_dir() and not any(self.out.iterdir()):
            self.out.rmdir()  # nothing was written: leave no empty folder behind

    def _check_free(self) -> None:
        """A fresh run never silently deletes a run trained earlier into the folder, nor
        writes over files that are not a run's."""
        out = self.out
        found = [n for n in run_files(out) if n != HEADER]
        if found and not self.overwrite:
            raise FileExistsError(
                17, f"already holds a trained run ({', '.join(found)}): continue it with "
                    f"--resume, train into another --out DIR, or replace it with --overwrite",
                str(out))
        ours = set(run_files(out))
        foreign = [n for n in KIND_FILES[self.kind] if (out / n).exists() and n not in ours]
        if foreign:
            raise FileExistsError(
                17, f"holds {', '.join(foreign)}, which {self.command} would write over and "
                    f"which is not part of a bptt run: choose another --out", str(out))

    # -- the training data -------------------------------------------------------------------
    def check_data(self, now: dict[str, Any], then: dict[str, Any] | None = None) -> None:
        """Resuming, refuse other training data than the run's (``then``: the fingerprint a
        run without header recorded elsewhere) unless forced; remembered for the header."""
        self._data = now

        def check() -> None:
            if not self.resume:
                return
            header = read_header(self.out)
            stored = header.get("data") if header is not None else then
            if not isinstance(stored, dict) or not stored.get("sha256"):
                return  # a run of an earlier bptt recorded none
            if stored["sha256"] == now["sha256"] or self.force:
                return
            unit = now.get("unit", "items")
            raise ValueError(
                f"the training data changed since the run in {self.out} was saved "
                f"({stored.get('name')}: {stored.get('size', 0):,} {stored.get('unit', unit)} "
                f"then, {now['name']}: {now['size']:,} {unit} now, other content); resume "
                f"with the same data, or pass --force to continue on this data")

        self._agree(check)

    # -- around training ---------------------------------------------------------------------
    @contextmanager
    def training(self) -> Iterator[Run]:
        """Set an earlier run aside (``--overwrite``), write the header, treat SIGTERM as
        Ctrl-C; if the run stops before its first checkpoint, the earlier run comes back."""
        if self.writer:
            if not self.resume:
                self._set_aside()
            self._write_header()
        old = _sigterm_as_interrupt()
        try:
            yield self
        except BaseException:
            if self.writer and self.aside is not None and not (self.out / "last").exists():
                self._put_back()  # the new run saved nothing: the earlier one stays
            raise
        finally:
            if old is not None:
                signal.signal(signal.SIGTERM, old)
        self.drop_replaced()

    def on_step(self, then: Callable[[Any], None] | None = None) -> Callable[[Any], None]:
        """An ``on_step`` for the Trainer: drops the replaced run at the first checkpoint."""
        def step(trainer: Any) -> None:
            self.drop_replaced()
            if then is not None:
                then(trainer)
        return step

    def drop_replaced(self) -> None:
        """Delete the earlier run, once the new one has a checkpoint (``OUT/last``)."""
        if self.aside is not None and (self.out / "last").exists():
            shutil.rmtree(self.aside, ignore_errors=True)
            self.aside = None

    def _set_aside(self) -> None:
        names = run_files(self.out)
        if not names:
            return
        aside = self.out / REPLACED
        aside.mkdir()
        for name in names:
            os.replace(self.out / name, aside / name)
        self.aside = aside

    def _put_back(self) -> None:
        assert self.aside is not None
        put_back(self.out, self.aside)
        self.aside = None

    def _write_header(self) -> None:
        header = read_header(self.out) if self.resume else None
        files = sorted(set(KIND_FILES[self.kind]) | set(header["files"] if header else ()))
        data = self._data if self._data is not None else (header or {}).get("data")
        write_json_atomic(self.out / HEADER, {"format": HEADER_FORMAT, "version": 1,
                                              "kind": self.kind, "files": files,
                                              "data": data})


def _sigterm_as_interrupt() -> Any:
    """SIGTERM raises KeyboardInterrupt (the trainer's Ctrl-C path: save, stop); returns the
    handler it replaced, or None where it cannot (not the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        current = signal.getsignal(signal.SIGINT)
        if callable(current) and current is not signal.default_int_handler:
            current(signal.SIGINT, frame)  # the trainer's: save after this step, then stop
        else:
            raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)
