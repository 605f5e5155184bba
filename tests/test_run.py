"""The run folder (bptt.train.run.Run), the same for every kind of run: a lock against a second
writer, --overwrite that never loses a run (killed at any point, resumed, replaced again), only
the files a run's header claims ever moved or deleted, resuming on the same data only, SIGTERM
saved like Ctrl-C, refusals made on every rank of a data-parallel run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bptt.cli import main
from bptt.data.make_builtin import compose
from bptt.train import TrainConfig, train_language_model
from bptt.train.comm import ThreadGroup
from bptt.train.fit import FitConfig, fit_task
from bptt.train.run import Run, read_header
from bptt.train.seq2seq import Seq2seqConfig, train_seq2seq
from helpers import mpiexec_or_skip


def quiet(s):
    return None


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    p = tmp_path_factory.mktemp("data") / "t.txt"
    p.write_text(compose(stories=4), encoding="utf-8")
    return p


# one small run of each kind, and how to start it (Python, and as a child process killed at
# a chosen step)
def lm(text, out, **kw):
    cfg = dict(data=str(text), out=str(out), embed=6, hidden=6, batch=4, bptt=5, epochs=1,
               quiet=True, optimizer="adam", lr=0.01)
    cfg.update(kw)
    return TrainConfig(**cfg)


def s2s(out, **kw):
    cfg = dict(data="addition", pairs=120, epochs=1, batch=30, hidden=6, embed=4, quiet=True,
               eval_size=6, out=str(out))
    cfg.update(kw)
    return Seq2seqConfig(**cfg)


def fit(out, **kw):
    cfg = dict(task="sine", hidden=4, epochs=1, batch=64, quiet=True, out=str(out))
    cfg.update(kw)
    return FitConfig(**cfg)


KINDS = {  # the options given are the user's: on --resume, those that may change do
    "language-model": lambda text, out, **kw: train_language_model(lm(text, out, **kw),
                                                                   explicit=set(kw)),
    "seq2seq": lambda text, out, **kw: train_seq2seq(s2s(out, **kw), log=quiet,
                                                     explicit=set(kw)),
    "fit": lambda text, out, **kw: fit_task(fit(out, **kw), log=quiet, explicit=set(kw)),
}

_KILLED_AT = """
import os, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
import test_run as t
def die(trainer):
    if trainer.state.step >= {step}:
        os._exit(9)  # as kill -9: no cleanup at all
if {kind!r} == "language-model":
    t.train_language_model(t.lm(Path({text!r}), {out!r}, overwrite=True, epochs=2),
                           on_step=die)
elif {kind!r} == "seq2seq":
    t.train_seq2seq(t.s2s({out!r}, overwrite=True, epochs=2), on_step=die, log=t.quiet)
else:
    t.fit_task(t.fit({out!r}, overwrite=True, epochs=2), on_step=die, log=t.quiet)
