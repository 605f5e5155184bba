"""Checkpoints of language-model training: a directory of .npz and JSON files, no pickles.

    DIR/
      model.npz        parameters by name (``LanguageModel.save_params``)
      config.json      {"model": constructor arguments, "train": the run's settings, ...}
      vocab.json       the vocabulary (``Vocab.to_json``)
      optimizer.npz    ``optimizer.state_dict()`` (scalars as 0-d arrays)      [resumable only]
      rnn_state.npz    the recurrent layers' carried (h, c)                    [resumable only]
      state.json       trainer state (epoch, step, stream position, best ppl, lr, history),
                       RNG state, and the SHA-256 of every other file (checked on load)

Writing is atomic: the files go to a temporary sibling directory, which then replaces DIR by
two renames (the old one is kept as ``DIR.old`` in between and read if DIR is missing), so an
interrupted save never leaves a half-written checkpoint. Loading names the file and the problem
(missing, corrupt, not matching the model).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import to_numpy
from ..data.corpus import Vocab
from ..models.rnnlm import LanguageModel, model_from_config, read_npz
from ..nn.registry import cell_names

FORMAT = "bptt-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint directory is missing, incomplete, corrupt or does not match."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); the checkpoint is corrupt") \
            from None


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


def save_checkpoint(directory: str | os.PathLike[str], model: LanguageModel, vocab: Vocab,
                    config: dict[str, Any] | None = None, optimizer: Any = None,
                    trainer_state: dict[str, Any] | None = None,
                    rng_state: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint directory atomically; returns its path.

    ``config`` is the run's settings (saved under "train"); ``optimizer`` an object with
    ``state_dict()``; ``trainer_state`` any JSON-able dict; ``rng_state`` the bit generator state
    of bptt's RNG. With an optimizer, the recurrent state is saved too (to resume exactly).
    """
    final = Path(directory)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        model.save_params(tmp / "model.npz")
        vocab.to_json(tmp / "vocab.json")
        cfg = {"format": FORMAT, "version": VERSION, "model_class": type(model).__name__,
               "model": model.config, "train": config or {},
               "optimizer": type(optimizer).__name__ if optimizer is not None else None}
        _write_json(tmp / "config.json", cfg)
        if optimizer is not None:
            sd = optimizer.state_dict()
            with open(tmp / "optimizer.npz", "wb") as f:
                np.savez(f, **{k: np.asarray(v) for k, v in sd.items()})
            states = {}
            for i, (h, c) in enumerate(model.get_state()):
                if h is not None:
                    states[f"h{i}"] = to_numpy(h)
                if c is not None:
                    states[f"c{i}"] = to_numpy(c)
            with open(tmp / "rnn_state.npz", "wb") as f:
                np.savez(f, **states)
        files = {p.name: _sha256(p) for p in sorted(tmp.iterdir())}
        _write_json(tmp / "state.json", {"format": FORMAT, "trainer": trainer_state or {},
                                         "rng": rng_state, "files": files})
        for p in tmp.iterdir():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(tmp)
        old = final.with_name(final.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        _fsync_dir(final.parent)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` read. ``model`` holds the saved weights."""

    directory: Path
    model: LanguageModel
    vocab: Vocab
    config: dict[str, Any]
    trainer_state: dict[str, Any] = field(default_factory=dict)
    rng_state: dict[str, Any] | None = None
    optimizer_state: dict[str, Any] | None = None
    rnn_state: list[tuple[Any, Any]] | None = None

    @property
    def train_config(self) -> dict[str, Any]:
        return self.config.get("train", {})

    @property
    def resumable(self) -> bool:
        return self.optimizer_state is not None


def find_checkpoint(path: str | os.PathLike[str]) -> Path:
    """The checkpoint directory meant by ``path``: itself, or ``path/best`` / ``path/last``
    for a training output directory (best preferred)."""
    p = Path(path)
    if not p.exists():
        old = p.with_name(p.name + ".old")
        if old.is_dir():  # a save was interrupted between its two renames
            return old
        raise FileNotFoundError(2, "no such file or directory", str(p))
    if not p.is_dir():
        raise CheckpointError(f"{p} is not a directory; pass the training output directory "
                              f"(--out) or a checkpoint directory holding model.npz")
    if (p / "model.npz").exists() or (p / "state.json").exists():
        return p
    for sub in ("best", "last"):
        if (p / sub).is_dir() or (p / f"{sub}.old").is_dir():
            return find_checkpoint(p / sub)
    raise CheckpointError(f"{p} holds no checkpoint (no model.npz, best/ or last/); "
                          f"train one with `bptt train --out {p}`")


def load_checkpoint(path: str | os.PathLike[str], dtype: Any = None) -> Checkpoint:
    """Read a checkpoint (or the best one of a training output directory), checking each file.

    ``dtype`` overrides the saved parameter dtype (e.g. float64 for checks).
    """
    d = find_checkpoint(path)
    for name in ("state.json", "config.json", "vocab.json", "model.npz"):
        if not (d / name).exists():
            raise CheckpointError(f"checkpoint {d} is incomplete: {name} is missing")
    state = _read_json(d / "state.json")
    if not isinstance(state, dict) or state.get("format") != FORMAT \
            or not isinstance(state.get("files", {}), dict):
        raise CheckpointError(f"{d / 'state.json'} is not a bptt checkpoint state")
    for name, digest in state.get("files", {}).items():
        f = d / name
        if not f.exists():
            raise CheckpointError(f"checkpoint {d} is incomplete: {name} is missing")
        if _sha256(f) != digest:
            raise CheckpointError(f"{f} does not match the checksum recorded when the checkpoint "
                                  f"was saved: the file is corrupt or was replaced")
    cfg = _read_json(d / "config.json")
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT \
            or not isinstance(cfg.get("model"), dict) or not isinstance(cfg.get("version", 0), int):
        raise CheckpointError(f"{d / 'config.json'} is not a bptt checkpoint config")
    if cfg.get("version", 0) > VERSION:
        raise CheckpointError(f"{d} was written by a newer bptt (format version "
                              f"{cfg['version']}); upgrade bptt")
    try:
        vocab = Vocab.from_json(d / "vocab.json")
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    model_cfg = dict(cfg["model"])
    if dtype is not None:
        model_cfg["dtype"] = np.dtype(dtype).name
    if model_cfg.get("vocab_size") != len(vocab):
        raise CheckpointError(f"{d}: vocab.json has {len(vocab)} tokens but the model was built "
                              f"for {model_cfg.get('vocab_size')}; the files do not belong "
                              f"together")
    cell = model_cfg.get("cell", "lstm")
    if isinstance(cell, str) and cell not in cell_names():
        raise CheckpointError(
            f"{d} holds a model of the cell {cell!r}, which is not registered here "
            f"(registered: {', '.join(cell_names())}); register it with bptt.register_cell "
            f"(or install the package that provides it) before loading")
    try:
        model = model_from_config(model_cfg)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{d / 'config.json'}: bad model config ({e})") from None
    try:
        model.load_params(d / "model.npz")
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    ck = Checkpoint(d, model, vocab, cfg, state.get("trainer", {}), state.get("rng"))
    if (d / "optimizer.npz").exists():
        ck.optimizer_state = read_npz(d / "optimizer.npz")
        rnn = read_npz(d / "rnn_state.npz") if (d / "rnn_state.npz").exists() else {}
        ck.rnn_state = [(rnn.get(f"h{i}"), rnn.get(f"c{i}")) for i in range(model.num_layers)]
    return ck
