"""``bptt fit``: per-epoch output, metrics JSON, saved model, plots, CSV input, errors."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from bptt.cli import main
from bptt.train.estimators import SequenceClassifier, SequenceRegressor


def test_fit_sine_prints_epochs_writes_metrics_model_and_forecast_plot(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["fit", "sine", "--epochs", "3", "--hidden", "16", "--out", str(out),
                 "--plot", str(tmp_path / "sine.png")])
    assert code == 0
    text = capsys.readouterr().out
    assert text.count("val_mse") == 3 and "epoch   3/3" in text
    assert "last_value baseline" in text
    m = json.loads((out / "metrics.json").read_text())
    assert m["kind"] == "regression" and len(m["history"]["loss"]) == 3
    assert m["config"]["hidden"] == 16 and m["model"]["cell"] == "lstm"
    assert m["test"]["mse"] < m["baselines"]["mean"]
    model = SequenceRegressor.load(out / "model")
    assert model.hidden_size == 16
    assert (tmp_path / "sine.png").read_bytes()[:4] == b"\x89PNG"
    f = m["forecast"]  # closed loop over the whole test part vs. teacher-forced steps
    assert f["steps"] == 150 and f["mse_one_step"] == pytest.approx(m["test"]["mse"], rel=1e-4)
    assert "recursive mse" in text


def test_fit_adding_and_waveforms_options(tmp_path, capsys):
    assert main(["fit", "adding", "--seq-len", "12", "--n-train", "200", "--epochs", "1",
                 "--cell", "gru", "--bidirectional", "--layers", "2", "--out",
                 str(tmp_path / "a")]) == 0
    m = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert m["task_info"]["seq_len"] == 12 and m["model"]["bidirectional"]
    assert m["steps"] == 7  # ceil(200 / 32)
    assert main(["fit", "waveforms", "--classes", "2", "--n-train", "100", "--epochs", "1",
                 "--cell", "rnn", "--out", str(tmp_path / "w"),
                 "--plot", str(tmp_path / "w.png")]) == 0
    assert "val_accuracy" in capsys.readouterr().out
    clf = SequenceClassifier.load(tmp_path / "w" / "model")
    assert clf.n_classes_ == 2
    assert (tmp_path / "w.png").exists()  # loss curves for a non-forecasting task


def test_fit_csv_series(tmp_path, capsys):
    t = np.arange(300)
    rows = "\n".join(f"{i},{np.sin(i / 8):.6f},{np.cos(i / 8):.6f}" for i in t)
    path = tmp_path / "s.csv"
    path.write_text("step,a,b\n" + rows + "\n")
    code = main(["fit", f"csv:{path}", "--column", "a,b", "--window", "10", "--epochs", "2",
                 "--out", str(tmp_path / "c"), "--plot", str(tmp_path / "c.png")])
    assert code == 0
    m = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert m["task_info"]["window"] == 10 and m["task_info"]["target"] == [0, 1]
    assert (tmp_path / "c.png").exists()


@pytest.mark.parametrize("argv,msg", [
    (["fit", "nope"], "unknown task 'nope'"),
    (["fit", "csv:/no/such.csv"], "no such file"),
    (["fit", "adding", "--classes", "3"], "--classes is for the waveforms task"),
    (["fit", "sine", "--seq-len", "0"], "--seq-len must be a positive integer, got 0"),
    (["fit", "sine", "--epochs", "0"], "--epochs must be a positive integer, got 0"),
    (["fit", "sine", "--batch", "-2"], "--batch must be a positive integer, got -2"),
    (["fit", "sine", "--lr", "nan"], "--lr must be a positive number, got nan"),
    (["fit", "sine", "--dropout", "1.5"], "--dropout must be in [0, 1), got 1.5"),
])
def test_fit_errors_are_one_line(argv, msg, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1


@pytest.mark.parametrize("argv,msg", [
    (["fit", "sine", "--epochs", "abc"], "argument --epochs: invalid int value: 'abc'"),
    (["plot", "gates"], "the following arguments are required"),
])
def test_argument_errors_are_one_line_without_the_usage(argv, msg, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert msg in err and "--help" in err and err.count("\n") == 1, err


# -- one training loop: resume, overwrite, Ctrl-C, progress -------------------------------------
def _model_arrays(path):
    with np.load(path / "model.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("task,extra", [("sine", []), ("waveforms", ["--n-train", "60"])])
def test_fit_resume_after_max_steps_equals_the_uninterrupted_run(tmp_path, task, extra):
    base = ["fit", task, "--epochs", "3", "--hidden", "6", "--batch", "16", "--quiet",
            "--dropout", "0.2", "--layers", "2", *extra]
    assert main([*base, "--out", str(tmp_path / "full")]) == 0
    assert main([*base, "--out", str(tmp_path / "part"), "--max-steps", "5"]) == 0
    assert main(["fit", task, "--out", str(tmp_path / "part"), "--resume", "--quiet"]) == 0
    full, part = _model_arrays(tmp_path / "full" / "model"), _model_arrays(tmp_path / "part" /
                                                                           "model")
    for k in full:
        np.testing.assert_array_equal(full[k], part[k], err_msg=k)
    m = json.loads((tmp_path / "part" / "metrics.json").read_text())
    assert m["stopped"] == "completed" and len(m["history"]["loss"]) == 3


def test_fit_refuses_a_folder_with_a_run_and_overwrite_replaces_it(tmp_path, capsys):
    out = str(tmp_path / "run")
    args = ["fit", "sine", "--epochs", "1", "--hidden", "4", "--quiet", "--out", out]
    assert main(args) == 0
    assert main(args) == 2
    assert "already holds a trained run" in capsys.readouterr().err
    assert main([*args, "--lr", "1e30", "--clip", "0", "--overwrite"]) == 2  # diverges
    assert "training diverged" in capsys.readouterr().err
    assert SequenceRegressor.load(tmp_path / "run" / "model").hidden_size == 4  # still there
    assert main([*args, "--overwrite", "--seed", "3"]) == 0
    assert not (tmp_path / "run" / ".replaced").exists()
    assert main(["fit", "sine", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_fit_ctrl_c_saves_and_resume_continues(tmp_path):
    import os
    import signal

    from bptt.train.fit import FitConfig, fit_task

    def interrupt(tr):
        if tr.state.step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    cfg = FitConfig("sine", hidden=4, epochs=2, out=str(tmp_path / "r"), quiet=True)
    m = fit_task(cfg, log=lambda s: None, on_step=interrupt)
    assert m["stopped"] == "interrupted" and (tmp_path / "r" / "last").is_dir()
    m = fit_task(FitConfig("sine", out=str(tmp_path / "r"), resume=True, quiet=True),
                 log=lambda s: None)
    assert m["stopped"] == "completed" and len(m["history"]["loss"]) == 2


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_fit_shows_progress_inside_an_epoch(tmp_path):
    from bptt.train.fit import FitConfig, fit_task

    bar = FakeTTY()
    fit_task(FitConfig("adding", seq_len=10, n_train=200, epochs=1, out=str(tmp_path / "a")),
             log=lambda s: None, stream=bar)
    assert "/7 [" in bar.getvalue()  # tqdm's bar over the run's 7 steps, on a terminal
