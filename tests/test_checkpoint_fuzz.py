"""Checkpoint fuzzing (hypothesis): random mutations of every file of a checkpoint, with and
without recomputed checksums. Loading either succeeds with the very same arrays or raises the
one CheckpointError with one line naming a file; never another exception, never code."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bptt import load_checkpoint
from bptt.data.corpus import Vocab
from bptt.models.rnnlm import LanguageModel
from bptt.optim import Adam
from bptt.train.checkpoint import CheckpointError
from bptt.train.lm_checkpoint import save_checkpoint

FILES = ["model.npz", "config.json", "vocab.json", "state.json", "optimizer.npz",
         "rnn_state.npz"]


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    vocab = Vocab(["<unk>", "<eos>", "a", "b", "c"])
    model = LanguageModel(len(vocab), 3, 3, dtype=np.float64, seed=0)
    ids = np.array([[2, 3, 4, 2]])
    opt = Adam()
    model.forward(ids[:, :-1], ids[:, 1:])
    model.backward()
    opt.update(model.params, model.grads)
    d = tmp_path_factory.mktemp("ck") / "ck"
    save_checkpoint(d, model, vocab, {"lr": 0.1}, opt, {"step": 1}, None)
    return d, {n: p.copy() for n, p in zip(model.param_names, model.params, strict=True)}


def _rehash(d: Path) -> None:
    state = json.loads((d / "state.json").read_text(encoding="utf-8"))
    if isinstance(state, dict) and isinstance(state.get("files"), dict):
        state["files"] = {n: hashlib.sha256((d / n).read_bytes()).hexdigest()
                          for n in state["files"] if (d / n).is_file()}
        state.pop("state_sha256", None)  # as earlier versions wrote it
        (d / "state.json").write_text(json.dumps(state), encoding="utf-8")


JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6),
                        st.floats(allow_nan=False), st.text(max_size=5),
                        st.lists(st.integers(), max_size=2), st.just({}))


def _mutate_json(doc, path, value):
    """Set doc[path[0]][path[1]]... = value where the path exists; return the document."""
    node = doc
    for key in path[:-1]:
        if isinstance(node, dict) and node:
            node = node[sorted(node)[key % len(node)]]
        else:
            return value
    if isinstance(node, dict) and node:
        node[sorted(node)[path[-1] % len(node)]] = value
    elif isinstance(node, list) and node:
        node[path[-1] % len(node)] = value
    else:
        return value
    return doc


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(FILES),
       how=st.sampled_from(["truncate", "flip", "json", "delete", "garbage"]),
       where=st.floats(0, 1), value=JSON_VALUES,
       path=st.lists(st.integers(0, 50), min_size=1, max_size=3), rehash=st.booleans())
def test_a_mutated_checkpoint_loads_the_same_or_fails_with_one_checkpoint_error(
        original, tmp_path, name, how, where, value, path, rehash):
    src, params = original
    d = Path(tempfile.mkdtemp(dir=tmp_path)) / "ck"  # one per example
    shutil.copytree(src, d)
    f = d / name
    data = f.read_bytes()
    if how == "truncate":
        f.write_bytes(data[:int(where * len(data))])
    elif how == "flip":
        i = min(int(where * len(data)), len(data) - 1)
        f.write_bytes(data[:i] + bytes([data[i] ^ 0xA5]) + data[i + 1:])
    elif how == "json" and name.endswith(".json"):
        doc = _mutate_json(json.loads(data), path, value)
        f.write_text(json.dumps(doc), encoding="utf-8")
    elif how == "delete":
        f.unlink()
    else:
        f.write_bytes(b"\x80\x04garbage" + data[:7])
    if rehash and name != "state.json":
        _rehash(d)
    try:
        ck = load_checkpoint(d)
    except CheckpointError as e:
        assert "\n" not in str(e) and str(d) in str(e)
        return
    except FileNotFoundError as e:  # a deleted state.json/config.json: nothing there to load
        assert how == "delete", e
        return
    for n, p in zip(ck.model.param_names, ck.model.params, strict=True):
        assert np.array_equal(p, params[n]), n
