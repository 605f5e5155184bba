"""The GPU path without a GPU: bptt on the device double (`bptt.device_double`, arrays that
behave toward the code as CuPy's) trains, checkpoints, generates and explains, every array
staying on the "device", with the same numbers as on the host. A host array handed to device
code fails here as it would on CuPy. Run alone with `python -m pytest -q -m gpu_double`.

With ``BPTT_TEST_DEVICE=gpu`` (what `scripts/gpu_check.py` sets on a machine with a GPU) the
same tests run on real CuPy."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import bptt
from bptt import backend
from bptt.device_double import xp as dxp
from helpers import mpiexec_or_skip

pytestmark = pytest.mark.gpu_double
DEVICE = os.environ.get("BPTT_TEST_DEVICE", "double")


def on_device(a) -> bool:
    """The array lives on the device (not a NumPy array)."""
    return type(a) is not np.ndarray and backend.array_module(a) is not np


@pytest.fixture
def double():
    """The device (the double, or CuPy under BPTT_TEST_DEVICE=gpu) for one test."""
    xp = backend.set_device(DEVICE)
    try:
        yield xp
    finally:
        backend.set_device("cpu")


def on_host(fn, *args, **kwargs):
    backend.set_device("cpu")
    try:
        return fn(*args, **kwargs)
    finally:
        backend.set_device(DEVICE)


# -- the double refuses what CuPy refuses ---------------------------------------------------------
def test_the_double_refuses_implicit_transfers_and_allows_explicit_ones():
    from bptt.device_double import DeviceArray

    a = dxp.asarray(np.arange(6.0).reshape(2, 3))
    assert isinstance(a, DeviceArray) and backend.array_module(a) is dxp
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError, match="was given a device array"):
        np.concatenate([a, a])
    with pytest.raises(TypeError, match="Unsupported type"):
        a + np.ones(3)
    with pytest.raises(TypeError, match="Unsupported type"):
        a[...] = np.zeros((2, 3))
    with pytest.raises(TypeError, match="Unsupported type"):
        dxp.multiply(a, 2.0, out=np.empty((2, 3)))
    b = a * 2.0 + 1  # scalars mix freely, results stay on the device
    assert isinstance(b, DeviceArray) and isinstance(b.sum(), DeviceArray)
    assert float(b.sum()) == 36.0 and b.get().tolist() == [[1, 3, 5], [7, 9, 11]]
    np.testing.assert_array_equal(dxp.asnumpy(a @ a.T), a.get() @ a.get().T)
    assert backend.to_numpy(a).tolist() == a.get().tolist()
    t = dxp.zeros((3, 2))
    dxp.add.at(t, dxp.asarray(np.array([0, 0, 2])), dxp.ones((3, 2)))  # CuPy 14's scatter-add
    assert t.get()[:, 0].tolist() == [2, 0, 1]
    assert not hasattr(dxp.add, "reduceat") and not hasattr(dxp, "r_")  # NumPy-only names


# -- layers -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("cell", bptt.nn.registry.cell_names())
def test_every_cell_runs_on_the_device_with_the_hosts_numbers(double, cell, fused):
    """float64 on both: equal to rounding (a GPU's transcendental functions differ in the
    last bits, so the tolerance is not 0)."""
    from bptt.nn.stacks import make_recurrent_stack

    def run():
        stack = make_recurrent_stack(cell, 3, 4, 2, dtype=np.float64, fused=fused,
                                     generator=np.random.default_rng(0))
        xs = backend.get_xp().asarray(np.random.default_rng(1).standard_normal((2, 5, 3)))
        hs = stack.forward(xs)
        dxs = stack.backward(hs * 1.0)
        return hs, dxs, stack.grads

    hs, dxs, grads = run()
    assert all(on_device(a) for a in (hs, dxs, *grads))
    hs0, dxs0, grads0 = on_host(run)
    np.testing.assert_allclose(hs.get(), hs0, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dxs.get(), dxs0, rtol=1e-10, atol=1e-13)
    for g, g0 in zip(grads, grads0, strict=True):
        np.testing.assert_allclose(g.get(), g0, rtol=1e-10, atol=1e-13)


def test_every_layers_gradient_check_passes_in_float64_on_the_device(double):
    from bptt.tools.verification.gradcheck_suite import run_suite

    results = run_suite()
    failed = [r.name for r in results if not r.passed]
    assert failed == [] and len(results) >= 40


# -- training, checkpoints, generation ----------------------------------------------------------
def test_a_language_model_trains_resumes_and_writes_on_the_device_as_on_the_host(
        double, tmp_path):
    from bptt.cli import main

    argv = ["train", "--max-steps", "4", "--quiet", "--out"]
    assert main(argv + [str(tmp_path / "dev")]) == 0
    assert on_host(main, argv + [str(tmp_path / "host")]) == 0
    metrics = [json.loads((tmp_path / r / "metrics.json").read_text(encoding="utf-8"))
               for r in ("dev", "host")]
    # float32, summed in another order (no MKL products, add.at for the embedding): rounding
    assert metrics[0]["valid_ppl"] == pytest.approx(metrics[1]["valid_ppl"], rel=1e-5)
    ck = bptt.load_checkpoint(tmp_path / "dev")  # saved from the device, opened on it
    assert all(on_device(p) for p in ck.model.params)
    host = on_host(bptt.load_checkpoint, tmp_path / "dev")  # and on the host
    assert all(type(p) is np.ndarray for p in host.model.params)
    for p, q in zip(ck.model.params, host.model.params, strict=True):
        np.testing.assert_array_equal(p.get(), q)
    for run in ("dev", "host"):
        resume = ["train", "--resume", "--max-steps", "6", "--quiet", "--out",
                  str(tmp_path / run)]
        assert (main if run == "dev" else lambda a: on_host(main, a))(resume) == 0
    after = [json.loads((tmp_path / r / "metrics.json").read_text(encoding="utf-8"))
             for r in ("dev", "host")]
    assert after[0]["valid_ppl"] == pytest.approx(after[1]["valid_ppl"], rel=1e-5)
    assert after[0]["steps"] == 6
    text = bptt.generate(ck.model, ck.vocab, length=12, seed=3)  # the same weights: same text
    assert text == on_host(lambda: bptt.generate(host.model, host.vocab, length=12, seed=3))


def test_seq2seq_trains_and_decodes_on_the_device(double, tmp_path):
    from bptt.train.seq2seq import Seq2seqConfig, train_seq2seq, translate

    def run(out):
        m = train_seq2seq(Seq2seqConfig(data="addition", pairs=150, epochs=1, batch=30,
                                        hidden=8, model="attention", eval_size=5, out=str(out),
                                        quiet=True), log=lambda *_: None)
        answers = [a for a, _ in translate(out, ["12+3", "7+80"], beam=2)]
        greedy = [a for a, _ in translate(out, ["12+3"], beam=1)]
        return m["history"][-1]["test_char_acc"], answers, greedy

    assert run(tmp_path / "dev") == on_host(run, tmp_path / "host")


def test_data_parallel_ranks_reduce_device_gradients(double, tmp_path):
    from bptt.data.make_builtin import compose
    from bptt.train import TrainConfig, train_language_model
    from bptt.train.comm import ThreadGroup

    text = tmp_path / "t.txt"
    text.write_text(compose(stories=4), encoding="utf-8")

    def rank(comm):
        backend.set_device(DEVICE)  # each rank's thread computes on the device
        cfg = TrainConfig(data=str(text), out=str(tmp_path / f"r{comm.rank}"), embed=6,
                          hidden=6, batch=8, bptt=5, max_steps=3, quiet=True, dtype="float64")
        return train_language_model(cfg, comm=comm)

    r0, r1 = ThreadGroup(2).run(rank)
    assert r0["steps"] == 3 and r1["steps"] == 3


def test_explain_and_the_explainer_pages_on_the_device(double, tmp_path):
    from bptt.cli import main

    for argv in (["explain", "rnnlm", "-T", "3"], ["explain", "lstm", "--html",
                                                   str(tmp_path / "a.html")],
                 ["explain", "attention-seq2seq", "--html", str(tmp_path / "b.html")],
                 ["gradflow", "--cell", "gru", "-T", "12"]):
        assert main(argv) == 0, argv


def test_estimators_fit_and_predict_on_the_device_and_a_host_run_opens_there(double, tmp_path):
    from bptt.cli import main

    for kind in ("sine", "waveforms"):
        argv = ["fit", kind, "--epochs", "1", "--hidden", "8", "--quiet", "--out"]
        assert main(argv + [str(tmp_path / f"dev-{kind}")]) == 0
        assert on_host(main, argv + [str(tmp_path / f"host-{kind}")]) == 0
        dev, host = (json.loads((tmp_path / f"{r}-{kind}" / "metrics.json").read_text(
            encoding="utf-8"))["test"] for r in ("dev", "host"))
        assert dev == pytest.approx(host, rel=1e-4)
    ck = bptt.load_checkpoint(tmp_path / "host-sine")  # written on the host, opened here
    assert all(on_device(p) for p in ck.model.params)
    X = np.random.default_rng(0).standard_normal((3, 25, 1))
    out = ck.model.predict(X)  # host in (the user's data), host out
    assert type(out) is np.ndarray and out.shape == (3, 1)  # one target per sequence
    np.testing.assert_allclose(out, on_host(
        lambda: bptt.load_checkpoint(tmp_path / "host-sine").model.predict(X)), rtol=1e-5)


def test_streaming_generation_and_export_of_a_device_run(double, tmp_path):
    from bptt.cli import main

    out = tmp_path / "lm"
    assert main(["train", "--max-steps", "2", "--quiet", "--out", str(out)]) == 0
    ck = bptt.load_checkpoint(out)
    pieces = list(bptt.generate_tokens(ck.model, ck.vocab, length=8, seed=1))
    assert len(pieces) == 8 and all(isinstance(p, str) for p in pieces)
    pytest.importorskip("onnx", reason="needs onnx (the onnx extra)")
    assert main(["export", str(out), str(tmp_path / "lm.onnx")]) == 0


def test_on_a_gpu_the_memory_check_counts_the_gpus_free_memory(monkeypatch):
    """The book's big language model ran out of GPU memory mid-training: on --device gpu the
    estimate is held against the GPU's free memory, before anything is allocated."""
    import bptt.train.memory as memory

    monkeypatch.setattr(memory, "available_memory", lambda: 64 * 2**30)
    monkeypatch.setattr(memory, "device_free_memory", lambda: 2**30)  # a 1 GiB GPU
    with pytest.raises(memory.ModelTooLarge, match="the GPU has 1.0 GiB available"):
        memory.check_fits(3 * 2**30, "parameters", "--hidden")
    memory.check_fits(2**29, "parameters", "--hidden")  # half a GiB fits
    monkeypatch.setattr(memory, "device_free_memory", lambda: None)  # the host counts
    memory.check_fits(3 * 2**30, "parameters", "--hidden")
    assert backend.device_free_memory() is None  # not on a GPU here


