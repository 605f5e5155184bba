"""Settings of a language-model training run, and the presets of the book's recipes.

A field left None takes the preset's value; with no preset, ``tiny`` for the built-in corpus,
``rnnlm`` (the book's ch. 6 recipe) for the PTB and ``text`` for your own text (words or
characters: chosen by measurement against PyTorch's defaults, docs/results.md).

| preset       | model                                  | N x T   | optimizer     | clip | epochs |
| ------------ | -------------------------------------- | ------- | ------------- | ---- | ------ |
| tiny         | 1 LSTM, D 64, H 128                    | 20 x 35 | Adam lr 0.005 | 1.0  | 10     |
| simple-rnnlm | 1 tanh RNN, D = H = 100 (ch. 5)        | 10 x 5  | SGD lr 0.1    | none | 4      |
| rnnlm        | 1 LSTM, D = H = 100 (ch. 6)            | 20 x 35 | SGD lr 20     | 0.25 | 4      |
| text         | 1 LSTM, D = H = 200                    | 20 x 35 | Adam lr 0.002 | 1.0  | 10     |
| better-rnnlm | 2 LSTM, D = H = 650, dropout .5, tied  | 20 x 35 | SGD lr 20     | 0.25 | 40     |
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import optim as _optim
from ..data.tokenizers import check_tokenizer
from ..models.rnnlm import INIT_SCHEMES
from ..nn.registry import cell_names
from ..validate import check_sizes

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(cell="lstm", layers=1, embed=64, hidden=128, dropout=0.0, tie=False, batch=20,
                 bptt=35, optimizer="adam", lr=0.005, clip=1.0, epochs=10),
    # your own text (--data FILE or DIR, words or characters): the settings measured no worse
    # than PyTorch's defaults at equal steps on several texts (benchmarks/init_vs_torch.py)
    "text": dict(cell="lstm", layers=1, embed=200, hidden=200, dropout=0.0, tie=False,
                 batch=20, bptt=35, optimizer="adam", lr=0.002, clip=1.0, epochs=10),
    # the book's recipes (and the cpu-hour run) keep the book's initial weights: their
    # documented perplexities were measured with them
    "simple-rnnlm": dict(cell="rnn", layers=1, embed=100, hidden=100, dropout=0.0, tie=False,
                         batch=10, bptt=5, optimizer="sgd", lr=0.1, clip=0.0, epochs=4,
                         init="book"),
    "rnnlm": dict(cell="lstm", layers=1, embed=100, hidden=100, dropout=0.0, tie=False,
                  batch=20, bptt=35, optimizer="sgd", lr=20.0, clip=0.25, epochs=4,
                  init="book"),
    "better-rnnlm": dict(cell="lstm", layers=2, embed=650, hidden=650, dropout=0.5, tie=True,
                         batch=20, bptt=35, optimizer="sgd", lr=20.0, clip=0.25, epochs=40,
                         init="book"),
    "cpu-hour": dict(cell="lstm", layers=2, embed=300, hidden=300, dropout=0.4, tie=True,
                     batch=20, bptt=35, optimizer="sgd", lr=20.0, clip=0.25, epochs=18,
                     lr_decay=1.6, decay_after=10, max_minutes=56.0, init="book", cache=True),
    # AWD-LSTM (Merity et al. 2017) for a GPU: 3 LSTM layers 1150, 1150, 400 under a tied
    # 400-wide embedding; one dropout ratio for AWD's four (0.4 in, 0.25 between, 0.4 out)
    "awd": dict(cell="lstm", layers=3, embed=400, hidden=1150, last_hidden=400, dropout=0.4,
                variational=True, tie=True, weight_drop=0.5, embed_dropout=0.1, ar=2.0,
                tar=1.0, variable_bptt=True, batch=80, bptt=70, optimizer="ntasgd", lr=30.0,
                clip=0.25, lr_decay=1.0, epochs=750),
}
# what a setting is when neither the command line nor the preset gives it
UNLESS_PRESET: dict[str, Any] = {"lr_decay": 4.0, "weight_drop": 0.0, "embed_dropout": 0.0,
                                 "ar": 0.0, "tar": 0.0, "variational": False,
                                 "variable_bptt": False, "cache": False,
                                 # measured: benchmarks/init_vs_torch.py, docs/results.md
                                 "init": "torch"}
OPTIMIZERS = tuple(_optim.OPTIMIZERS)


def default_preset(data: str | None) -> str:
    """The preset of a run that names none: ``tiny`` for the built-in corpus, the book's
    ``rnnlm`` for the PTB, ``text`` for your own text."""
    if data in (None, "builtin"):
        return "tiny"
    if data == "ptb" or (Path(data) / "ptb.train.txt").is_file():
        return "rnnlm"
    return "text"
# learning rate when --optimizer differs from the preset's and no --lr is given
DEFAULT_LR = {"sgd": 20.0, "momentum": 1.0, "nesterov": 1.0, "adagrad": 0.1, "rmsprop": 0.002,
              "adam": 0.002, "ntasgd": 30.0}
# settings a resumed run may change; all others must match the checkpoint (the data file may
# move: its content must match the run's fingerprint, train/run.py)
RESUME_MAY_CHANGE = ("epochs", "max_steps", "max_minutes", "quiet", "plot", "resume", "out",
                     "overwrite", "force", "device", "log_every", "data", "cache")


@dataclass
class TrainConfig:
    """Everything ``bptt train`` can set (None: from the preset). See the module docstring."""

    data: str | None = None          # None/'builtin', 'ptb', or a path
    level: str = "word"
    tokenizer: str = "whitespace"    # whitespace | janome | bpe | unigram (data.tokenizers)
    preset: str | None = None
    cell: str | None = None
    layers: int | None = None
    embed: int | None = None
    hidden: int | None = None
    last_hidden: int | None = None   # the last recurrent layer's size (default: hidden)
    init: str | None = None          # book | torch | orthogonal (bptt.models.rnnlm)
    dropout: float | None = None
    variational: bool | None = None
    weight_drop: float | None = None  # AWD-LSTM's regularisers (bptt.nn.regularizers); 0: off
    embed_dropout: float | None = None
    ar: float | None = None
    tar: float | None = None
    tie: bool | None = None
    variable_bptt: bool | None = None  # AWD-LSTM's random window lengths around --bptt
    batch: int | None = None
    bptt: int | None = None
    optimizer: str | None = None
    lr: float | None = None
    clip: float | None = None        # 0: no clipping
    lr_decay: float | None = None    # lr /= lr_decay when valid ppl does not improve (1: never;
                                     # default 4, the book's)
    decay_after: int | None = None   # from this epoch's end on: lr /= lr_decay after every epoch
    epochs: int | None = None
    max_steps: int | None = None
    max_minutes: float | None = None
    seed: int = 0
    dtype: str = "float32"
    device: str | None = None
    out: str = "runs/lm"
    resume: bool = False
    overwrite: bool = False          # a fresh run may replace a trained model in ``out``
    force: bool = False              # resume even though the training data changed
    plot: str | None = None
    quiet: bool = False
    eval_batch: int = 10             # the book's eval_perplexity: 10 streams, 35 steps
    cache: bool | None = None        # the test perplexity also with the continuous cache
                                     # (bptt.train.neural_cache), tuned on valid
    eval_bptt: int = 35
    min_freq: int = 1
    max_size: int | None = None
    log_every: int = 100

    def resolved(self) -> TrainConfig:
        """A copy with every None model/optimizer field filled from the preset, checked."""
        preset = self.preset or default_preset(self.data)
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
        values = {**UNLESS_PRESET, **PRESETS[preset]}
        given = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        if "optimizer" in given and given["optimizer"] != values["optimizer"] \
                and "lr" not in given:
            values["lr"] = DEFAULT_LR.get(given["optimizer"], values["lr"])
        values.update(given)
        values["preset"] = preset
        cfg = TrainConfig(**values)
        cfg.check()
        return cfg

    def check(self) -> None:
        """Raise ValueError naming the first bad setting."""
        if self.level not in ("word", "char"):
            raise ValueError(f"--level must be word or char, got {self.level!r}")
        check_tokenizer(self.tokenizer)
        if self.cell not in cell_names():
            raise ValueError(f"--cell must be one of {', '.join(cell_names())} (registered "
                             f"cells), got {self.cell!r}")
        if self.init not in INIT_SCHEMES:
            raise ValueError(f"--init must be one of {', '.join(INIT_SCHEMES)}, got "
                             f"{self.init!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}: choose one of "
                             f"{', '.join(OPTIMIZERS)}")
        # the model's sizes: checked by the library's one check, in its names (the command
        # line names the flags: bptt.cli.FLAGS)
        check_sizes(embed_size=self.embed, hidden_size=self.hidden, num_layers=self.layers,
                    **({} if self.last_hidden is None else {"last_hidden": self.last_hidden}))
        for name in ("batch", "bptt", "epochs", "eval_batch", "eval_bptt", "min_freq",
                     "log_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, "
                                 f"got {v!r}")
        for name in ("max_steps", "max_size", "decay_after"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, "
                                 f"got {v!r}")
        for name in ("dropout", "weight_drop", "embed_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"--{name.replace('_', '-')} must be in [0, 1), got "
                                 f"{getattr(self, name)}")
        for name in ("ar", "tar"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"--{name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"--lr must be positive, got {self.lr}")
        if self.clip < 0:
            raise ValueError(f"--clip must be >= 0 (0 turns clipping off), got {self.clip}")
        if self.lr_decay < 1:
            raise ValueError(f"--lr-decay must be >= 1 (1: never decay), got {self.lr_decay}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"--max-minutes must be positive, got {self.max_minutes}")
        last = self.last_hidden or self.hidden
        if self.tie and self.embed != last:
            what = "--last-hidden" if self.last_hidden else "--hidden"
            raise ValueError(f"--tie needs --embed equal to {what} (the output layer reuses "
                             f"the embedding), got {self.embed} and {last}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")

    def model_kwargs(self, vocab_size: int) -> dict[str, Any]:
        return {"vocab_size": vocab_size, "embed_size": self.embed, "hidden_size": self.hidden,
                "cell": self.cell, "num_layers": self.layers, "dropout": self.dropout,
                "variational": self.variational, "tie_weights": bool(self.tie),
                "dtype": self.dtype, "weight_drop": self.weight_drop,
                "embed_dropout": self.embed_dropout, "ar": self.ar, "tar": self.tar,
                "last_hidden": self.last_hidden, "init": self.init}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