"""


def killed_overwrite(kind, text, out, step):
    """``--overwrite`` into ``out``, killed (os._exit) once the trainer reaches ``step``."""
    code = _KILLED_AT.format(tests=str(Path(__file__).parent), step=step, kind=kind,
                             text=str(text), out=str(out))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 9, done.stderr


def params_of(folder):
    with np.load(folder / "last" / "model.npz", allow_pickle=False) as z:
        return {k: z[k].copy() for k in z.files}


def same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


# -- --overwrite never loses a run --------------------------------------------------------------
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_killed_overwrite_is_put_back_and_a_later_run_is_refused(kind, text, tmp_path):
    """(a) An --overwrite killed before its first checkpoint leaves the earlier run in
    .replaced: readers find it there, the next writer puts it back, and a fresh run without
    --overwrite is refused instead of deleting it."""
    out = tmp_path / "run"
    KINDS[kind](text, out)
    before = params_of(out)
    killed_overwrite(kind, text, out, step=1)
    assert (out / ".replaced").is_dir() and not (out / "last").exists()
    if kind == "language-model":  # a reader finds the set-aside run, moving nothing
        assert main(["eval", str(out), "--split", "valid"]) == 0
        assert (out / ".replaced").is_dir()
    with pytest.warns(UserWarning, match="put back the run that an earlier --overwrite"):
        with pytest.raises(FileExistsError, match="already holds a trained run"):
            KINDS[kind](text, out)
    assert not (out / ".replaced").exists() and same(params_of(out), before)


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_resumed_replacement_is_never_swapped_back_for_the_run_it_replaced(kind, text,
                                                                             tmp_path):
    """(b) Run A; --overwrite B killed after its first checkpoint; B resumed to the end; an
    --overwrite C that fails before its first checkpoint: B stays (A is gone for good)."""
    out = tmp_path / "run"
    KINDS[kind](text, out, seed=1)
    steps_per_epoch = json.loads((out / "last" / "state.json").read_text())["trainer"]["step"]
    killed_overwrite(kind, text, out, step=steps_per_epoch + 1)  # after epoch 1's checkpoint
    KINDS[kind](text, out, resume=True, epochs=2)
    b = params_of(out)
    assert not (out / ".replaced").exists()
    with pytest.raises((ValueError, RuntimeError)):  # C diverges at once: no checkpoint
        KINDS[kind](text, out, overwrite=True, lr=1e30, clip=0.0 if kind != "fit" else None)
    assert same(params_of(out), b) and not (out / ".replaced").exists()


def test_only_the_files_a_run_claims_are_moved_or_deleted(text, tmp_path, capsys):
    """(d) A folder holding the user's own `model/` package: `fit` (which writes model/)
    refuses it, --overwrite too; `train` (which does not) trains beside it and --overwrite
    replaces only its own run."""
    proj = tmp_path / "proj"
    (proj / "model").mkdir(parents=True)
    (proj / "model" / "__init__.py").write_text("VALUE = 1\n")
    (proj / "notes.txt").write_text("mine\n")
    for extra in ([], ["--overwrite"]):
        assert main(["fit", "sine", "--epochs", "1", "--hidden", "3", "--quiet", "--out",
                     str(proj), *extra]) == 2
        err = capsys.readouterr().err
        assert "holds model, which bptt fit would write over" in err and "bptt run" in err
    KINDS["language-model"](text, proj)
    assert read_header(proj)["kind"] == "language-model"
    KINDS["language-model"](text, proj, overwrite=True, seed=4)
    assert (proj / "model" / "__init__.py").read_text() == "VALUE = 1\n"
    assert (proj / "notes.txt").read_text() == "mine\n"
    assert sorted(p.name for p in proj.iterdir()) == ["best", "last", "log.jsonl",
                                                      "metrics.json", "model", "notes.txt",
                                                      "run.json"]


def test_a_run_written_before_headers_is_still_recognised(text, tmp_path):
    out = tmp_path / "old"
    KINDS["language-model"](text, out)
    (out / "run.json").unlink()  # as bptt wrote runs before the header
    with pytest.raises(FileExistsError, match="already holds a trained run"):
        KINDS["language-model"](text, out)
    KINDS["language-model"](text, out, overwrite=True, seed=2)
    assert read_header(out)["kind"] == "language-model"


@pytest.mark.parametrize("kind", list(KINDS))
def test_resume_and_overwrite_together_are_refused(kind, text, tmp_path):
    """`train --resume --overwrite` used to resume and ignore --overwrite."""
    out = tmp_path / "run"
    KINDS[kind](text, out)
    with pytest.raises(ValueError, match="--resume continues .* --overwrite replaces it"):
        KINDS[kind](text, out, resume=True, overwrite=True)


@pytest.mark.parametrize("kind", ["language-model", "seq2seq"])
def test_an_empty_out_is_refused(kind, text, tmp_path, monkeypatch):
    """`--out ""` used to write the run into the working folder."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="--out is empty"):
        KINDS[kind](text, "")
    assert not list(tmp_path.iterdir())


# -- one writer --------------------------------------------------------------------------------
@pytest.mark.skipif(os.name != "posix", reason="run folders are locked with POSIX flock")
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_second_writer_on_a_folder_is_refused_in_one_line(kind, text, tmp_path):
    out = tmp_path / "run"
    with Run(out, "language-model"):
        with pytest.raises(RuntimeError, match=r"in use by another bptt run \(process "
                                               rf"{os.getpid()}\)") as e:
            KINDS[kind](text, out)
        assert "\n" not in str(e.value)
    KINDS[kind](text, out)  # the lock goes with the run that held it
    assert not (out / ".lock").exists()


def test_two_processes_training_into_one_folder(text, tmp_path):
    """Two `bptt train` at once into one --out: one trains, the other is refused at once."""
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "bptt", "train", "--data", str(text), "--embed", "6",
            "--hidden", "6", "--batch", "4", "--bptt", "5", "--epochs", "100000",
            "--max-minutes", "0.15", "--quiet", "--out", str(out)]
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):  # until the first one trains
            if (out / "log.jsonl").exists():
                break
            time.sleep(0.05)
        second = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    finally:
        first.communicate(timeout=300)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 2 and "in use by another bptt run" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1


