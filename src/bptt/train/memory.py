"""Will a model fit in this machine's memory? Estimated from the settings alone, before anything
is allocated, so that ``--layers 3000`` is one line instead of minutes of swapping.

The estimate (bytes) is ``itemsize * (4 * params + 2 * activations)``: parameters, their
gradients and two optimizer slots, and the arrays one step keeps for the backward pass, twice
(forward caches and their gradients). Measured against the peak resident memory of real runs
it is within a factor of about 1.5, on the safe side; the check only refuses what cannot fit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..backend import device_free_memory
from ..nn.registry import get_cell


def available_memory() -> int | None:
    """MemAvailable of /proc/meminfo in bytes (None where unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def stack_params(cell: str, input_size: int, hidden_size: int, num_layers: int,
                 directions: int = 1, last_hidden: int | None = None) -> int:
    """Parameters of a stack of ``num_layers`` recurrent layers (each ``directions`` wide):
    the first reads ``input_size`` features, the others the layer below."""
    spec = get_cell(cell)
    last = last_hidden or hidden_size
    return directions * sum(
        spec.num_params(input_size if k == 0 else hidden_size * directions,
                        last if k == num_layers - 1 else hidden_size)
        for k in range(num_layers))


def step_activations(cell: str, batch: int, steps: int, hidden_size: int, num_layers: int,
                     directions: int = 1) -> int:
    """Values a recurrent stack keeps per step for backward: its gates and states."""
    spec = get_cell(cell)
    return batch * steps * num_layers * directions * (2 * spec.gates + 3) * hidden_size


def training_bytes(params: int, activations: int, dtype: str | None) -> int:
    return int(np.dtype(dtype or "float32").itemsize * (4 * params + 2 * activations))


class ModelTooLarge(MemoryError):
    """The estimate says the model cannot fit: a refusal before anything was allocated."""


def check_fits(need: int, what: str, lower: str) -> None:
    """Refuse, in one line with the estimate, a model that cannot fit in the memory it will
    live in: the GPU's free memory on ``--device gpu``, else the machine's available memory
    (``what`` says what was counted, ``lower`` which options shrink it)."""
    gpu = device_free_memory()
    have, where = (gpu, "the GPU has") if gpu is not None else (available_memory(),
                                                                  "the machine has")
    if have is not None and need > have:
        raise ModelTooLarge(f"this model needs about {need / 2**30:.1f} GiB ({what}) but "
                            f"{where} {have / 2**30:.1f} GiB available; lower {lower}")
