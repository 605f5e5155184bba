"""Whole language models to and from PyTorch (word_language_model's layout): the same logits
(float64, 1e-10) and the same gradients both ways, tied or not, 1 and 2 layers; the CLI's
export and import through a plain state_dict loaded with weights_only=True."""

from __future__ import annotations

import numpy as np
import pytest

from bptt.cli import main
from bptt.models.rnnlm import LanguageModel
from bptt.tools.exchange.interop import to_torch
from bptt.tools.exchange.torch_lm import from_state_dict, state_dict_of, torch_language_model

torch = pytest.importorskip("torch")


def ids(V, N=3, T=6, seed=1):
    return np.random.default_rng(seed).integers(0, V, (N, T + 1))


def torch_loss(module, xs, ts):
    scores, _ = module(torch.from_numpy(xs))
    loss = torch.nn.functional.cross_entropy(scores.reshape(-1, scores.shape[-1]),
                                             torch.from_numpy(ts).reshape(-1))
    return scores, loss


@pytest.mark.parametrize("cell", ["lstm", "rnn", "gru"])
@pytest.mark.parametrize("layers,tie", [(1, False), (2, True), (2, False)])
def test_bptt_to_torch_same_logits_and_gradients(cell, layers, tie):
    V, D = 17, 6
    options = {"reset_after": True} if cell == "gru" else None  # PyTorch's GRU
    model = LanguageModel(V, D, D, cell=cell, num_layers=layers, tie_weights=tie,
                          dtype="float64", init="orthogonal", seed=0, cell_options=options)
    module = torch_language_model(model).eval()
    batch = ids(V)
    xs, ts = batch[:, :-1], batch[:, 1:]
    loss = model.forward(xs, ts, train_flg=False)
    model.backward()
    scores, tloss = torch_loss(module, xs, ts)
    tloss.backward()
    model.reset_state()
    np.testing.assert_allclose(model.predict(xs), scores.detach().numpy(), rtol=0, atol=1e-10)
    assert float(loss) == pytest.approx(tloss.item(), abs=1e-12)
    grads = {"encoder.weight": model.grads[model.param_names.index("embed.W")]}
    for k, layer in enumerate(model.rnn_layers):
        for key, g in to_torch(layer, grads=True).items():
            grads[f"rnn.{key.replace('_l0', f'_l{k}')}"] = g
    if not tie:
        grads["decoder.weight"] = model.grads[model.param_names.index("affine.W")].T
    grads["decoder.bias"] = model.grads[model.param_names.index("affine.b")]
    for name, p in module.named_parameters():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=0, atol=1e-10,
                                   err_msg=name)


@pytest.mark.parametrize("cell,layers", [("lstm", 2), ("rnn", 1), ("gru", 2)])
def test_torch_to_bptt_same_logits(cell, layers):
    torch.manual_seed(0)
    V, D = 13, 5
    rnn = {"lstm": torch.nn.LSTM, "rnn": torch.nn.RNN, "gru": torch.nn.GRU}[cell](
        D, D, layers, batch_first=True)
    module = torch.nn.ModuleDict({"encoder": torch.nn.Embedding(V, D), "rnn": rnn,
                                  "decoder": torch.nn.Linear(D, V)}).double()
    model = from_state_dict(module.state_dict(), dtype="float64")
    assert (model.cell, model.num_layers) == (cell, layers)
    xs = torch.from_numpy(ids(V)[:, :-1])
    h, _ = module["rnn"](module["encoder"](xs))
    scores = module["decoder"](h).detach().numpy()
    np.testing.assert_allclose(model.predict(xs.numpy()), scores, rtol=0, atol=1e-10)
    back, theirs = state_dict_of(model), {k: v.numpy() for k, v in module.state_dict().items()}
    for k, v in theirs.items():
        if "bias_" in k and cell != "gru":  # bptt holds b = b_ih + b_hh: their sum comes back
            if "bias_ih" in k:
                other = k.replace("bias_ih", "bias_hh")
                np.testing.assert_allclose(back[k] + back[other], v + theirs[other],
                                           atol=1e-15)
        elif "bias_" not in k:
            np.testing.assert_allclose(back[k], v, atol=1e-15, err_msg=k)


