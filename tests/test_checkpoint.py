"""Checkpoint directories: round trip, atomic replacement, clear errors on bad files."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

from bptt import load_checkpoint
from bptt.data.corpus import Vocab
from bptt.models.rnnlm import LanguageModel
from bptt.optim import Adam
from bptt.train.checkpoint import CheckpointError, find_checkpoint
from bptt.train.lm_checkpoint import save_checkpoint

VOCAB = Vocab(["<unk>", "<eos>", "a", "b", "c", "d"])


def trained_bits(seed=0):
    model = LanguageModel(len(VOCAB), 4, 4, num_layers=2, tie_weights=True, seed=seed)
    opt = Adam(lr=0.01)
    xs = np.array([[2, 3, 4], [5, 1, 0]])
    model.forward(xs, xs)
    model.backward()
    opt.update(model.params, model.grads)
    model.forward(xs, xs)  # leaves a carried state
    return model, opt


def test_round_trip_restores_everything(tmp_path):
    model, opt = trained_bits()
    rng_state = np.random.default_rng(7).bit_generator.state
    d = save_checkpoint(tmp_path / "ck", model, VOCAB, {"lr": 0.01, "data": "x"}, opt,
                        {"step": 12, "history": [{"epoch": 1, "valid_ppl": 3.5}]}, rng_state)
    assert sorted(p.name for p in d.iterdir()) == [
        "config.json", "model.npz", "optimizer.npz", "rnn_state.npz", "state.json", "vocab.json"]
    ck = load_checkpoint(d)
    for p, q in zip(model.params, ck.model.params):
        np.testing.assert_array_equal(p, q)
    assert ck.vocab == VOCAB and ck.train_config == {"lr": 0.01, "data": "x"}
    assert ck.trainer_state["history"][0]["valid_ppl"] == 3.5 and ck.rng_state == rng_state
    assert ck.resumable and ck.config["model_class"] == "LanguageModel"
    opt2 = Adam(lr=1.0)
    opt2.load_state_dict(ck.optimizer_state)
    assert opt2.lr == 0.01 and opt2.iter == 1
    for (h, c), (h2, c2) in zip(model.get_state(), ck.rnn_state):
        np.testing.assert_array_equal(h, h2)
        np.testing.assert_array_equal(c, c2)
    assert not [p for p in tmp_path.iterdir() if p.name != "ck"]  # no temp dirs left


def test_model_only_checkpoint_and_dtype_override(tmp_path):
    model, _ = trained_bits()
    save_checkpoint(tmp_path / "best", model, VOCAB)
    ck = load_checkpoint(tmp_path / "best", dtype=np.float64)
    assert not ck.resumable and ck.model.params[0].dtype == np.float64
    np.testing.assert_allclose(ck.model.params[0], model.params[0], rtol=0)


def test_saving_again_replaces_the_directory(tmp_path):
    m1, _ = trained_bits(0)
    m2, _ = trained_bits(1)
    save_checkpoint(tmp_path / "ck", m1, VOCAB)
    save_checkpoint(tmp_path / "ck", m2, VOCAB)
    np.testing.assert_array_equal(load_checkpoint(tmp_path / "ck").model.params[0],
                                  m2.params[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


def test_a_save_interrupted_between_renames_still_loads(tmp_path):
    model, _ = trained_bits()
    save_checkpoint(tmp_path / "ck", model, VOCAB)
    os.replace(tmp_path / "ck", tmp_path / "ck.old")  # the state after the first rename
    assert find_checkpoint(tmp_path / "ck") == tmp_path / "ck.old"
    np.testing.assert_array_equal(load_checkpoint(tmp_path / "ck").model.params[0],
                                  model.params[0])


def test_find_checkpoint_in_a_training_directory(tmp_path):
    model, _ = trained_bits()
    save_checkpoint(tmp_path / "run" / "last", model, VOCAB)
    assert find_checkpoint(tmp_path / "run") == tmp_path / "run" / "last"
    save_checkpoint(tmp_path / "run" / "best", model, VOCAB)
    assert find_checkpoint(tmp_path / "run") == tmp_path / "run" / "best"
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        find_checkpoint(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        find_checkpoint(tmp_path / "nowhere")


@pytest.fixture
def ckdir(tmp_path):
    model, opt = trained_bits()
    return save_checkpoint(tmp_path / "ck", model, VOCAB, {}, opt)


def test_corrupt_file_is_named(ckdir):
    data = bytearray((ckdir / "model.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (ckdir / "model.npz").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.npz does not match the checksum"):
        load_checkpoint(ckdir)


def test_missing_file_is_named(ckdir):
    (ckdir / "optimizer.npz").unlink()
    with pytest.raises(CheckpointError, match="optimizer.npz is missing"):
        load_checkpoint(ckdir)
    (ckdir / "vocab.json").unlink()
    with pytest.raises(CheckpointError, match="vocab.json is missing"):
        load_checkpoint(ckdir)


def rehash(ckdir):
    """Recompute state.json's checksums after editing files: the loader's own checks speak."""
    state = json.loads((ckdir / "state.json").read_text())
    state["files"] = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                      for p in sorted(ckdir.iterdir()) if p.name != "state.json"}
    state.pop("state_sha256", None)  # as earlier versions wrote it: the loader's checks speak
    (ckdir / "state.json").write_text(json.dumps(state))
    return state


def test_mismatched_files_are_reported(ckdir):
    Vocab(["<unk>", "a"]).to_json(ckdir / "vocab.json")
    rehash(ckdir)
    with pytest.raises(CheckpointError, match="vocab.json has 2 tokens but the model was built "
                                              "for 6"):
        load_checkpoint(ckdir)
    VOCAB.to_json(ckdir / "vocab.json")
    LanguageModel(len(VOCAB), 5, 5, num_layers=2, tie_weights=True).save_params(ckdir / "model.npz")
    rehash(ckdir)
    with pytest.raises(CheckpointError, match="has shape"):
        load_checkpoint(ckdir)
    (ckdir / "model.npz").write_bytes(b"garbage")
    rehash(ckdir)
    with pytest.raises(CheckpointError, match="not a readable .npz"):
        load_checkpoint(ckdir)
    (ckdir / "config.json").write_text("{not json")
    rehash(ckdir)
    with pytest.raises(CheckpointError, match="config.json is not valid JSON"):
        load_checkpoint(ckdir)
    for bad, why in (({"model": [1]}, "field 'model' must be an object"),
                     ({"version": "1"}, "field 'version' must be an integer"),
                     ({"format": "x"}, "not a bptt checkpoint config")):
        cfg = {"format": "bptt-checkpoint", "version": 1, "model": {}, **bad}
        (ckdir / "config.json").write_text(json.dumps(cfg))
        state = rehash(ckdir)
        with pytest.raises(CheckpointError, match=f"config.json.*{why}"):
            load_checkpoint(ckdir)
    state["files"] = ["model.npz"]
    (ckdir / "state.json").write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="state.json: field 'files'"):
        load_checkpoint(ckdir)
    state["files"] = {}
    (ckdir / "state.json").write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="without checksums is refused"):
        load_checkpoint(ckdir)


def test_a_file_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "f.txt").write_text("hi")
    with pytest.raises(CheckpointError, match="not a directory"):
        load_checkpoint(tmp_path / "f.txt")


def test_a_checkpoint_of_the_first_format_still_loads(ckdir):
    """bptt 0.1 wrote no "kind" and no "data": such a checkpoint is a language model."""
    cfg = json.loads((ckdir / "config.json").read_text())
    del cfg["kind"], cfg["data"]
    (ckdir / "config.json").write_text(json.dumps(cfg))
    rehash(ckdir)
    assert load_checkpoint(ckdir).model.vocab_size == len(VOCAB)


def test_a_newer_format_version_is_named(ckdir):
    cfg = json.loads((ckdir / "config.json").read_text())
    cfg["version"] = 7
    (ckdir / "config.json").write_text(json.dumps(cfg))
    rehash(ckdir)
    with pytest.raises(CheckpointError, match="checkpoint format version 7; this bptt reads "
                                              "version 1"):
        load_checkpoint(ckdir)


def test_non_finite_weights_are_refused_naming_the_parameter(ckdir):
    arrays = dict(np.load(ckdir / "model.npz"))
    arrays["rnn0.Wh"][0, 0] = np.nan
    np.savez(ckdir / "model.npz", **arrays)
    rehash(ckdir)
    with pytest.raises(CheckpointError, match="parameter rnn0.Wh holds NaN or infinite"):
        load_checkpoint(ckdir)


class _Payload:
    """Unpickling this would create a file: the sign that code ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickle_payload_is_refused_and_never_runs(ckdir, tmp_path):
    marker = tmp_path / "code-ran"
    evil = np.empty(1, dtype=object)
    evil[0] = _Payload(str(marker))
    arrays = dict(np.load(ckdir / "model.npz"))
    arrays["embed.W"] = evil
    np.savez(ckdir / "model.npz", **arrays, allow_pickle=True)
    rehash(ckdir)
    with pytest.raises(CheckpointError, match="model.npz is not a readable .npz"):
        load_checkpoint(ckdir)
    assert not marker.exists()