# -- the same data on --resume, for every kind ---------------------------------------------------
def test_seq2seq_resume_refuses_other_pairs(tmp_path):
    data = tmp_path / "pairs.tsv"
    data.write_text("".join(f"{i} {i + 1}\t{i + 1} {i}\n" for i in range(40)))
    out = tmp_path / "run"
    train_seq2seq(s2s(out, data=str(data), level="word", max_steps=2), log=quiet)
    data.write_text("".join(f"{i + 1} {i}\t{i} {i + 1}\n" for i in range(40)))  # same words
    resume = dict(out=str(out), resume=True, quiet=True)
    with pytest.raises(ValueError, match=r"training data changed.*36 pairs then.*--force"):
        train_seq2seq(Seq2seqConfig(**resume), explicit=set(resume), log=quiet)
    m = train_seq2seq(Seq2seqConfig(**resume, force=True), explicit={*resume, "force"},
                      log=quiet)
    assert m["stopped"] == "completed"


def test_a_data_file_that_moved_resumes_where_it_is_now(text, tmp_path):
    """The run keeps the data's path and its fingerprint: a moved file is given anew with
    --data (--task csv:) and its content is what is checked."""
    data = tmp_path / "moved"
    data.mkdir()
    corpus = data / "c.txt"
    shutil.copy(text, corpus)
    pairs = data / "p.tsv"
    pairs.write_text("".join(f"{i} {i + 1}\t{i + 1} {i}\n" for i in range(40)))
    series = data / "s.csv"
    np.savetxt(series, np.sin(np.arange(300) / 7))
    train_language_model(lm(corpus, tmp_path / "lm", max_steps=2))
    train_seq2seq(s2s(tmp_path / "s2", data=str(pairs), level="word", max_steps=2), log=quiet)
    fit_task(FitConfig(task=f"csv:{series}", hidden=3, epochs=2, window=8, quiet=True,
                       out=str(tmp_path / "fit"), max_steps=2), log=quiet)
    data.rename(tmp_path / "elsewhere")
    new = tmp_path / "elsewhere"
    with pytest.raises(FileNotFoundError, match="no longer there: pass --data"):
        train_language_model(lm(corpus, tmp_path / "lm", resume=True), explicit={"resume"})
    kw = dict(resume=True, data=str(new / "c.txt"))
    assert train_language_model(lm(corpus, tmp_path / "lm", **kw), explicit=set(kw)
                                )["stopped"] == "completed"
    with pytest.raises(FileNotFoundError, match="pairs are no longer there: pass --data"):
        kw = dict(out=str(tmp_path / "s2"), resume=True, quiet=True)
        train_seq2seq(Seq2seqConfig(**kw), explicit=set(kw), log=quiet)
    kw = dict(out=str(tmp_path / "s2"), resume=True, quiet=True, data=str(new / "p.tsv"))
    assert train_seq2seq(Seq2seqConfig(**kw), explicit=set(kw), log=quiet)["stopped"] == \
        "completed"
    with pytest.raises(FileNotFoundError, match="series is no longer there: give its new"):
        kw = dict(task=f"csv:{series}", out=str(tmp_path / "fit"), resume=True, quiet=True)
        fit_task(FitConfig(**kw), explicit=set(kw), log=quiet)
    kw = dict(task=f"csv:{new / 's.csv'}", out=str(tmp_path / "fit"), resume=True, quiet=True)
    assert fit_task(FitConfig(**kw), explicit=set(kw), log=quiet)["stopped"] == "completed"


def test_fit_resume_refuses_a_changed_series(tmp_path):
    series = tmp_path / "s.csv"
    values = np.sin(np.arange(300) / 7)
    np.savetxt(series, values)
    out = tmp_path / "run"
    cfg = dict(task=f"csv:{series}", hidden=3, epochs=2, window=8, quiet=True, out=str(out))
    fit_task(FitConfig(**cfg, max_steps=2), log=quiet)
    values[5] += 0.5
    np.savetxt(series, values)
    resume = dict(task=f"csv:{series}", out=str(out), resume=True, quiet=True)
    with pytest.raises(ValueError, match="training data changed.*sequences then.*--force"):
        fit_task(FitConfig(**resume), log=quiet, explicit=set(resume))
    m = fit_task(FitConfig(**resume, force=True), log=quiet, explicit={*resume, "force"})
    assert m["stopped"] == "completed"


