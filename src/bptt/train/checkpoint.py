"""The one checkpoint format: a directory of ``.npz`` and JSON files, checksummed, no pickles.

    DIR/
      config.json      {"format": "bptt-checkpoint", "version": 1, "kind": "language-model" |
                        "sequence-regressor" | ..., "model": constructor arguments, ...}
      model.npz        parameters by name
      optimizer.npz    ``optimizer.state_dict()``                               [resumable]
      *.npz, *.json    what the kind needs besides (vocabulary, recurrent state, ...)
      state.json       trainer state, RNG state, and the SHA-256 of every other file

Every model kind (language models, sequence estimators, MLP classifiers) is saved this way; the
kind's own module says which files it writes and how it rebuilds the model.

Writing is atomic and survives a crash at any instant. The files go to a temporary sibling
``.DIR.tmp-*``; ``state.json``, written last, marks it complete. It then replaces DIR by two
renames (``DIR -> DIR.old``, ``tmp -> DIR``). A crash between them leaves ``DIR.old``, or only
the complete temporary directory: readers take whichever is there, and the next save first puts
it back in place (:func:`recover`) and removes the temporary directories of crashed saves.

Reading checks ``state.json`` against its schema, refuses a checkpoint without checksums, and
compares every file's SHA-256: a problem is one :class:`CheckpointError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import json_text, umask_mode
from ..atomic import read_npz as read_arrays

FORMAT = "bptt-checkpoint"
VERSION = 1
_HEX = re.compile(r"[0-9a-f]{64}")
_TMP = ".{}.tmp-"


class CheckpointError(ValueError):
    """A checkpoint directory is missing, incomplete, corrupt or does not match."""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json_text(obj) + "\n", encoding="utf-8")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"),
                          parse_constant=lambda c: _bad_constant(path, c))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); the checkpoint is corrupt") \
            from None
    except OSError as e:
        raise CheckpointError(f"{path} cannot be read ({e.strerror})") from None


def _bad_constant(path: Path, c: str) -> Any:
    raise CheckpointError(f"{path} holds {c}, which is not JSON; the checkpoint is corrupt")


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an .npz (pickles refused), or a CheckpointError naming the file."""
    try:
        return read_arrays(path)
    except (ValueError, OSError) as e:
        raise CheckpointError(str(e)) from None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _old(final: Path) -> Path:
    return final.with_name(final.name + ".old")


def _temporaries(final: Path) -> list[Path]:
    if not final.parent.is_dir():
        return []
    prefix = _TMP.format(final.name)
    return sorted((p for p in final.parent.iterdir() if p.name.startswith(prefix)),
                  key=lambda p: p.stat().st_mtime, reverse=True)


