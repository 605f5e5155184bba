"""Generated sequence tasks: shapes, splits, seeds, what the targets mean, file loading."""

from __future__ import annotations

import numpy as np
import pytest

from bptt.data.tasks import (
    adding_problem,
    copy_task,
    load_series,
    make_task,
    noisy_sine,
    series_task,
    waveforms,
    window_series,
)


def test_window_series_targets_and_horizon():
    s = np.arange(10.0)
    X, y = window_series(s, window=3, horizon=2)
    assert X.shape == (6, 3, 1) and y.shape == (6, 1)
    np.testing.assert_array_equal(X[0, :, 0], [0, 1, 2])
    assert y[0, 0] == 4.0  # two steps after the window's last value 2
    assert y[-1, 0] == 9.0
    m = np.stack([s, 10 * s], axis=1)
    X, y = window_series(m, window=4, target=[1])
    assert X.shape == (6, 4, 2) and y.shape == (6, 1)
    assert y[0, 0] == 40.0


def test_window_series_errors():
    with pytest.raises(ValueError, match="no window"):
        window_series(np.arange(3.0), window=3)
    with pytest.raises(ValueError, match="target column 2"):
        window_series(np.zeros((10, 2)), window=2, target=[2])


def test_noisy_sine_time_split_no_shared_targets():
    task = noisy_sine(n_periods=3, period=50, seq_len=10, seed=1)
    assert task.X_train.shape[1:] == (10, 1) and task.y_train.shape[1] == 1
    s = task.series[:, 0]
    # every target is a series value, and the splits' targets are disjoint and in time order
    def positions(y):
        return [int(np.flatnonzero(s == v)[0]) for v in y[:, 0]]
    p_tr, p_va, p_te = positions(task.y_train), positions(task.y_valid), positions(task.y_test)
    assert max(p_tr) < min(p_va) and max(p_va) < min(p_te)
    assert len(p_tr) + len(p_va) + len(p_te) == len(s) - 10  # each step after the first window
    assert task.baselines["last_value"] < task.baselines["mean"]


def test_noisy_sine_seeded():
    a, b, c = noisy_sine(seed=3), noisy_sine(seed=3), noisy_sine(seed=4)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    assert not np.array_equal(a.X_train, c.X_train)
    clean = np.sin(2 * np.pi * np.arange(a.series.shape[0]) / 100)
    assert np.abs(a.series[:, 0] - clean).max() <= 0.05


def test_adding_problem_targets_are_the_marked_sums():
    task = adding_problem(n_train=50, n_valid=10, n_test=20, seq_len=30, seed=0)
    X, y = task.train
    assert X.shape == (50, 30, 2) and y.shape == (50, 1)
    assert (X[:, :, 1].sum(axis=1) == 2).all()
    assert (X[:, :15, 1].sum(axis=1) == 1).all()  # one marker in each half
    np.testing.assert_allclose((X[:, :, 0] * X[:, :, 1]).sum(axis=1), y[:, 0])
    assert task.X_test.shape == (20, 30, 2)
    big = adding_problem(n_train=10, n_valid=0, n_test=4000, seq_len=10)
    assert abs(big.baselines["variance"] - 1 / 6) < 0.02


def test_copy_task_layout():
    task = copy_task(n_train=4, n_valid=1, n_test=3, length=3, delay=4, n_symbols=5, seed=0)
    X, y = task.train
    T = 3 + 4 + 3
    assert X.shape == (4, T, 7) and y.shape == (4, T)
    ids = X.argmax(axis=-1)
    np.testing.assert_array_equal(ids[:, :3], y[:, -3:])  # the answer is the input symbols
    assert (y[:, :-3] == -1).all()
    assert (ids[:, 3 + 4 - 1] == 6).all()  # go marker at the end of the pause
    assert (ids[:, 3:6] == 5).all() and (ids[:, -3:] == 5).all()  # blanks
    assert task.many_to_many and task.n_classes == 5


@pytest.mark.parametrize("n_classes", [2, 4])
def test_waveforms_balanced_and_distinct(n_classes):
    task = waveforms(n_train=400, n_valid=40, n_test=40, seq_len=30, n_classes=n_classes,
                     noise=0.0, seed=0)
    X, y = task.train
    assert X.shape == (400, 30, 1) and y.dtype.kind == "i"
    counts = np.bincount(np.concatenate([y, task.y_valid, task.y_test]))
    assert counts.max() - counts.min() <= 1
    if n_classes == 4:  # without noise a square wave takes two values, the others many
        assert all(len(np.unique(np.abs(x[:, 0]).round(6))) == 1 for x in X[y == 3][:10])
        assert all(len(np.unique(np.abs(x[:, 0]).round(6))) > 2 for x in X[y == 2][:10])
    # the ramps: rising steps outnumber falling ones going up, and the reverse going down
    rises = (np.diff(X[:, :, 0], axis=1) > 0).mean(axis=1)
    assert (rises[y == 0] > 0.5).all() and (rises[y == 1] < 0.5).all()


