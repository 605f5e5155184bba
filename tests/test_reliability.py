"""Nothing lost, nothing silent (docs/reliability.md): exact resume from every stop point,
--overwrite keeps the earlier run until the new one has a checkpoint, a changed corpus is
refused on resume, impossible sizes are refused with an estimate, failed runs leave nothing
behind, the JSON-lines log is JSON, and a save interrupted at any write or rename loses
nothing."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

import bptt.train.checkpoint as store
from bptt import load_checkpoint
from bptt.data.make_builtin import compose
from bptt.train import TrainConfig, TrainingDiverged, train_language_model
from bptt.train.checkpoint import CheckpointError


@pytest.fixture(scope="module")
def short_text(tmp_path_factory):
    p = tmp_path_factory.mktemp("data") / "short.txt"
    p.write_text(compose(stories=3), encoding="utf-8")
    return p


def config(text, out, **kw):
    base = dict(data=str(text), out=str(out), embed=6, hidden=6, batch=4, bptt=5,
                optimizer="sgd", lr=2.0, clip=1.0, epochs=3, quiet=True, dtype="float64",
                lr_decay=4.0, log_every=5)
    base.update(kw)
    return TrainConfig(**base)


def params(out):
    with np.load(out / "last" / "model.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def strict_json(line):
    return json.loads(line, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))


# -- exact resume --------------------------------------------------------------------------------
@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_resume_from_every_stop_point_is_bit_exact(short_text, tmp_path, dropout):
    full = tmp_path / "full"
    m = train_language_model(config(short_text, full, dropout=dropout, layers=2))
    want = params(full)
    total = m["steps"]
    epochs = [json.loads(x) for x in (full / "log.jsonl").read_text().splitlines()]
    decays = [r for r in epochs if r["event"] == "epoch" and not r["best"]]
    assert total >= 20 and decays  # the lr decays at least once: stops around it matter
    for stop in range(1, total):
        part = tmp_path / f"part{stop}"
        train_language_model(config(short_text, part, dropout=dropout, layers=2,
                                    max_steps=stop))
        train_language_model(TrainConfig(out=str(part), resume=True, max_steps=None,
                                         quiet=True),
                             explicit={"out", "resume", "max_steps", "quiet"})
        got = params(part)
        for k in want:
            assert np.array_equal(got[k], want[k]), f"stop at {stop}: {k} differs"
        shutil.rmtree(part)


# -- --overwrite ---------------------------------------------------------------------------------
def test_overwrite_keeps_the_earlier_run_until_the_new_one_has_a_checkpoint(short_text,
                                                                            tmp_path):
    out = tmp_path / "run"
    train_language_model(config(short_text, out, epochs=1))
    before = params(out)
    with pytest.raises(TrainingDiverged):
        train_language_model(config(short_text, out, lr=1e30, clip=0.0, overwrite=True))
    after = params(out)  # the diverged run saved nothing: the earlier one is back
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert not (out / ".replaced").exists()
    assert load_checkpoint(out).model is not None
    train_language_model(config(short_text, out, epochs=1, seed=5, overwrite=True))
    assert not (out / ".replaced").exists()
    assert any(not np.array_equal(before[k], params(out)[k]) for k in before)


def test_a_failed_run_leaves_no_empty_folder(short_text, tmp_path):
    out = tmp_path / "new"
    with pytest.raises(TrainingDiverged):
        train_language_model(config(short_text, out, lr=1e30, clip=0.0))
    assert not out.exists() or any(out.iterdir())  # the log of a diverged run may stay


# -- changed data, impossible sizes ---------------------------------------------------------------
def test_resume_refuses_a_changed_corpus_unless_forced(short_text, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text(short_text.read_text(encoding="utf-8"), encoding="utf-8")
    out = tmp_path / "run"
    train_language_model(config(text, out, max_steps=3))
    text.write_text(compose(stories=4), encoding="utf-8")
    with pytest.raises(ValueError, match="the training data changed since .* --force"):
        train_language_model(TrainConfig(out=str(out), resume=True, max_steps=5, quiet=True),
                             explicit={"out", "resume", "max_steps", "quiet"})
    m = train_language_model(TrainConfig(out=str(out), resume=True, max_steps=5, quiet=True,
                                         force=True),
                             explicit={"out", "resume", "max_steps", "quiet", "force"})
    assert m["steps"] == 5


def test_a_model_too_large_for_the_machine_is_refused_with_its_estimate(short_text, tmp_path):
    with pytest.raises(MemoryError, match=r"needs about [\d.]+ GiB .* lower --hidden"):
        train_language_model(config(short_text, tmp_path / "big", hidden=100_000,
                                    embed=100_000))


# -- logs ---------------------------------------------------------------------------------------
def test_the_log_of_a_diverged_run_is_strict_json(short_text, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged):
        train_language_model(config(short_text, out, lr=1e30, clip=0.0))
    lines = (out / "log.jsonl").read_text().splitlines()
    records = [strict_json(line) for line in lines]
    assert records[-1]["event"] == "diverged"


# -- state.json and config.json are validated ----------------------------------------------------
@pytest.mark.parametrize("edit,match", [
    (lambda s: s.update(trainer=[1]), "field 'trainer' must be an object"),
    (lambda s: s["trainer"].update(history="x"), "trainer.history' has the wrong type"),
    (lambda s: s["trainer"].update(step=-100), "trainer.step' must be >= 0"),
    (lambda s: s["trainer"].update(lr="inf"), "trainer.lr' has the wrong type"),
    (lambda s: s["trainer"].update(best="nan"), "trainer.best' has the wrong type"),
    (lambda s: s.pop("files"), "without checksums is refused"),
    (lambda s: s["rng"]["state"].update(state=-5), "field 'rng' is not a valid random generator"),
    (lambda s: s["rng"].update(bit_generator="MT19937"), "field 'rng' is not a valid random"),
])
def test_a_bad_state_json_is_one_line_naming_the_field(short_text, tmp_path, edit, match):
    """Each field is checked (shown on files without state.json's own checksum, as earlier
    versions wrote them, so that the field check is what speaks)."""
    out = tmp_path / "run"
    train_language_model(config(short_text, out, max_steps=3))
    path = out / "last" / "state.json"
    state = json.loads(path.read_text())
    edit(state)
    state.pop("state_sha256", None)
    path.write_text(json.dumps(state))
    with pytest.raises((CheckpointError, ValueError), match=match) as e:
        train_language_model(TrainConfig(out=str(out), resume=True, quiet=True),
                             explicit={"out", "resume", "quiet"})
    assert "\n" not in str(e.value)


def test_state_json_has_its_own_checksum(short_text, tmp_path):
    out = tmp_path / "run"
    train_language_model(config(short_text, out, max_steps=3))
    path = out / "last" / "state.json"
    state = json.loads(path.read_text())
    assert len(state["state_sha256"]) == 64
    state["trainer"]["step"] = 1  # a plausible value: only the checksum can tell
    path.write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="does not match its own checksum"):
        load_checkpoint(out / "last")


def test_a_learner_position_out_of_range_is_one_line(tmp_path):
    from bptt.train.seq2seq import Seq2seqConfig, train_seq2seq

    cfg = dict(data="addition", pairs=200, epochs=1, batch=50, hidden=8, embed=4, quiet=True,
               eval_size=10, out=str(tmp_path / "s"))
    train_seq2seq(Seq2seqConfig(**cfg, max_steps=2), log=lambda s: None)
    path = tmp_path / "s" / "last" / "state.json"
    state = json.loads(path.read_text())
    state["trainer"]["learner"]["k"] = 99
    state.pop("state_sha256")
    path.write_text(json.dumps(state))
    with pytest.raises(ValueError, match=r"batch number 99 is not in 0..3") as e:
        train_seq2seq(Seq2seqConfig(out=str(tmp_path / "s"), resume=True, quiet=True),
                      explicit={"out", "resume", "quiet"}, log=lambda s: None)
    assert "\n" not in str(e.value)


def test_a_bare_nan_in_state_json_is_refused(short_text, tmp_path):
    out = tmp_path / "run"
    train_language_model(config(short_text, out, max_steps=3))
    path = out / "last" / "state.json"
    path.write_text(path.read_text().replace('"lr": 2.0', '"lr": NaN'))
    with pytest.raises(CheckpointError, match="holds NaN, which is not JSON"):
        load_checkpoint(out / "last")


# -- a save interrupted anywhere -----------------------------------------------------------------
class Crash(Exception):
    pass


@pytest.mark.parametrize("target", ["replace", "savez", "write_json", "rmtree"])
def test_a_save_that_crashes_at_any_write_or_rename_loses_nothing(short_text, tmp_path,
                                                                  monkeypatch, target):
    out = tmp_path / "run"
    train_language_model(config(short_text, out, max_steps=4))
    first = params(out)
    originals = {"replace": os.replace, "savez": np.savez, "write_json": store.write_json,
                 "rmtree": shutil.rmtree}
    k = 0
    while True:  # crash at the 1st, 2nd, ... call of `target` during one more save
        k += 1
        calls = [0]

        def crashing(*a, _k=k, **kw):
            calls[0] += 1
            if calls[0] == _k:
                raise Crash
            return originals[target](*a, **kw)

        patch = {"replace": (store.os, "replace"), "savez": (store.np, "savez"),
                 "write_json": (store, "write_json"), "rmtree": (store.shutil, "rmtree")}
        monkeypatch.setattr(*patch[target], crashing)
        try:
            train_language_model(TrainConfig(out=str(out), resume=True, max_steps=4 + k,
                                             quiet=True),
                                 explicit={"out", "resume", "max_steps", "quiet"})
            crashed = False
        except Crash:
            crashed = True
        monkeypatch.undo()
        ck = load_checkpoint(out / "last")  # loads: the old save or the new one, whole
        assert ck.resumable
        step = ck.trainer_state["step"]
        assert step >= 4
        if not crashed:
            break
        assert k < 50
    # the next save puts things in order and leaves no temporary directories
    train_language_model(TrainConfig(out=str(out), resume=True, max_steps=60, quiet=True),
                         explicit={"out", "resume", "max_steps", "quiet"})
    leftovers = [p.name for p in out.iterdir() if ".tmp-" in p.name or p.name.endswith(".old")]
    assert leftovers == []
    assert set(first) == set(params(out))


def test_a_config_json_of_the_wrong_shape_is_one_line_in_bptt_eval(short_text, tmp_path,
                                                                  capsys):
    from bptt.cli import main

    out = tmp_path / "run"
    train_language_model(config(short_text, out, max_steps=3))
    path = out / "best" / "config.json"
    cfg = json.loads(path.read_text())
    cfg["train"] = [1]
    path.write_text(json.dumps(cfg))
    state = json.loads((out / "best" / "state.json").read_text())
    import hashlib
    state["files"]["config.json"] = hashlib.sha256(path.read_bytes()).hexdigest()
    state.pop("state_sha256")  # as an earlier version wrote it: the field check speaks
    (out / "best" / "state.json").write_text(json.dumps(state))
    assert main(["eval", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "field 'train' must be an object" in err[0]


@pytest.mark.slow
def test_kill_9_during_saves_never_loses_the_checkpoint(short_text, tmp_path):
    """Two hundred `kill -9`s at random instants of a run that saves every few steps: the last
    checkpoint always loads, and training always resumes from it."""
    import random
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    train_language_model(config(short_text, out, max_steps=2, epochs=10**6))
    script = ("import sys; from bptt.train import TrainConfig, train_language_model as t; "
              "t(TrainConfig(out=sys.argv[1], resume=True, quiet=True, epochs=10**6), "
              "explicit={'out', 'resume', 'quiet', 'epochs'})")
    rng = random.Random(0)
    steps = []
    for _ in range(200):
        proc = subprocess.Popen([sys.executable, "-c", script, str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.4, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        ck = load_checkpoint(out / "last")  # never lost, never half-written
        assert ck.resumable
        steps.append(ck.trainer_state["step"])
    assert steps[-1] > steps[0]  # the runs made progress across the kills
    leftovers = [p.name for p in out.iterdir() if ".tmp-" in p.name]
    assert len(leftovers) <= 1  # at most the one a kill interrupted; the next save removes it


@pytest.mark.parametrize("argv", [["seq2seq", "train", "--layers", "3000", "--pairs", "60"],
                                  ["seq2seq", "train", "--data", "{long}"],
                                  ["fit", "sine", "--layers", "100000"]])
def test_seq2seq_and_fit_refuse_a_model_too_large_with_its_estimate(argv, tmp_path, capsys,
                                                                    monkeypatch):
    """They used to allocate for minutes (24 GB resident) before failing; a 2 MB source line
    trained for 4 minutes on 3 pairs."""
    import time

    import bptt.train.memory as memory
    from bptt.cli import main

    monkeypatch.setattr(memory, "available_memory", lambda: 16 * 2**30)  # any machine alike
    long = tmp_path / "long.tsv"
    long.write_text("ab" * 1_000_000 + "\tx\nab\tcd\nef\tgh\nab\tef\n")
    argv = [a.format(long=long) for a in argv]
    t0 = time.perf_counter()
    assert main([*argv, "--epochs", "1", "--quiet", "--out", str(tmp_path / "r")]) == 2
    assert time.perf_counter() - t0 < 30  # refused from the settings, nothing allocated
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs about" in err and "--layers" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("kw", [dict(model="plain"), dict(model="peeky", layers=2),
                                dict(model="attention", cell="gru"),
                                dict(model="attention", score="additive"),
                                dict(model="attention", score="general", bidirectional=True,
                                     layers=2, hidden=8)])
def test_the_seq2seq_estimate_counts_the_parameters_the_model_has(kw, monkeypatch):
    import bptt.train.seq2seq as s2s
    from bptt.data.pairs import load_pairs

    counted = []
    monkeypatch.setattr(s2s, "training_bytes", lambda p, a, d: counted.append(p) or 0)
    cfg = s2s.Seq2seqConfig(**{"hidden": 6, "embed": 4, "pairs": 50, **kw})
    pairs = load_pairs("addition", n=50)
    s2s.estimate_memory(cfg, pairs)
    model = s2s.Seq2seqModel(len(pairs.source_vocab), len(pairs.target_vocab), cfg.embed,
                             cfg.hidden, cfg.model, cfg.cell, cfg.layers, cfg.bidirectional,
                             cfg.score)
    assert counted == [model.num_params()]


@pytest.mark.parametrize("task, kw", [("sine", {}), ("sine", dict(layers=3, bidirectional=True)),
                                      ("waveforms", dict(cell="gru", layers=2))])
def test_the_fit_estimate_counts_the_parameters_the_model_has(task, kw, monkeypatch):
    import bptt.train.fit as fit

    counted = []
    monkeypatch.setattr(fit, "training_bytes", lambda p, a, d: counted.append(p) or 0)
    cfg = fit.FitConfig(task, hidden=5, **kw)
    data = fit.build_task(cfg)
    fit.estimate_memory(cfg, data)
    model = fit.build_model(cfg, data)
    model.fit(*data.train, epochs=1, max_steps=1)
    assert counted == [sum(int(p.size) for p in model._all_params())]