def _complete(d: Path) -> bool:
    """A directory whose state.json exists and whose files match their checksums."""
    try:
        state = json.loads((d / "state.json").read_text(encoding="utf-8"))
        files = state["files"]
        return bool(files) and all(sha256(d / n) == h for n, h in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def recover(final: Path) -> Path | None:
    """After a crash during a save: put DIR back from DIR.old or from a complete temporary
    directory, and remove what crashed saves left. Returns DIR if it exists afterwards."""
    final = Path(final)
    old = _old(final)
    if not final.exists():
        if old.is_dir():
            os.replace(old, final)
        else:
            for tmp in _temporaries(final):
                if _complete(tmp):
                    os.replace(tmp, final)
                    break
    if final.exists() and old.exists():
        shutil.rmtree(old, ignore_errors=True)
    for tmp in _temporaries(final):
        shutil.rmtree(tmp, ignore_errors=True)
    return final if final.exists() else None


def write_checkpoint(directory: str | os.PathLike[str], arrays: dict[str, dict[str, Any]],
                     documents: dict[str, Any], state: dict[str, Any]) -> Path:
    """Write ``arrays`` (file name -> {name: array}) and ``documents`` (file name -> JSON-able)
    plus ``state.json`` (``state`` with the files' checksums) atomically; returns DIR."""
    final = Path(directory)
    final.parent.mkdir(parents=True, exist_ok=True)
    recover(final)
    tmp = Path(tempfile.mkdtemp(prefix=_TMP.format(final.name), dir=final.parent))
    try:
        for name, content in arrays.items():
            with open(tmp / name, "wb") as f:
                np.savez(f, **{k: np.asarray(v) for k, v in content.items()})
        for name, doc in documents.items():
            write_json(tmp / name, doc)
        files = {p.name: sha256(p) for p in sorted(tmp.iterdir())}
        doc = {"format": FORMAT, **state, "files": files}
        write_json(tmp / "state.json", {**doc, _SELF: _digest(doc)})
        for p in tmp.iterdir():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(tmp)
        _follow_umask(tmp)
        if final.exists():
            os.replace(final, _old(final))
        os.replace(tmp, final)
        _fsync_dir(final.parent)
        shutil.rmtree(_old(final), ignore_errors=True)
    finally:
        if tmp.exists() and final.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _follow_umask(d: Path) -> None:
    """mkdtemp makes 0700 directories: give the checkpoint the modes the umask asks for."""
    os.chmod(d, umask_mode(0o777))
    for p in d.iterdir():
        os.chmod(p, umask_mode())


def header(kind: str, **fields: Any) -> dict[str, Any]:
    """config.json of a checkpoint of ``kind``: the format, its version and the kind, then the
    kind's own fields (its model's constructor arguments, its settings, ...). Every kind stamps
    its checkpoints here; :mod:`bptt.train.kinds` opens them by this kind."""
    return {"format": FORMAT, "version": VERSION, "kind": kind, **fields}


REPLACED = ".replaced"  # a run's folder: where --overwrite keeps the earlier run (train/run.py)


def find_checkpoint(path: str | os.PathLike[str]) -> Path:
    """The checkpoint directory meant by ``path``: itself, or ``path/best`` / ``path/last``
    for a training output directory (best preferred); after a crash, what :func:`recover`
    would put in place (nothing is moved: a reader may not own the directory)."""
    p = Path(path)
    if not p.exists():
        for candidate in (_old(p), *_temporaries(p)):
            if candidate.is_dir() and _complete(candidate):
                return candidate
        raise FileNotFoundError(2, "no such file or directory", str(p))
    if not p.is_dir():
        raise CheckpointError(f"{p} is not a directory; pass the training output directory "
                              f"(--out) or a checkpoint directory holding model.npz")
    if (p / "model.npz").exists() or (p / "state.json").exists():
        return p
    for sub in ("best", "last", f"{REPLACED}/best", f"{REPLACED}/last"):
        try:  # OUT/.replaced: a run set aside by an --overwrite that was killed before the
            return find_checkpoint(p / sub)  # new run saved (the next writer puts it back)
        except FileNotFoundError:
            continue
    raise CheckpointError(f"{p} holds no checkpoint (no model.npz, best/ or last/); "
                          f"train one with `bptt train --out {p}`")


# what each kind of checkpoint is for: named when a command is given the wrong kind
KIND_USES = {
    "language-model": "bptt eval, generate, explain, export and plot gates|states",
    "seq2seq": "bptt seq2seq eval|translate and bptt plot attention",
    "sequence-regressor": "bptt export (ONNX) and SequenceRegressor.load",
    "sequence-classifier": "bptt export (ONNX) and SequenceClassifier.load",
}


@dataclass
class StoredCheckpoint:
    """A checkpoint directory whose files were checked: its config and state documents."""

    directory: Path
    config: dict[str, Any]
    state: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.config.get("kind", "language-model"))

    def has(self, name: str) -> bool:
        return name in self.state["files"]

    def arrays(self, name: str) -> dict[str, np.ndarray]:
        return read_npz(self.directory / name)

    def document(self, name: str) -> Any:
        return read_json(self.directory / name)


def _require_kind(directory: Path, kind: str, wanted: str) -> None:
    """A one-line error naming what the checkpoint holds and what it is for, unless it holds
    a ``wanted`` model."""
    if kind != wanted:
        uses = KIND_USES.get(kind)
        raise CheckpointError(f"{directory} holds a {kind} model, not a "
                              f"{wanted.replace('-', ' ')}" + (f": it is for {uses}" if uses
                                                               else ""))