def test_make_task_names_and_errors():
    assert make_task("adding", n_train=5, n_valid=1, n_test=1, seq_len=8).X_train.shape[1] == 8
    assert make_task("copy", n_train=2, n_valid=1, n_test=1, seq_len=6).info["delay"] == 6
    with pytest.raises(ValueError, match="unknown task"):
        make_task("nope")
    with pytest.raises(ValueError, match="n_classes"):
        waveforms(n_classes=7)
    with pytest.raises(ValueError, match="seq_len"):
        adding_problem(seq_len=1)


def test_load_series_csv_header_and_columns(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("date,temp,rain\n2020-01-01,1.5,0\n2020-01-02,2.5,1\n2020-01-03,3.5,0\n")
    np.testing.assert_array_equal(load_series(p), [[1.5, 0], [2.5, 1], [3.5, 0]])
    np.testing.assert_array_equal(load_series(p, "temp")[:, 0], [1.5, 2.5, 3.5])
    np.testing.assert_array_equal(load_series(p, [2])[:, 0], [0, 1, 0])
    with pytest.raises(ValueError, match="no column 'wind'"):
        load_series(p, "wind")
    q = tmp_path / "plain.csv"
    q.write_text("1\n2\n3\n4\n")
    assert load_series(q).shape == (4, 1)
    bad = tmp_path / "bad.csv"
    bad.write_text("a\n1\nx\n")
    with pytest.raises(ValueError, match="not a number"):
        load_series(bad)
    with pytest.raises(FileNotFoundError):
        load_series(tmp_path / "missing.csv")


def test_load_series_csv_encodings(tmp_path):
    bom = tmp_path / "excel.csv"  # Excel's "CSV UTF-8" starts with a byte-order mark
    bom.write_bytes("\ufeffdate,temp\n1,2.5\n2,3.5\n".encode())
    np.testing.assert_array_equal(load_series(bom, "date")[:, 0], [1, 2])
    latin = tmp_path / "latin.csv"
    latin.write_bytes("caf\xe9,temp\n1,2.5\n2,3.5\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin.csv is not UTF-8 text: byte 0xe9 at offset 3"):
        load_series(latin)


def test_load_series_npy_and_series_task_standardizes(tmp_path):
    rng = np.random.default_rng(0)
    s = 5 + 3 * rng.standard_normal((200, 2))
    np.save(tmp_path / "s.npy", s)
    loaded = load_series(tmp_path / "s.npy")
    np.testing.assert_array_equal(loaded, s)
    task = series_task(loaded, window=8, horizon=1, target=[0])
    n_train = int(round(200 * 0.7))
    np.testing.assert_allclose(task.series[:n_train].mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(task.info["mean"], s[:n_train].mean(axis=0))
    assert task.X_train.shape[1:] == (8, 2) and task.y_train.shape[1] == 1


def test_series_files_that_would_give_silent_or_crashing_results_are_one_clear_error(tmp_path):
    from bptt.data.tasks import load_series, series_task

    huge = np.linspace(0, 1, 50)
    huge[3] = 1e308  # its square overflows: scaling would turn every value into 0
    with pytest.raises(ValueError, match="overflow the standardisation"):
        series_task(huge, window=5)
    short = tmp_path / "short.csv"
    short.write_text("a,b\n1\n2,3\n4,5\n", encoding="utf-8")
    with pytest.raises(ValueError, match="row 2 has 1 field.* the header has 2"):
        load_series(short)
    trailing = tmp_path / "trailing.csv"
    trailing.write_text("1,2,\n3,4\n5,6,\n", encoding="utf-8")
    assert load_series(trailing).shape == (3, 2)
    bad_npz = tmp_path / "bad.npz"
    bad_npz.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="not a readable .npz file"):
        load_series(bad_npz)
    np.savez(tmp_path / "s.npz", series=np.arange(10.0))
    with pytest.raises(ValueError, match="--column names one array of an .npz, got 2"):
        load_series(tmp_path / "s.npz", "series,nope".split(","))
    np.save(tmp_path / "s.npy", np.arange(20.0).reshape(10, 2))
    with pytest.raises(ValueError, match="--column '5'.* columns 0 to 1"):
        load_series(tmp_path / "s.npy", ["5"])
    assert load_series(tmp_path / "s.npy", ["1"])[:, 0].tolist() == list(range(1, 20, 2))
    import os

    os.mkfifo(tmp_path / "f.csv")
    with pytest.raises(ValueError, match="is not a regular file"):
        load_series(tmp_path / "f.csv")  # and does not block