def test_what_has_no_torch_layout_is_one_clear_error():
    with pytest.raises(ValueError, match="'mingru' cell has no PyTorch counterpart"):
        torch_language_model(LanguageModel(10, 4, 4, cell="mingru"))
    with pytest.raises(ValueError, match="PyTorch's variant"):
        torch_language_model(LanguageModel(10, 4, 4, cell="gru"))  # the book's GRU
    with pytest.raises(ValueError, match="no 'encoder.weight'"):
        from_state_dict({"weight": np.zeros(3)})
    state = state_dict_of(LanguageModel(10, 4, 4))
    state["decoder.weight"] = state["decoder.weight"] + 1
    with pytest.raises(ValueError, match="decoder.weight is not encoder.weight"):
        from_state_dict(state, tie=True)


def test_export_and_import_through_a_plain_state_dict(tmp_path, capsys):
    assert main(["train", "--embed", "8", "--hidden", "8", "--max-steps", "5", "--tie",
                 "--out", str(tmp_path / "run"), "--quiet"]) == 0
    pt = tmp_path / "model.pt"
    assert main(["export", str(tmp_path / "run"), "--torch", str(pt)]) == 0
    state = torch.load(pt, weights_only=True)  # tensors only: nothing pickled runs
    assert {"encoder.weight", "rnn.weight_ih_l0", "decoder.bias"} <= set(state)
    assert main(["import-torch", str(pt), "--tie", "--out", str(tmp_path / "back")]) == 0
    assert main(["eval", str(tmp_path / "run")]) == 0
    first = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["eval", str(tmp_path / "back"), "--data", "builtin"]) == 0
    again = capsys.readouterr().out.strip().splitlines()[-1]
    assert first.split("(")[0] == again.split("(")[0]  # the same test perplexity


class _Evil:
    def __init__(self, canary):
        self.canary = canary

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.canary}",))


def test_bad_pt_files_are_one_clear_line_and_nothing_runs(tmp_path, capsys):
    """import-torch: a malicious pickle, an empty file, a FIFO, NaN, a hidden size of 0 and a
    1-D weight_hh are each one line and exit 2 (were tracebacks, a hang or a run written)."""
    import os
    import pickle

    good = state_dict_of(LanguageModel(11, 4, 3, dtype=np.float64, seed=0))
    cases = {}
    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"x": _Evil(tmp_path / "ran")}))
    cases["evil.pt"] = "not a readable state_dict of tensors"
    (tmp_path / "empty.pt").write_bytes(b"")
    cases["empty.pt"] = "not a readable state_dict of tensors"
    os.mkfifo(tmp_path / "fifo.pt")
    cases["fifo.pt"] = "not a regular file"
    for name, key, value, msg in [
        ("nan.pt", "rnn.weight_hh_l0", np.full((12, 3), np.nan), "holds NaN"),
        ("h0.pt", "rnn.weight_hh_l0", np.zeros((0, 0)), "empty or non-numeric"),
        ("flat.pt", "rnn.weight_hh_l0", np.zeros(12), "a weight matrix is 2-D"),
    ]:
        bad = {k: torch.from_numpy(v.copy()) for k, v in good.items()}
        bad[key] = torch.from_numpy(value)
        torch.save(bad, tmp_path / name)
        cases[name] = msg
    for name, msg in cases.items():
        out = tmp_path / f"out-{name}"
        assert main(["import-torch", str(tmp_path / name), "--out", str(out)]) == 2, name
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1, (name, err)
        assert not (out / "best").exists()
    assert not (tmp_path / "ran").exists()


def test_export_never_writes_over_a_users_file_nor_twice_to_one_path(tmp_path, capsys):
    assert main(["train", "--embed", "8", "--hidden", "8", "--max-steps", "2",
                 "--out", str(tmp_path / "run"), "--quiet"]) == 0
    mine = tmp_path / "m.pt.tmp"
    mine.write_text("the user's own file", encoding="utf-8")
    assert main(["export", str(tmp_path / "run"), "--torch", str(tmp_path / "m.pt")]) == 0
    assert mine.read_text(encoding="utf-8") == "the user's own file"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".m.pt")] == []
    capsys.readouterr()
    same = str(tmp_path / "x")
    assert main(["export", str(tmp_path / "run"), same, "--torch", same]) == 2
    assert "name the same file" in capsys.readouterr().err
