"""Checkpoints of language models, in the one checkpoint format (:mod:`bptt.train.checkpoint`).

    DIR/
      model.npz        parameters by name (``LanguageModel.save_params``)
      config.json      {"kind": "language-model", "model": constructor arguments,
                        "train": the run's settings, ...}
      vocab.json       the vocabulary (``Vocab.to_json``)
      optimizer.npz    ``optimizer.state_dict()`` (scalars as 0-d arrays)      [resumable only]
      rnn_state.npz    the recurrent layers' carried (h, c)                    [resumable only]
      state.json       trainer state (step, stream position, best ppl, lr, history), RNG state,
                       and the SHA-256 of every other file (checked on load)

Writing is atomic and survives a crash at any instant; loading names the file and the problem
(missing, corrupt, not matching the model, non-finite weights, a cell not registered here).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import to_numpy
from ..data.corpus import Vocab
from ..models.rnnlm import LanguageModel, model_from_config
from ..nn.registry import cell_names
from .checkpoint import (
    CheckpointError,
    check_finite,
    find_checkpoint,
    header,
    read_checkpoint,
    write_checkpoint,
)

__all__ = ["Checkpoint", "CheckpointError", "find_checkpoint", "language_model_files",
           "load_language_model", "optimizer_arrays", "save_checkpoint"]

KIND = "language-model"


def optimizer_arrays(optimizer: Any) -> dict[str, Any]:
    """``optimizer.state_dict()`` as arrays for an .npz (scalars as 0-d arrays)."""
    return {k: np.asarray(v) for k, v in optimizer.state_dict().items()}


def language_model_files(model: LanguageModel, vocab: Vocab, config: dict[str, Any] | None,
                         optimizer_name: str | None, data: dict[str, Any] | None,
                         with_state: bool, states: list[tuple[Any, Any]] | None = None
                         ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The .npz and .json files of a language model's checkpoint (``with_state``: the carried
    recurrent state too, to resume exactly: the model's, or ``states`` -- every stream's,
    gathered from the ranks of a data-parallel run); the optimizer's file is the trainer's."""
    params = {n: to_numpy(p) for n, p in zip(model.param_names, model.params, strict=True)}
    arrays: dict[str, dict[str, Any]] = {"model.npz": params}
    if with_state:
        carried = {}
        for i, (h, c) in enumerate(states if states is not None else model.get_state()):
            if h is not None:
                carried[f"h{i}"] = to_numpy(h)
            if c is not None:
                carried[f"c{i}"] = to_numpy(c)
        arrays["rnn_state.npz"] = carried
    cfg = header(KIND, model_class=type(model).__name__, model=model.config,
                 train=config or {}, optimizer=optimizer_name, data=data or {})
    return arrays, {"config.json": cfg, "vocab.json": vocab.to_dict()}


def save_checkpoint(directory: str | os.PathLike[str], model: LanguageModel, vocab: Vocab,
                    config: dict[str, Any] | None = None, optimizer: Any = None,
                    trainer_state: dict[str, Any] | None = None,
                    rng_state: dict[str, Any] | None = None,
                    data: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint directory atomically; returns its path.

    ``config`` is the run's settings (saved under "train"); ``optimizer`` an object with
    ``state_dict()``; ``trainer_state`` any JSON-able dict; ``rng_state`` the bit generator state
    of bptt's RNG; ``data`` what identifies the training corpus (size, checksum). With an
    optimizer, the recurrent state is saved too (to resume exactly).
    """
    name = type(optimizer).__name__ if optimizer is not None else None
    arrays, documents = language_model_files(model, vocab, config, name, data,
                                             with_state=optimizer is not None)
    if optimizer is not None:
        arrays["optimizer.npz"] = optimizer_arrays(optimizer)
    return write_checkpoint(directory, arrays, documents,
                            {"trainer": trainer_state or {}, "rng": rng_state})


@dataclass
class Checkpoint:
    """What :func:`load_language_model` read. ``model`` holds the saved weights."""

    directory: Path
    model: LanguageModel
    vocab: Vocab
    config: dict[str, Any]
    trainer_state: dict[str, Any] = field(default_factory=dict)
    rng_state: dict[str, Any] | None = None
    optimizer_state: dict[str, Any] | None = None
    rnn_state: list[tuple[Any, Any]] | None = None

    kind = KIND

    @property
    def train_config(self) -> dict[str, Any]:
        return self.config.get("train", {})

    @property
    def resumable(self) -> bool:
        return self.optimizer_state is not None


def load_language_model(path: str | os.PathLike[str], dtype: Any = None) -> Checkpoint:
    """Read a checkpoint (or the best one of a training output directory), checking each file.

    ``dtype`` overrides the saved parameter dtype (e.g. float64 for checks).
    """
    stored = read_checkpoint(path, required=("model.npz", "vocab.json"), kind=KIND)
    d, cfg, state = stored.directory, stored.config, stored.state
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
    params = stored.arrays("model.npz")
    check_finite(d / "model.npz", params)
    try:
        model.set_params(params, source=d / "model.npz")
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    ck = Checkpoint(d, model, vocab, cfg, state.get("trainer", {}), state.get("rng"))
    if stored.has("optimizer.npz"):
        ck.optimizer_state = stored.arrays("optimizer.npz")
        rnn = stored.arrays("rnn_state.npz") if stored.has("rnn_state.npz") else {}
        ck.rnn_state = [(rnn.get(f"h{i}"), rnn.get(f"c{i}")) for i in range(model.num_layers)]
    return ck