def test_mpiexec_ranks_on_the_device_give_the_single_process_model(tmp_path):
    """Two real MPI ranks, each computing on the device: the host buffer of the reduction is
    filled from device gradients and written back to them."""
    import os
    import subprocess
    import sys

    from bptt.data.make_builtin import compose

    mpiexec = mpiexec_or_skip()
    text = tmp_path / "t.txt"
    text.write_text(compose(stories=4), encoding="utf-8")
    args = ["-m", "bptt", "--device", DEVICE, "train", "--data", str(text), "--embed", "6",
            "--hidden", "6", "--batch", "8", "--bptt", "5", "--optimizer", "adam", "--lr",
            "0.01", "--max-steps", "6", "--float64", "--quiet"]
    env = {k: v for k, v in os.environ.items() if k not in ("PMI_SIZE", "PMI_RANK")}
    one = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([mpiexec, "-n", "2", sys.executable, *args, "--out",
                          str(tmp_path / "two")], capture_output=True, text=True, timeout=300,
                         env=env)
    assert two.returncode == 0, two.stderr
    a = dict(np.load(tmp_path / "one" / "last" / "model.npz"))
    b = dict(np.load(tmp_path / "two" / "last" / "model.npz"))
    for k in a:
        assert np.max(np.abs(a[k] - b[k])) <= 1e-12 * max(1.0, np.max(np.abs(a[k]))), k


def test_the_books_feed_forward_nets_learn_on_the_device(double):
    from bptt.models.mlp import MultiLayerNet, TwoLayerNet

    g = np.random.default_rng(0)
    x = double.asarray(g.standard_normal((6, 5)))
    t = double.asarray(g.integers(0, 3, 6))
    for make in (lambda: TwoLayerNet(5, 4, 3, weight_init_std=0.5, dtype=np.float64,
                                     generator=np.random.default_rng(1)),
                 lambda: MultiLayerNet(5, [4, 4], 3, dtype=np.float64,
                                       generator=np.random.default_rng(1))):
        net = make()
        loss, grads = net.loss_and_gradient(x, t)
        assert all(on_device(g_) for g_ in grads.values())
        numeric = net.numerical_gradient(x, t)
        for k in grads:
            np.testing.assert_allclose(backend.to_numpy(grads[k]),
                                       backend.to_numpy(numeric[k]), atol=1e-6)
