"""Data-parallel training: K ranks (simulated by threads, and for real under mpiexec) give the
single-process model of the whole batch, stop together, refuse unequal starts."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from bptt.data.make_builtin import compose
from bptt.train import TrainConfig, train_language_model
from bptt.train.comm import SingleProcess, ThreadGroup, world
from helpers import mpiexec_or_skip


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    p = tmp_path_factory.mktemp("data") / "t.txt"
    p.write_text(compose(stories=6), encoding="utf-8")
    return p


def config(text, out, **kw):
    base = dict(data=str(text), out=str(out), embed=6, hidden=6, batch=8, bptt=5,
                optimizer="adam", lr=0.01, clip=0.5, epochs=2, quiet=True, dtype="float64",
                layers=2)
    base.update(kw)
    return TrainConfig(**base)


def final_params(store):
    def on_step(tr):
        store[:] = [p.copy() for p in tr.learner.params]
    return on_step


@pytest.mark.parametrize("K", [2, 4])
def test_k_ranks_give_the_single_process_model_of_the_whole_batch(text, tmp_path, K):
    single: list = []
    m1 = train_language_model(config(text, tmp_path / "one"), on_step=final_params(single))
    per_rank: list[list] = [[] for _ in range(K)]

    def rank(comm):
        return train_language_model(config(text, tmp_path / "dp"), comm=comm,
                                    on_step=final_params(per_rank[comm.rank]))

    results = ThreadGroup(K).run(rank)
    assert results[0]["steps"] == m1["steps"] and results[1] == {
        "rank": 1, "stopped": "completed", "steps": m1["steps"]}
    for p, q in zip(single, per_rank[0], strict=True):
        assert np.max(np.abs(p - q)) <= 1e-12 * max(1.0, np.max(np.abs(p)))
    for other in per_rank[1:]:  # every rank holds bit-identical parameters
        assert all(np.array_equal(a, b) for a, b in zip(per_rank[0], other, strict=True))
    assert (tmp_path / "dp" / "metrics.json").exists()  # written once, by rank 0


def test_a_stop_on_one_rank_stops_every_rank_at_the_same_step(text, tmp_path):
    def rank(comm):
        def on_step(tr):
            if comm.rank == 1 and tr.state.step == 5:
                tr.request_stop()
        return train_language_model(config(text, tmp_path / "r"), comm=comm, on_step=on_step)

    r0, r1 = ThreadGroup(2).run(rank)
    assert r0["stopped"] == r1["stopped"] == "interrupted"
    assert r0["steps"] == r1["steps"] == 6  # the request travels with step 6's reduction


def test_ranks_that_start_apart_or_a_batch_that_does_not_split_are_refused(text, tmp_path):
    def seeds(comm):
        return train_language_model(config(text, tmp_path / "s", seed=comm.rank), comm=comm)

    with pytest.raises(ValueError, match="start from other weights than rank 0"):
        ThreadGroup(2).run(seeds)

    def odd(comm):
        return train_language_model(config(text, tmp_path / "o", batch=9), comm=comm)

    with pytest.raises(ValueError, match="--batch 9 must be divisible by the 2 ranks"):
        ThreadGroup(2).run(odd)


def test_without_mpiexec_training_is_one_process(monkeypatch):
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    assert isinstance(world(), SingleProcess) and world().size == 1


def test_mpiexec_for_real_gives_the_single_process_model(text, tmp_path):
    mpiexec = mpiexec_or_skip()
    args = ["-m", "bptt", "train", "--data", str(text), "--embed", "6", "--hidden", "6",
            "--batch", "8", "--bptt", "5", "--optimizer", "adam", "--lr", "0.01",
            "--max-steps", "12", "--float64", "--quiet"]
    one = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("PMI_SIZE", "PMI_RANK")}
    loud = [a for a in args if a != "--quiet"]
    two = subprocess.run([mpiexec, "-n", "2", sys.executable, *loud, "--out",
                          str(tmp_path / "two")], capture_output=True, text=True, timeout=300,
                         env=env)
    assert two.returncode == 0, two.stderr
    assert two.stderr.count("data-parallel on 2 ranks") == 1, two.stderr  # rank 0 says it
    a = dict(np.load(tmp_path / "one" / "last" / "model.npz"))
    b = dict(np.load(tmp_path / "two" / "last" / "model.npz"))
    for k in a:
        assert np.max(np.abs(a[k] - b[k])) <= 1e-12 * max(1.0, np.max(np.abs(a[k]))), k


def test_a_failure_on_one_rank_ends_every_rank_instead_of_a_hang(text, tmp_path):
    def rank(comm):
        def on_step(tr):
            if comm.rank == 1 and tr.state.step == 3:
                raise OSError("disk full")
        return train_language_model(config(text, tmp_path / "f"), comm=comm, on_step=on_step)

    with pytest.raises((OSError, RuntimeError)):
        ThreadGroup(2).run(rank)  # returns: no rank is left waiting in a reduction


def test_seq2seq_trains_data_parallel_to_the_same_model(tmp_path):
    from bptt.train.seq2seq import Seq2seqConfig, load_seq2seq, train_seq2seq

    def cfg(out):
        return Seq2seqConfig(data="addition", pairs=300, epochs=1, batch=50, hidden=8,
                             embed=4, model="attention", out=str(out), quiet=True,
                             dtype="float64", eval_size=20)

    train_seq2seq(cfg(tmp_path / "one"), log=lambda s: None)
    ThreadGroup(3).run(lambda comm: train_seq2seq(cfg(tmp_path / "dp"), comm=comm,
                                                 log=lambda s: None))
    a, _, _ = load_seq2seq(tmp_path / "one" / "last")
    b, _, _ = load_seq2seq(tmp_path / "dp" / "last")
    for n, p, q in zip(a.param_names, a.params, b.params, strict=True):
        assert np.max(np.abs(p - q)) <= 1e-11 * max(1.0, np.max(np.abs(p))), n


@pytest.mark.parametrize("task", ["sine", "waveforms"])
def test_bptt_fit_trains_data_parallel_to_the_same_model(tmp_path, task):
    from bptt.train.estimators import SequenceClassifier, SequenceRegressor
    from bptt.train.fit import FitConfig, fit_task

    def cfg(out):
        return FitConfig(task, hidden=5, epochs=2, batch=20, n_train=90 if task != "sine"
                         else None, out=str(out), quiet=True)

    fit_task(cfg(tmp_path / "one"), log=lambda s: None)
    ThreadGroup(2).run(lambda comm: fit_task(cfg(tmp_path / "dp"), log=lambda s: None,
                                             comm=comm))
    cls = SequenceRegressor if task == "sine" else SequenceClassifier
    a, b = cls.load(tmp_path / "one" / "model"), cls.load(tmp_path / "dp" / "model")
    for p, q in zip(a._all_params(), b._all_params(), strict=True):
        assert np.max(np.abs(p - q)) <= 1e-5 * max(1.0, np.max(np.abs(p)))  # float32


# -- --procs K: the ranks started for the user ----------------------------------------------------
def two_cores_or_skip():
    from bptt.commands.options import usable_cores

    if usable_cores() < 2:
        pytest.skip("--procs 2 needs 2 usable cores (it never oversubscribes)")


def test_procs_2_runs_the_command_on_two_ranks_with_the_single_process_model(text, tmp_path):
    mpiexec_or_skip()
    two_cores_or_skip()
    args = ["-m", "bptt", "train", "--data", str(text), "--embed", "6", "--hidden", "6",
            "--batch", "8", "--bptt", "5", "--optimizer", "adam", "--lr", "0.01",
            "--max-steps", "12", "--float64"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMI_")}
    one = subprocess.run([sys.executable, *args, "--quiet", "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, *args, "--procs", "2", "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert two.returncode == 0, two.stderr
    assert two.stderr.count("data-parallel on 2 ranks") == 1, two.stderr
    a = dict(np.load(tmp_path / "one" / "last" / "model.npz"))
    b = dict(np.load(tmp_path / "two" / "last" / "model.npz"))
    for k in a:
        assert np.max(np.abs(a[k] - b[k])) <= 1e-12 * max(1.0, np.max(np.abs(a[k]))), k


@pytest.mark.parametrize("command", [["fit", "sine", "--epochs", "1", "--hidden", "8"],
                                     ["seq2seq", "train", "--data", "addition",
                                      "--max-steps", "3", "--hidden", "16"]])
def test_procs_works_for_fit_and_seq2seq_train(command, tmp_path):
    mpiexec_or_skip()
    two_cores_or_skip()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMI_")}
    run = subprocess.run([sys.executable, "-m", "bptt", *command, "--procs", "2", "--out",
                          str(tmp_path / "r")], capture_output=True, text=True, timeout=300,
                         env=env)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "r" / "metrics.json").exists()
    assert "data-parallel on 2 ranks" in run.stderr + run.stdout


def test_procs_refusals_are_one_line(monkeypatch, capsys, tmp_path):
    from bptt import cli
    from bptt.commands import options

    out = ["--out", str(tmp_path / "x"), "--max-steps", "1"]
    assert cli.main(["train", "--procs", "999", *out]) == 2
    assert "--procs 999 x 1 thread(s) needs 999 cores" in capsys.readouterr().err
    assert cli.main(["train", "--procs", "0", *out]) == 2
    assert "--procs must be >= 1, got 0" in capsys.readouterr().err
    monkeypatch.setattr(options, "usable_cores", lambda: 4)
    monkeypatch.setattr(options, "find_mpiexec", lambda: None)
    assert cli.main(["train", "--procs", "2", *out]) == 2
    assert "--procs needs MPI: pip install 'bptt[mpi]'" in capsys.readouterr().err
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setattr(options, "started_by_mpiexec", lambda: True)
    assert cli.main(["train", "--procs", "2", *out]) == 2
    assert "--procs starts its own ranks" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_procs_one_and_auto_thread_arithmetic(monkeypatch):
    import argparse

    from bptt.commands import options

    monkeypatch.setattr(options, "usable_cores", lambda: 8)
    want = {("1", None): None, ("auto", None): 8, ("auto", "2"): 4, ("3", "auto"): 3}
    for (procs, threads), k in want.items():
        args = argparse.Namespace(procs=procs, threads=threads)
        assert options.procs_wanted(args) == k and not hasattr(args, "procs")
    assert options._without_procs(["train", "--procs", "2", "--procs=3", "--out", "o"]) == [
        "train", "--out", "o"]
