"""The truncated-BPTT trainer: perplexity, lr decay, divergence, Ctrl-C, exact resume."""

from __future__ import annotations

import io
import json
import math
import os
import signal
import warnings

import numpy as np
import pytest

import bptt.train.language_model as trainer_mod
from bptt.data.make_builtin import compose
from bptt.models.rnnlm import LanguageModel
from bptt.train import (
    Progress,
    TrainConfig,
    TrainingDiverged,
    perplexity,
    read_jsonl,
    train_language_model,
)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("data") / "stories.txt"
    p.write_text(compose(stories=12), encoding="utf-8")  # ~1,700 tokens
    return p


def small_config(text_file, out, **kw):
    base = dict(data=str(text_file), out=str(out), embed=8, hidden=8, batch=4, bptt=5,
                optimizer="adam", lr=0.01, clip=1.0, epochs=2, quiet=True, log_every=10,
                dtype="float64")
    base.update(kw)
    return TrainConfig(**base)


def params_of(out):
    with np.load(out / "last" / "model.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


# -- perplexity ----------------------------------------------------------------------------------
def test_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    model = LanguageModel(37, 4, 4, dtype=np.float64, seed=0)
    model.affine.params[0][...] = 0
    model.affine.params[1][...] = 0
    ids = np.random.default_rng(0).integers(0, 37, 500)
    assert perplexity(model, ids, 7, 9) == pytest.approx(37, rel=1e-12)


def test_perplexity_is_exp_of_the_mean_loss_over_every_stream_token():
    rng = np.random.default_rng(1)
    model = LanguageModel(11, 4, 5, num_layers=2, dtype=np.float64, seed=0)
    for p in model.params:
        p[...] = 0.5 * rng.standard_normal(p.shape)
    ids = rng.integers(0, 11, 103)
    N, L = 3, 34  # (103 - 1) // 3
    nll = 0.0
    for i in range(N):  # reference: each stream in one piece, log-softmax by hand
        model.reset_state()
        s = model.predict(ids[i * L:(i + 1) * L][None])[0]  # (L, V)
        logp = s - s.max(1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(1, keepdims=True))
        nll -= logp[np.arange(L), ids[i * L + 1:(i + 1) * L + 1]].sum()
    assert perplexity(model, ids, N, 5) == pytest.approx(math.exp(nll / (N * L)), rel=1e-10)


# -- a whole run ---------------------------------------------------------------------------------
def test_training_writes_everything_and_learns(text_file, tmp_path):
    out = tmp_path / "run"
    m = train_language_model(small_config(text_file, out, epochs=3, plot=str(tmp_path / "p.png"),
                                          dropout=0.1, layers=2))
    assert m["stopped"] == "completed" and m["epochs_completed"] == 3
    assert m["steps"] == 3 * ((m["data"]["train_tokens"] - 1) // 20)
    for key in ("valid_ppl", "test_ppl", "train_tokens_per_sec", "wall_time_s", "config"):
        assert m[key] is not None
    hist = [r["valid_ppl"] for r in read_jsonl(out / "log.jsonl") if r["event"] == "epoch"]
    assert len(hist) == 3 and hist[-1] < hist[0] < m["data"]["vocab_size"]
    assert m["valid_ppl"] == min(hist)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["valid_ppl"] == m["valid_ppl"] and saved["test_ppl"] == m["test_ppl"]
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    events = [r["event"] for r in read_jsonl(out / "log.jsonl")]
    assert events[0] == "start" and events[-1] == "end" and "train" in events
    assert (out / "best" / "model.npz").exists() and (out / "last" / "optimizer.npz").exists()


def test_lr_is_divided_when_valid_ppl_does_not_improve(text_file, tmp_path, monkeypatch):
    values = iter([10.0, 12.0, 11.0, 9.0, 5.0])
    monkeypatch.setattr(trainer_mod, "perplexity", lambda *a, **k: next(values))
    m = train_language_model(small_config(text_file, tmp_path, epochs=4, optimizer="sgd",
                                          lr=1.0))
    hist = [r for r in read_jsonl(tmp_path / "log.jsonl") if r["event"] == "epoch"]
    assert [h["lr"] for h in hist] == [1.0, 0.25, 0.0625, 0.0625]
    assert [h["best"] for h in hist] == [True, False, False, True]
    assert m["valid_ppl"] == 9.0 and m["best_epoch"] == 4 and m["test_ppl"] == 5.0


def test_max_steps_stops_inside_an_epoch_and_still_evaluates(text_file, tmp_path):
    m = train_language_model(small_config(text_file, tmp_path, max_steps=7))
    assert m["stopped"] == "max_steps" and m["steps"] == 7 and m["epochs_completed"] == 0
    assert m["valid_ppl"] is not None and (tmp_path / "best").exists()


def test_max_minutes_stops_after_a_step(text_file, tmp_path):
    m = train_language_model(small_config(text_file, tmp_path, max_minutes=1e-9))
    assert m["stopped"] == "max_minutes" and m["steps"] == 1


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_checkpoint(text_file, tmp_path):
    iters = []

    def poison(tr):
        iters.append(tr.iters)
        if tr.state.step == tr.iters + 3:
            tr.learner.model.params[1][...] = np.nan

    with pytest.raises(TrainingDiverged, match=r"the loss became nan at step (\d+).*--lr.*--clip") \
            as e:
        train_language_model(small_config(text_file, tmp_path), on_step=poison)
    assert f"step {iters[0] + 4} (epoch 2)" in str(e.value)
    assert "last good checkpoint" in str(e.value)
    last = json.loads((tmp_path / "last" / "state.json").read_text())
    assert last["trainer"]["step"] == iters[0]  # the epoch-end checkpoint, untouched
    assert np.isfinite(params_of(tmp_path)["rnn0.Wx"]).all()


def test_divergence_is_reported_without_numpy_overflow_warnings(text_file, tmp_path):
    cfg = small_config(text_file, tmp_path, optimizer="sgd", lr=1e30, clip=0.0, dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a warning fails the test
        with pytest.raises(TrainingDiverged, match="training diverged"):
            train_language_model(cfg)


def test_ctrl_c_saves_a_checkpoint_and_returns(text_file, tmp_path):
    def interrupt(tr):
        if tr.state.step == 6:
            os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    m = train_language_model(small_config(text_file, tmp_path), on_step=interrupt)
    assert signal.getsignal(signal.SIGINT) is before  # our handler is gone again
    assert m["stopped"] == "interrupted" and m["steps"] == 6
    state = json.loads((tmp_path / "last" / "state.json").read_text())
    assert state["trainer"]["step"] == 6 and state["trainer"]["learner"]["position"] == 6 * 5
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.parametrize("stop_at", [9, "epoch"])
def test_resume_after_an_interrupt_gives_the_same_parameters(text_file, tmp_path, stop_at):
    kw = dict(layers=2, dropout=0.3, epochs=3)  # dropout: the RNG state must be restored too
    full = tmp_path / "full"
    m_full = train_language_model(small_config(text_file, full, **kw))

    part = tmp_path / "part"

    def interrupt(tr):
        target = tr.iters if stop_at == "epoch" else stop_at
        if tr.state.step == target:
            os.kill(os.getpid(), signal.SIGINT)

    assert train_language_model(small_config(text_file, part, **kw),
                                on_step=interrupt)["stopped"] == "interrupted"
    m_res = train_language_model(TrainConfig(out=str(part), resume=True, quiet=True),
                                 explicit={"out", "resume", "quiet"})
    assert m_res["steps"] == m_full["steps"]
    a, b = params_of(full), params_of(part)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert m_res["valid_ppl"] == m_full["valid_ppl"] and m_res["test_ppl"] == m_full["test_ppl"]


def test_resume_refuses_changed_settings_and_missing_runs(text_file, tmp_path):
    with pytest.raises(FileNotFoundError):
        train_language_model(TrainConfig(out=str(tmp_path / "none"), resume=True))
    train_language_model(small_config(text_file, tmp_path, max_steps=3))
    with pytest.raises(ValueError, match="--hidden 16 differs from the run being resumed"):
        train_language_model(TrainConfig(out=str(tmp_path), resume=True, hidden=16),
                             explicit={"out", "resume", "hidden"})
    m = train_language_model(TrainConfig(out=str(tmp_path), resume=True, max_steps=5,
                                         quiet=True), explicit={"out", "resume", "max_steps",
                                                                "quiet"})
    assert m["steps"] == 5


def test_config_presets_and_errors():
    cfg = TrainConfig(data="ptb", preset="better-rnnlm").resolved()
    assert (cfg.layers, cfg.hidden, cfg.dropout, cfg.tie, cfg.lr) == (2, 650, 0.5, True, 20.0)
    assert TrainConfig().resolved().preset == "tiny"
    text = TrainConfig(data="x.txt").resolved()  # your own text: measured, not the book's
    assert (text.preset, text.optimizer, text.lr, text.init, text.hidden) == (
        "text", "adam", 0.002, "torch", 200)
    assert TrainConfig(data="ptb").resolved().preset == "rnnlm"
    assert TrainConfig(data="ptb", optimizer="adam").resolved().lr == 0.002
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        TrainConfig(preset="huge").resolved()
    with pytest.raises(ValueError, match="--tie needs --embed equal to --hidden"):
        TrainConfig(embed=10, hidden=20, tie=True).resolved()
    with pytest.raises(ValueError, match="--batch must be a positive integer"):
        TrainConfig(batch=0).resolved()


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_draws_on_a_terminal_nothing_elsewhere_or_when_quiet():
    tty = FakeTTY()
    bar = Progress(100, 4, stream=tty, interval=0.0)
    bar.update(0, 1, 5.0, 0.0, 20.0)
    bar.update(50, 2, 4.6, 7000.0, 20.0, force=True)
    line = tty.getvalue().split("\r")[-1]
    assert line.startswith("epoch 2/4:") and "50/100" in line
    assert "loss 4.6 ppl 99.5, 7,000 tok/s, lr 20" in line
    bar.message("epoch 2 done")
    assert "epoch 2 done\n" in tty.getvalue()
    bar.close()
    pipe = io.StringIO()  # not a terminal: no bar (the epoch lines and log.jsonl remain)
    p2 = Progress(100, 4, stream=pipe, interval=0.0, unit="seq", show_ppl=False)
    p2.update(2, 1, 5.0, 10.0, 1.0, force=True)
    assert pipe.getvalue() == "" and not p2.live
    p2.message("epoch 1 done")
    assert pipe.getvalue() == "epoch 1 done\n"
    quiet = FakeTTY()
    p3 = Progress(100, 4, quiet=True, stream=quiet, interval=0.0)
    p3.update(1, 1, 5.0, 10.0, 1.0)
    p3.message("hello")
    assert quiet.getvalue() == ""


def test_plot_needs_matplotlib_and_says_so(monkeypatch, text_file, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *a, **k):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(RuntimeError, match=r"--plot needs matplotlib.*pip install"):
        train_language_model(small_config(text_file, tmp_path, plot=str(tmp_path / "x.png")))
    assert not (tmp_path / "last").exists()  # refused before training


def test_infinite_gradients_stop_before_the_update(text_file, tmp_path, monkeypatch):
    import bptt.optim as optim

    real = optim.clip_grads
    calls = []

    def clip(grads, max_norm):
        calls.append(1)
        return float("inf") if len(calls) == 3 else real(grads, max_norm)

    monkeypatch.setattr(optim, "clip_grads", clip)
    with pytest.raises(TrainingDiverged, match="the gradient norm became inf at step 3 "):
        train_language_model(small_config(text_file, tmp_path))


def test_a_nan_validation_never_replaces_the_last_checkpoint(text_file, tmp_path, monkeypatch):
    values = iter([10.0, float("nan")])
    monkeypatch.setattr(trainer_mod, "perplexity", lambda *a, **k: next(values))
    with pytest.raises(TrainingDiverged, match="the validation perplexity became nan"):
        train_language_model(small_config(text_file, tmp_path, epochs=3))
    state = json.loads((tmp_path / "last" / "state.json").read_text())
    assert len(state["trainer"]["history"]) == 1  # still the first epoch's checkpoint


def test_perplexity_of_a_huge_finite_loss_is_inf_not_an_overflow_error():
    assert trainer_mod.perplexity_of(2.0) == pytest.approx(math.exp(2.0))
    assert trainer_mod.perplexity_of(1e30) == math.inf
    assert trainer_mod.loss_has_diverged(1e30) and trainer_mod.loss_has_diverged(math.nan)
    assert not trainer_mod.loss_has_diverged(700.0)


@pytest.mark.parametrize("kw", [dict(optimizer="sgd", lr=1e6, clip=1.0),
                                dict(optimizer="sgd", lr=1e3, clip=0.0, preset="rnnlm")])
def test_a_loss_that_explodes_while_finite_is_reported_as_divergence(text_file, tmp_path, kw):
    with pytest.raises(TrainingDiverged, match="training diverged") as e:
        train_language_model(small_config(text_file, tmp_path, dtype="float32", **kw))
    assert "\n" not in str(e.value)


def test_the_divergence_hint_suggests_a_clip_below_the_one_in_use(text_file, tmp_path):
    cfg = small_config(text_file, tmp_path, optimizer="sgd", lr=1e30, clip=0.25)
    with pytest.raises(TrainingDiverged) as e:
        train_language_model(cfg)
    assert "now --clip 0.25, try --clip 0.0625" in str(e.value)


# -- AWD-LSTM's schedule: NT-ASGD, variable-length BPTT, --decay-after ------------------------
class ScriptedLearner:
    """One parameter pulled towards 0; evaluation returns scripted values and records the
    parameter it saw (to tell averaged from raw weights)."""

    unit, monitor, monitor_label, loss_limit = "row", "valid", "validation loss", math.inf

    def __init__(self, values):
        self.params, self.grads = [np.array([4.0])], [np.zeros(1)]
        self.steps_per_epoch, self.values, self.seen = 2, list(values), []

    def train_step(self):
        self.grads[0][...] = self.params[0]  # d/dp of p^2 / 2
        return float(self.params[0][0] ** 2 / 2), 1

    def evaluate(self, train_loss):
        self.seen.append(float(self.params[0][0]))
        return {"valid": self.values.pop(0)}

    def describe(self, rec):
        return str(rec["valid"])

    def position(self):
        return {}

    def checkpoint(self, resumable):
        return {}, {}

    def set_training(self, on):
        pass


def test_ntasgd_starts_averaging_at_the_trigger_and_evaluates_the_average():
    from bptt.optim import NTASGD
    from bptt.train.trainer import Trainer, TrainerSettings

    learner = ScriptedLearner([5.0, 4.0, 4.5, 4.2, 4.1, 4.0])
    opt = NTASGD(lr=0.25, nonmono=1)
    Trainer(learner, opt, TrainerSettings(epochs=6, quiet=True)).fit()
    # 4.5 > min(5.0) fires at epoch 3: from then on the average of p_7.. is evaluated
    assert opt.triggered and opt.averaged == 6
    raw = [4.0 * 0.75 ** k for k in range(1, 13)]  # p after each update
    assert learner.seen[:3] == pytest.approx([raw[1], raw[3], raw[5]])
    assert learner.seen[3] == pytest.approx(np.mean(raw[6:8]))
    assert learner.seen[5] == pytest.approx(np.mean(raw[6:12]))
    assert learner.params[0][0] == pytest.approx(raw[11])  # training goes on with the raw p


def test_decay_after_divides_the_lr_after_every_epoch_from_then_on():
    from bptt.optim import SGD
    from bptt.train.trainer import Trainer, TrainerSettings

    learner = ScriptedLearner([5.0, 4.0, 3.0, 2.0, 1.0])
    opt = SGD(lr=1.0)
    tr = Trainer(learner, opt, TrainerSettings(epochs=5, quiet=True, lr_decay=2.0,
                                               decay_after=3))
    tr.fit()
    assert [r["lr"] for r in tr.state.history] == [1.0, 1.0, 0.5, 0.25, 0.125]


def test_variable_bptt_windows_cover_the_stream_and_resume_exactly(text_file, tmp_path):
    from bptt.data.batching import variable_bptt_length

    lengths = [variable_bptt_length(35, 0, p) for p in range(0, 20000, 37)]
    assert 5 <= min(lengths) and max(lengths) <= 55 and 30 < np.mean(lengths) < 36
    assert variable_bptt_length(35, 0, 74) == variable_bptt_length(35, 0, 74)
    full = train_language_model(small_config(text_file, tmp_path / "full", variable_bptt=True,
                                             optimizer="sgd", lr=1.0, epochs=3))
    log = [r for r in read_jsonl(tmp_path / "full" / "log.jsonl") if r["event"] == "train"]
    assert full["train_tokens"] != full["steps"] * 4 * 5  # the windows varied
    assert log
    train_language_model(small_config(text_file, tmp_path / "part", variable_bptt=True,
                                      optimizer="sgd", lr=1.0, epochs=3, max_steps=7))
    train_language_model(TrainConfig(out=str(tmp_path / "part"), resume=True, quiet=True),
                         explicit={"out", "resume", "quiet"})
    for name in ("model.npz", "optimizer.npz"):
        with np.load(tmp_path / "full" / "last" / name) as a, \
                np.load(tmp_path / "part" / "last" / name) as b:
            assert all(np.array_equal(a[k], b[k]) for k in a.files)


def test_a_model_worse_than_guessing_after_an_epoch_is_pointed_out(text_file, tmp_path, capsys):
    from bptt.cli import main

    def run(lr, out):
        code = main(["train", "--data", str(text_file), "--embed", "8", "--hidden", "8",
                     "--batch", "4", "--bptt", "5", "--epochs", "1", "--optimizer", "sgd",
                     "--lr", lr, "--clip", "0", "--out", str(tmp_path / out)])
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    code, text = run("200", "wrecked")  # finite, but far worse than uniform (seed 0)
    assert code == 0 and "worse than a uniform guess" in text and "--init torch" in text
    code, text = run("20", "fine")
    assert code == 0 and "worse than a uniform guess" not in text
