"""``bptt train``, ``bptt eval``, ``bptt generate`` through ``bptt.cli.main``."""

from __future__ import annotations

import json
import os
import signal

import pytest

from bptt.cli import main
from bptt.data.batching import StreamBatcher
from bptt.data.make_builtin import compose
from bptt.train.config import TrainConfig
from bptt.train.neural_cache import WINDOWS

SMALL = ["--embed", "8", "--hidden", "8", "--batch", "4", "--bptt", "5", "--optimizer", "adam",
         "--lr", "0.01", "--quiet"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One short training run shared by the eval/generate tests."""
    d = tmp_path_factory.mktemp("cli")
    data = d / "stories.txt"
    data.write_text(compose(stories=12), encoding="utf-8")
    out = d / "run"
    assert main(["train", "--data", str(data), "--out", str(out), "--epochs", "2", *SMALL]) == 0
    return out


def one_line_error(capsys, argv, *needles):
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for n in needles:
        assert n in err, err
    return err


def test_train_prints_and_writes_metrics(run_dir, capsys):
    m = json.loads((run_dir / "metrics.json").read_text())
    for key in ("valid_ppl", "test_ppl", "train_tokens_per_sec", "epochs_completed", "steps",
                "wall_time_s", "config"):
        assert key in m
    assert m["epochs_completed"] == 2 and m["config"]["hidden"] == 8


def test_eval_reproduces_the_valid_ppl_of_metrics(run_dir, capsys):
    m = json.loads((run_dir / "metrics.json").read_text())
    assert main(["eval", str(run_dir), "--split", "valid", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["perplexity"] == pytest.approx(m["valid_ppl"], rel=1e-9)
    assert main(["eval", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("test perplexity") and f"{m['test_ppl']:.4f}" in out


def test_generate_is_reproducible_with_a_seed(run_dir, capsys):
    argv = ["generate", str(run_dir), "--start", "one day ,", "--length", "20", "--seed", "5"]
    assert main(argv) == 0
    a = capsys.readouterr().out
    assert main(argv) == 0
    assert capsys.readouterr().out == a and a.startswith("one day ,")
    assert main(["generate", str(run_dir), "--greedy", "--length", "5", "--top-k", "3"]) == 0


def test_default_data_is_the_builtin_corpus(tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["train", "--max-steps", "2", "--out", str(out), "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["data"]["name"] == "builtin" and m["config"]["preset"] == "tiny"
    assert "valid ppl" in capsys.readouterr().out


def test_ctrl_c_exits_cleanly_with_a_checkpoint(run_dir, tmp_path, capsys, monkeypatch):
    original = StreamBatcher.next_batch
    calls = []

    def next_batch(self, time_size=None):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, time_size)

    monkeypatch.setattr(StreamBatcher, "next_batch", next_batch)
    out = tmp_path / "i"
    data = run_dir.parent / "stories.txt"
    assert main(["train", "--data", str(data), "--out", str(out), *SMALL]) == 130
    err = capsys.readouterr().err
    assert "interrupted at step 3" in err and "--resume" in err and "Traceback" not in err
    monkeypatch.setattr(StreamBatcher, "next_batch", original)
    assert main(["train", "--out", str(out), "--resume", "--max-steps", "5", "--quiet"]) == 0
    assert json.loads((out / "metrics.json").read_text())["steps"] == 5


def test_errors_are_one_line(tmp_path, capsys):
    one_line_error(capsys, ["train", "--data", str(tmp_path / "nope.txt")], "no such file",
                   "nope.txt")
    (tmp_path / "empty.txt").write_text("")
    one_line_error(capsys, ["train", "--data", str(tmp_path / "empty.txt")], "empty")
    (tmp_path / "latin.txt").write_bytes("na\u00efve text\n".encode("latin-1"))
    one_line_error(capsys, ["train", "--data", str(tmp_path / "latin.txt")], "not UTF-8",
                   "offset 2")
    one_line_error(capsys, ["train", "--preset", "giant"], "unknown preset 'giant'")
    one_line_error(capsys, ["train", "--lr", "fast"], "--lr expects a number, got 'fast'")
    one_line_error(capsys, ["train", "--lr", "inf"], "--lr expects a finite number, got 'inf'")
    one_line_error(capsys, ["train", "--epochs", "0"], "--epochs must be >= 1")
    one_line_error(capsys, ["train", "--lr", "-1"], "--lr must be positive")
    one_line_error(capsys, ["eval", str(tmp_path / "norun")], "no such file")
    one_line_error(capsys, ["eval", str(tmp_path)], "holds no checkpoint")
    one_line_error(capsys, ["generate", str(tmp_path)], "holds no checkpoint")


def test_generate_and_eval_errors(run_dir, capsys):
    one_line_error(capsys, ["generate", str(run_dir), "--temperature", "0"],
                   "--temperature must be positive")
    one_line_error(capsys, ["generate", str(run_dir), "--length", "x"],
                   "--length expects an integer")
    one_line_error(capsys, ["generate", str(run_dir), "--skip", "zebra"], "'zebra'")
    one_line_error(capsys, ["train", "--out", str(run_dir), "--resume", "--hidden", "9"],
                   "differs from the run being resumed")


def test_eval_on_another_text_with_the_models_vocabulary(run_dir, tmp_path, capsys):
    other = tmp_path / "other.txt"
    other.write_text("one day , she found a zebra .\nthe end .\n", encoding="utf-8")
    assert main(["eval", str(run_dir), "--data", str(other), "--split", "all", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["tokens"] == 13 and r["perplexity"] > 1  # 'zebra' is read as <unk>
    assert r["unk_fraction"] == pytest.approx(1 / 13)
    assert main(["eval", str(run_dir), "--data", str(other), "--split", "all"]) == 0
    assert "10 of 13 tokens of other.txt scored, 7.7% <unk>" in capsys.readouterr().out


def test_eval_with_the_continuous_cache(run_dir, tmp_path, capsys):
    m = json.loads((run_dir / "metrics.json").read_text())
    assert main(["eval", str(run_dir), "--cache", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["perplexity"] == pytest.approx(m["test_ppl"], rel=1e-9)  # the plain one as ever
    c = r["cache"]
    assert c["tuned_on"]["split"] == "valid" and c["window"] in WINDOWS
    assert c["tuned_on"]["perplexity"] <= m["valid_ppl"] + 1e-9  # the grid's best on valid
    given = ["--cache-window", str(c["window"]), "--cache-theta", str(c["theta"]),
             "--cache-lambda", str(c["lam"])]
    assert main(["eval", str(run_dir), *given, "--json"]) == 0
    fixed = json.loads(capsys.readouterr().out)
    assert fixed["cache_perplexity"] == pytest.approx(r["cache_perplexity"], rel=1e-12)
    assert fixed["cache"]["tuned_on"] is None
    assert main(["eval", str(run_dir), "--cache"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith(f"test perplexity {r['cache_perplexity']:.4f} with the "
                               f"continuous cache (window {c['window']}")
    assert "the best on valid, where it gives" in lines[1]
    other = tmp_path / "other.txt"
    other.write_text("one day , she found a zebra .\nthe end .\n", encoding="utf-8")
    assert main(["eval", str(run_dir), "--data", str(other), "--split", "all", *given]) == 0
    one_line_error(capsys, ["eval", str(run_dir), "--data", str(other), "--split", "all",
                            "--cache"], "tuned on a validation split", "--cache-theta")
    one_line_error(capsys, ["eval", str(run_dir), "--cache", "--book"], "leave out --book")
    one_line_error(capsys, ["eval", str(run_dir), "--cache-window", "100"],
                   "give all three of --cache-window, --cache-theta and --cache-lambda")
    one_line_error(capsys, ["eval", str(run_dir), "--cache-window", "0", "--cache-theta", "1",
                            "--cache-lambda", "0.1"], "--cache-window must be >= 1")
    one_line_error(capsys, ["eval", str(run_dir), "--cache-window", "9", "--cache-theta", "1",
                            "--cache-lambda", "1"], "cache lambda 1.0: give a number in [0, 1)")


def test_train_with_cache_reports_it_and_eval_agrees(tmp_path, capsys):
    data = tmp_path / "stories.txt"
    data.write_text(compose(stories=12), encoding="utf-8")
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(out), "--epochs", "1", "--cache",
                 *SMALL]) == 0
    printed = capsys.readouterr().out.splitlines()
    m = json.loads((out / "metrics.json").read_text())
    c = m["cache"]
    assert m["config"]["cache"] is True and c["tuned_on"]["split"] == "valid"
    assert printed[1] == (f"test ppl {m['test_ppl_cache']:.2f} with the continuous cache "
                          f"(window {c['window']}, theta {c['theta']:g}, lambda {c['lam']:g}: "
                          f"the best on valid, where it gives {c['tuned_on']['perplexity']:.2f})")
    assert main(["eval", str(out), "--cache", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["cache_perplexity"] == pytest.approx(m["test_ppl_cache"], rel=1e-12)
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--no-cache"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert "test_ppl_cache" not in m and m["epochs_completed"] == 2
    assert TrainConfig(preset="cpu-hour").resolved().cache is True
    assert TrainConfig(preset="rnnlm").resolved().cache is False


def test_blas_threads_default_to_one_and_follow_threads(run_dir, capsys, monkeypatch):
    from bptt.blas import get_blas_threads, set_blas_threads

    before = get_blas_threads()
    if before is None:
        pytest.skip("NumPy does not use OpenBLAS here")
    for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(v, raising=False)
    try:
        assert main(["eval", str(run_dir), "--json"]) == 0
        assert get_blas_threads() == 1
        assert main(["eval", str(run_dir), "--json", "--threads", "2"]) == 0
        assert get_blas_threads() == 2
        one_line_error(capsys, ["eval", str(run_dir), "--threads", "0"], "--threads must be")
    finally:
        set_blas_threads(before)


def test_a_fresh_run_never_silently_replaces_a_trained_one(tmp_path, capsys):
    data = tmp_path / "stories.txt"
    data.write_text(compose(stories=6), encoding="utf-8")
    out = tmp_path / "run"
    argv = ["train", "--data", str(data), "--out", str(out), "--max-steps", "2", *SMALL]
    assert main(argv) == 0
    before = (out / "best" / "model.npz").read_bytes()
    capsys.readouterr()
    one_line_error(capsys, argv, "already holds a trained run", "--resume", "--overwrite", str(out))
    assert (out / "best" / "model.npz").read_bytes() == before  # untouched
    assert main([*argv, "--overwrite", "--seed", "3"]) == 0
    assert (out / "best" / "model.npz").read_bytes() != before


def test_train_help_lists_what_each_preset_sets(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "presets" in out
    assert "better-rnnlm  --cell lstm --layers 2 --embed 650 --hidden 650 --dropout 0.5" in out
    assert "--tie" in out.split("better-rnnlm")[-1].splitlines()[0]


def test_resume_after_max_steps_continues_to_the_end(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "--max-steps", "3", "--quiet", "--out", out, "--hidden", "8",
                 "--embed", "8", "--epochs", "1"]) == 0
    assert main(["train", "--resume", "--quiet", "--out", out]) == 0
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["stopped"] == "completed" and m["epochs_completed"] == 1


def test_japanese_text_at_character_level_trains_and_generates_valid_utf8(tmp_path, capsys):
    text = tmp_path / "ja.txt"
    text.write_text("吾輩は猫である。名前はまだ無い。\nどこで生れたかとんと見当がつかぬ。\n"
                    "何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。\n"
                    * 30, encoding="utf-8")
    out = str(tmp_path / "run")
    assert main(["train", "--data", str(text), "--level", "char", "--embed", "16",
                 "--hidden", "16", "--batch", "4", "--bptt", "10", "--max-steps", "20",
                 "--quiet", "--out", out]) == 0
    vocab = json.loads((tmp_path / "run" / "best" / "vocab.json").read_text(encoding="utf-8"))
    assert {"猫", "ニ", "は"} <= set(vocab["tokens"])  # kanji, katakana, hiragana
    capsys.readouterr()
    assert main(["generate", out, "--start", "吾輩は", "--length", "20", "--seed", "1"]) == 0
    sample = capsys.readouterr().out
    assert sample.startswith("吾輩は") and sample.encode("utf-8").decode("utf-8") == sample