# -- SIGTERM is Ctrl-C ---------------------------------------------------------------------------
@pytest.mark.skipif(os.name != "posix", reason="SIGTERM")
def test_sigterm_saves_and_stops_like_ctrl_c(text, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "bptt", "train", "--data", str(text),
                             "--embed", "6", "--hidden", "6", "--batch", "4", "--bptt", "5",
                             "--epochs", "500", "--quiet", "--out", str(out)],
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for _ in range(600):  # until it trains
        if (out / "log.jsonl").exists():
            break
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted at step" in err and "Traceback" not in err
    resume = dict(resume=True, epochs=500, max_steps=1)
    assert train_language_model(lm(text, out, **resume), explicit=set(resume))["steps"] >= 1


# -- every rank refuses alike --------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_refusal_before_training_is_made_on_every_rank(kind, text, tmp_path):
    """A folder that holds a run: rank 0 sees it, and every rank raises the same error (a
    rank that went on would wait forever for rank 0 in its first reduction)."""
    out = tmp_path / "run"
    KINDS[kind](text, out)

    def rank(comm):
        kw = {"comm": comm}
        if kind == "language-model":
            return train_language_model(lm(text, out), **kw)
        if kind == "seq2seq":
            return train_seq2seq(s2s(out), log=quiet, **kw)
        return fit_task(fit(out), log=quiet, **kw)

    errors = []

    def each(comm):
        try:
            rank(comm)
        except FileExistsError as e:
            errors.append((comm.rank, str(e)))

    ThreadGroup(2).run(each)
    assert sorted(r for r, _ in errors) == [0, 1]
    assert errors[0][1] == errors[1][1] and "already holds a trained run" in errors[0][1]


def test_mpiexec_refuses_a_folder_with_a_run_on_every_rank(text, tmp_path):
    mpiexec = mpiexec_or_skip()
    out = tmp_path / "run"
    KINDS["fit"](text, out)
    env = {k: v for k, v in os.environ.items() if k not in ("PMI_SIZE", "PMI_RANK")}
    for argv in (["train", "--data", str(text), "--max-steps", "2"],
                 ["fit", "sine", "--epochs", "1"], ["seq2seq", "train", "--pairs", "50"]):
        done = subprocess.run([mpiexec, "-n", "2", sys.executable, "-m", "bptt", *argv,
                               "--quiet", "--out", str(out)], capture_output=True, text=True,
                              timeout=120, env=env)  # a hang would time out
        assert done.returncode != 0 and "already holds a trained run" in done.stderr, argv


@pytest.mark.parametrize("kind", list(KINDS))
def test_resuming_with_fewer_epochs_than_done_is_refused(kind, text, tmp_path):
    """It used to replay the history as epochs 1/1, 2/1, 3/1 with negative times."""
    out = tmp_path / "run"
    KINDS[kind](text, out, epochs=2)
    before = params_of(out)
    with pytest.raises(ValueError, match="has trained 2 epochs already; --epochs 1 asks for "
                                         "fewer") as e:
        KINDS[kind](text, out, resume=True, epochs=1)
    assert "\n" not in str(e.value) and same(params_of(out), before)
    assert KINDS[kind](text, out, resume=True, epochs=2)["stopped"] == "completed"


# -- the wrong kind of run is named --------------------------------------------------------------
@pytest.fixture(scope="module")
def runs_of_each_kind(text, tmp_path_factory):
    base = tmp_path_factory.mktemp("kinds")
    for kind in KINDS:
        KINDS[kind](text, base / kind)
    return base


@pytest.mark.parametrize("argv, kind, wanted, uses", [
    (["export", "{run}", "m.onnx"], "seq2seq", "language model", "bptt seq2seq eval"),
    (["explain", "{run}"], "seq2seq", "language model", "bptt seq2seq eval"),
    (["generate", "{run}"], "seq2seq", "language model", "bptt seq2seq eval"),
    (["plot", "gates", "{run}", "--out", "g.png"], "fit", "language model", "bptt export"),
    (["seq2seq", "translate", "{run}", "1+2"], "language-model", "seq2seq", "bptt eval"),
    (["seq2seq", "eval", "{run}"], "fit", "seq2seq", "SequenceRegressor.load"),
])
def test_a_command_given_another_kind_of_run_says_what_it_holds(runs_of_each_kind, capsys,
                                                                argv, kind, wanted, uses):
    """It used to say 'incomplete: vocab.json is missing'."""
    run = str(runs_of_each_kind / kind)
    if argv[0] == "plot":
        pytest.importorskip("matplotlib")
    assert main([a.format(run=run) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"holds a {'sequence-regressor' if kind == 'fit' else kind} model, not a " \
           f"{wanted}: it is for" in err and uses in err