def read_checkpoint(path: str | os.PathLike[str], required: tuple[str, ...] = ("model.npz",),
                    kind: str | None = None) -> StoredCheckpoint:
    """Find and check a checkpoint: state.json's schema, every file's checksum, config.json's
    format and version, and that the ``required`` files are there; with ``kind``, that it holds
    that kind of model (checked first: another kind lacks other files)."""
    d = find_checkpoint(path)
    state_file = d / "state.json"
    if not state_file.exists():
        raise CheckpointError(f"checkpoint {d} is incomplete: state.json is missing")
    state = read_json(state_file)
    _check_state(state_file, state)
    config_file = d / "config.json"
    if (kind is not None and config_file.is_file()
            and sha256(config_file) == state["files"].get("config.json")):
        config = read_json(config_file)
        if isinstance(config, dict):
            _require_kind(d, str(config.get("kind", "language-model")), kind)
    for name in ("config.json", *required):  # the essential files first
        if name not in state["files"] or not (d / name).is_file():
            raise CheckpointError(f"checkpoint {d} is incomplete: {name} is missing")
    for name, digest in state["files"].items():
        f = d / name
        if not f.is_file():
            raise CheckpointError(f"checkpoint {d} is incomplete: {name} is missing")
        if sha256(f) != digest:
            raise CheckpointError(f"{f} does not match the checksum recorded when the checkpoint "
                                  f"was saved: the file is corrupt or was replaced")
    cfg = read_json(d / "config.json")
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        raise CheckpointError(f"{d / 'config.json'} is not a bptt checkpoint config")
    version = cfg.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise CheckpointError(f"{d / 'config.json'}: field 'version' must be an integer, got "
                              f"{version!r}")
    if version > VERSION:
        raise CheckpointError(f"{d} was written by a newer bptt (checkpoint format version "
                              f"{version}; this bptt reads version {VERSION}): upgrade bptt")
    for name in ("model", "train", "data"):
        if name in cfg and not isinstance(cfg[name], dict) and cfg[name] is not None:
            raise CheckpointError(f"{d / 'config.json'}: field {name!r} must be an object")
    if not isinstance(cfg.get("model"), dict):
        raise CheckpointError(f"{d / 'config.json'}: field 'model' must be an object")
    return StoredCheckpoint(d, cfg, state)


_SELF = "state_sha256"  # state.json's own checksum: of its other fields, as written


def _digest(doc: dict[str, Any]) -> str:
    return hashlib.sha256(json_text(doc).encode("utf-8")).hexdigest()


def _check_state(path: Path, state: Any) -> None:
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a bptt checkpoint state")
    if _SELF in state:  # checkpoints written before it have none: their fields are checked
        rest = {k: v for k, v in state.items() if k != _SELF}
        if state[_SELF] != _digest(rest):
            raise CheckpointError(f"{path} does not match its own checksum: the file is "
                                  f"corrupt or was edited")
    files = state.get("files")
    if not isinstance(files, dict) or not files:
        raise CheckpointError(f"{path}: field 'files' (the checksums of the checkpoint's files) "
                              f"is missing or empty; a checkpoint without checksums is refused")
    for name, digest in files.items():
        if not isinstance(digest, str) or not _HEX.fullmatch(digest) or "/" in name \
                or name in ("", ".", "..", "state.json"):
            raise CheckpointError(f"{path}: field 'files' has a bad entry {name!r}: "
                                  f"{digest!r}")
    if not isinstance(state.get("trainer", {}), dict):
        raise CheckpointError(f"{path}: field 'trainer' must be an object")
    rng = state.get("rng")
    if rng is not None and not isinstance(rng, dict):
        raise CheckpointError(f"{path}: field 'rng' must be an object or null")
    if rng is not None:
        try:
            checked_rng_state(rng, f"{path}: field 'rng'")
        except ValueError as e:
            raise CheckpointError(str(e)) from None


def checked_rng_state(state: Any, where: str = "state.json: field 'rng'") -> dict[str, Any]:
    """``state`` if it is a valid state of NumPy's default bit generator (PCG64), else a
    ValueError naming ``where`` (a corrupt or edited checkpoint, not a traceback)."""
    probe = np.random.PCG64()
    try:
        if not isinstance(state, dict):
            raise TypeError(type(state).__name__)
        probe.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as e:
        raise ValueError(f"{where} is not a valid random generator state ({type(e).__name__}: "
                         f"{e}); the checkpoint is corrupt and cannot be resumed") from None
    return state


def check_finite(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Refuse NaN or infinite parameters, naming the first one."""
    for name, a in arrays.items():
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise CheckpointError(f"{path}: parameter {name} holds NaN or infinite values; "
                                  f"the model diverged before it was saved (or the file was "
                                  f"edited)")
