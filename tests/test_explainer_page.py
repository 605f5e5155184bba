"""The explainer page (`bptt explain MODEL --html PAGE`): its numbers are the library's, it is
one self-contained file, and in a real headless Chromium it loads with no console error and no
request, the step-through moves, and the numbers read back from the page equal the library's.

The browser tests need Chromium (Debian's `chromium` package) and Playwright for Python (the
`browser` extra); they skip with the reason where either is missing, and CI installs both.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import bptt
from bptt.cli import main
from bptt.tools.explaining.models import build
from bptt.tools.explaining.page import explainer_page, page_data


def library_pass(name, T=3, seed=0):
    """The model's own forward and backward (not the page's code): the top recurrent layer's
    states, the gradient it receives from above, its input gradient and its dh."""
    model, (xs, ts), _ = build(name, T=T, seed=seed)
    model.eval()
    model.reset_state()
    loss = float(model.forward(xs, ts, train_flg=False))
    model.backward()
    rnn = model.rnn_layers[-1]
    return loss, rnn


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru", "rnnlm", "simple-rnnlm"])
def test_the_pages_numbers_are_the_librarys(name):
    data = page_data(name)
    loss, rnn = library_pass(name)
    assert data["loss"] == pytest.approx(loss, rel=1e-6)
    rep = data["replay"]
    assert rep["replay_ok"]
    np.testing.assert_allclose(rep["dh0"], bptt.to_numpy(rnn.dh), atol=1e-6)
    T = data["T"]
    for t in range(T):  # total = from the loss + from h_{t+1}; the last step gets nothing after
        np.testing.assert_allclose(np.add(rep["from_loss"][t], rep["from_next"][t]),
                                   rep["total"][t], atol=1e-12)
    assert not np.any(rep["from_next"][T - 1])
    top = [r for r in data["rows"] if r["key"].startswith("h")][-1]
    h_last = bptt.to_numpy(rnn.h)  # the layer's state after the last step
    np.testing.assert_allclose(top["value"][T - 1], h_last, atol=1e-6)
    assert top["grad"] == rep["total"]  # a node's gradient is the whole dL/dh_t


def test_the_page_is_one_file_that_asks_for_nothing(tmp_path):
    page = explainer_page("lstm")
    html = page.html
    assert len(html.encode()) < 2_000_000
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "default-src 'none'" in html  # the page may fetch nothing, by its own policy
    assert page.save(tmp_path / "p.html").read_text(encoding="utf-8") == html
    assert "<iframe srcdoc=" in page._repr_html_()  # inline in Jupyter


def test_bptt_explain_html_writes_a_page_for_every_model_it_knows(tmp_path, capsys):
    from bptt.tools.explaining.models import model_names

    out = tmp_path / "rnn.html"
    assert main(["explain", "rnn", "--html", str(out)]) == 0
    assert out.exists() and "wrote" in capsys.readouterr().err
    for name in model_names():
        data = page_data(name)
        assert data["view"] == ("seq2seq" if "seq2seq" in name else
                                "mlp" if name == "two-layer-net" else "lm"), name
        keys = {f"{r['key']}_{t}" for r in data["rows"] for t in range(len(r["value"]))}
        for e in data["edges"]:  # every edge joins two drawn nodes
            assert e["from"] in keys and e["to"] in keys, (name, e)
        for f in data["frames"]:
            assert set(f["active"]) | set(f["grad"]) <= keys, name
            assert {tuple(edge) for edge in f["edges"]} <= {
                (e["from"], e["to"]) for e in data["edges"]}, name  # it lights drawn edges
    assert main(["explain", "attention-seq2seq", "--html", str(tmp_path / "a.html"),
                 "--lang", "ja"]) == 0


@pytest.mark.parametrize("name", ["seq2seq", "peeky-seq2seq", "attention-seq2seq"])
def test_the_seq2seq_pages_numbers_are_the_librarys(name):
    """The page's loss, states, attention weights and dh are the model's own; the gradients it
    shows at the encoder's embeddings add up to the embedding's gradient of the library's
    backward (so the backward the page shows is the whole one)."""
    data = page_data(name)
    model, (xs, ts), _ = build(name, seed=0)
    loss = float(model.forward(xs, ts))
    model.backward()
    assert data["loss"] == pytest.approx(loss, rel=1e-6)
    enc_rep, dec_rep = data["replays"]
    assert enc_rep["replay_ok"] and dec_rep["replay_ok"]
    enc, dec = model.encoder.rnn.layers[0], model.decoder.rnn.layers[0]
    np.testing.assert_allclose(enc_rep["dh0"], bptt.to_numpy(enc.dh), atol=1e-6)
    np.testing.assert_allclose(dec_rep["dh0"], bptt.to_numpy(dec.dh), atol=1e-6)
    rows = {r["key"]: r for r in data["rows"]}
    Ts, Tt = data["Ts"], data["Tt"]
    assert len(rows["h"]["value"]) == Ts and len(rows["d"]["value"]) == Tt
    np.testing.assert_allclose(rows["h"]["value"][Ts - 1], bptt.to_numpy(enc.h), atol=1e-6)
    for rep, T in ((enc_rep, Ts), (dec_rep, Tt)):
        for t in range(T):
            np.testing.assert_allclose(np.add(rep["from_loss"][t], rep["from_next"][t]),
                                       rep["total"][t], atol=1e-12)
    dW = np.zeros_like(bptt.to_numpy(model.encoder.embed.grads[0]), dtype=np.float64)
    ids = bptt.to_numpy(xs)
    for t in range(Ts):
        np.add.at(dW, ids[:, t], np.asarray(rows["ex"]["grad"][t]))
    np.testing.assert_allclose(dW, bptt.to_numpy(model.encoder.embed.grads[0]), atol=1e-6)
    if name == "attention-seq2seq":
        np.testing.assert_allclose(data["attention"], bptt.to_numpy(
            model.decoder.attention.attention_weights), atol=1e-6)
    else:  # only the last encoder state goes on: the decoder's dh, nothing else from above
        assert data["attention"] is None
        assert not np.any(enc_rep["from_loss"][:Ts - 1])
        if name == "seq2seq":
            np.testing.assert_allclose(enc_rep["from_loss"][Ts - 1], dec_rep["dh0"],
                                       atol=1e-6)


def test_the_mlp_page_is_the_chain_rule_of_the_librarys_backward():
    data = page_data("two-layer-net")
    net, (x, t), _ = build("two-layer-net", seed=0)
    loss, grads = net.loss_and_gradient(x, t)
    assert data["loss"] == pytest.approx(loss, rel=1e-6)
    rows = {r["key"]: r for r in data["rows"]}
    x_ = bptt.to_numpy(x)
    # dW1 = x.T @ dL/d(Affine1's output): the page's gradient is the one backward used
    np.testing.assert_allclose(x_.T @ np.asarray(rows["a0"]["grad"][0]),
                               bptt.to_numpy(grads["W1"]), atol=1e-6)
    np.testing.assert_allclose(np.mean(rows["L"]["value"][0]), loss, rtol=1e-6)
    assert [f["phase"] for f in data["frames"]] == ["forward"] * 5 + ["backward"] * 4


# -- in a real browser ------------------------------------------------------------------------
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium found (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="needs Playwright for Python (pip install playwright)")
    executable = chromium()
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, headless=True,
                              args=["--no-sandbox"])
        yield b
        b.close()


def open_page(browser, path: Path):
    page = browser.new_page()
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r):
        requests.append(r.request.url)
        if r.request.url.startswith("file:"):
            r.continue_()
        else:
            r.abort()

    page.route("**/*", route)
    page.goto(path.as_uri())
    return page, errors, requests


def not_blank(png: bytes) -> bool:
    """More than a plain background: the PNG's pixel rows hold many different bytes."""
    import struct
    import zlib

    pos, idat = 8, b""
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        if kind == b"IDAT":
            idat += png[pos + 8:pos + 8 + length]
        pos += 12 + length
    return len(set(zlib.decompress(idat))) > 16


def test_a_blank_picture_is_told_from_a_drawn_one(browser, tmp_path):
    page = browser.new_page()
    page.set_content('<div id="a" style="width:200px;height:80px"></div>'
                     '<div id="b" style="width:200px;height:80px">forward, t = 0: h0 1.25</div>')
    assert not not_blank(page.locator("#a").screenshot())
    assert not_blank(page.locator("#b").screenshot())
    page.close()


def shoot_views(page, prefix: Path) -> list[str]:
    """A screenshot of every view the page shows, each checked not blank; the views' ids."""
    shown = []
    for view in page.locator("main > section").all():
        if view.is_visible():
            name = view.get_attribute("id")
            png = view.screenshot(path=str(prefix.with_name(f"{prefix.name}-{name}.png")))
            assert not_blank(png), name
            shown.append(name)
    return shown


@pytest.mark.parametrize("name", ["rnn", "lstm"])
def test_in_chromium_the_step_through_walks_back_with_the_librarys_numbers(browser, name,
                                                                         tmp_path):
    path = explainer_page(name).save(tmp_path / f"{name}.html")
    _, rnn = library_pass(name)
    page, errors, requests = open_page(browser, path)
    assert page.locator("svg .node").count() == 5 * 3  # rows x, e, h, s, L by T = 3 steps
    label = page.locator("#step-label")
    assert label.get_attribute("data-phase") == "forward" and label.get_attribute("data-t") == "0"
    assert page.locator('[data-node="h0_0"].active').count() == 1
    page.locator("#step").fill("5")  # the last position: backward at t = 0
    assert label.get_attribute("data-phase") == "backward" and label.get_attribute("data-t") == "0"
    assert page.locator('[data-node="h0_0"].grad').count() == 1
    cells = page.locator('table[data-key="dh0"] td')
    shown = np.array([float(c.get_attribute("data-value")) for c in cells.all()])
    np.testing.assert_allclose(shown, bptt.to_numpy(rnn.dh).ravel(), atol=1e-6)
    page.locator("#prev").click()  # backward at t = 1: two gradients meet, then their sum
    assert label.get_attribute("data-t") == "1"
    tables = page.locator("#step-panel table")
    assert tables.count() == 3
    values = [np.array([float(c.get_attribute("data-value")) for c in tables.nth(k)
                        .locator("td").all()]) for k in range(3)]
    np.testing.assert_allclose(values[0] + values[1], values[2], atol=1e-9)
    page.locator('[data-node="e_2"]').click()  # a node: its value and its gradient
    assert page.locator("#node-panel").get_attribute("data-node") == "e_2"
    assert page.locator("#node-panel table").count() == 2
    assert "out[n, t] = W[xs[n, t]]" in page.locator("#node-panel pre").inner_text()
    assert shoot_views(page, tmp_path / name) == ["graph-view", "step-view",
                                                  "connectivity-view", "node-view"]
    assert errors == [] and requests == [path.as_uri()]
    page.close()


def test_in_chromium_an_attention_seq2seq_steps_through_encoder_attention_and_back(
        browser, tmp_path):
    path = explainer_page("attention-seq2seq").save(tmp_path / "att.html")
    data = page_data("attention-seq2seq")
    model, (xs, ts), _ = build("attention-seq2seq", seed=0)
    model.forward(xs, ts)
    model.backward()
    weights = bptt.to_numpy(model.decoder.attention.attention_weights)  # (N, Tt, Ts)
    Ts, Tt = data["Ts"], data["Tt"]
    page, errors, requests = open_page(browser, path)
    assert page.locator("svg .node").count() == 3 * Ts + 6 * Tt  # x e h | y e' h' c s L
    assert page.locator("svg .edge.attention").count() == Ts * Tt
    label = page.locator("#step-label")
    page.locator("#step").fill(str(Ts + 1))  # the decoder's forward at t = 1
    assert label.inner_text() == "forward, decoder, t = 1"
    shown = page.locator('table[data-key="weights"] td').evaluate_all(
        "tds => tds.map(td => Number(td.dataset.value))")
    np.testing.assert_allclose(shown, weights[:, 1].ravel(), atol=1e-6)
    lit = page.locator('svg .edge.attention.active').evaluate_all(
        "es => es.map(e => e.dataset.from + '>' + e.dataset.to)")
    assert sorted(lit) == [f"h_{j}>c_1" for j in range(Ts)]  # every encoder state feeds c1
    page.locator("#step").fill(str(Ts + 2 * Tt - 1))  # the decoder's backward at t = 0
    assert label.inner_text() == "backward, decoder, t = 0"
    dh = page.locator('table[data-key="dh-decoder"] td').evaluate_all(
        "tds => tds.map(td => Number(td.dataset.value))")
    np.testing.assert_allclose(dh, bptt.to_numpy(model.decoder.rnn.layers[0].dh).ravel(),
                               atol=1e-6)
    page.locator("#next").click()  # into the encoder: attention (and dh) + h_{j+1} = total
    assert label.inner_text() == f"backward, encoder, t = {Ts - 1}"
    assert page.locator("[data-node='c_0'].grad").count() == 1
    values = [np.array(page.locator(f'#step-panel table[data-key="{k}"] td').evaluate_all(
        "tds => tds.map(td => Number(td.dataset.value))")) for k in ("from-loss", "from-next",
                                                                     "total")]
    np.testing.assert_allclose(values[0] + values[1], values[2], atol=1e-9)
    page.locator("#step").fill(str(Ts + 2 * Tt + Ts - 1))  # the encoder's first step
    dh0 = page.locator('table[data-key="dh0"] td').evaluate_all(
        "tds => tds.map(td => Number(td.dataset.value))")
    np.testing.assert_allclose(dh0, bptt.to_numpy(model.encoder.rnn.layers[0].dh).ravel(),
                               atol=1e-6)
    page.locator('[data-node="c_2"]').click()
    assert "a  = softmax_Ts(s)" in page.locator("#node-panel pre").inner_text()
    page.locator("#lang").click()
    assert label.inner_text() == "逆伝播, エンコーダ, t = 0"
    assert shoot_views(page, tmp_path / "att") == ["graph-view", "step-view",
                                                   "connectivity-view", "node-view"]
    assert errors == [] and requests == [path.as_uri()]
    page.close()


def test_in_chromium_the_two_layer_net_is_walked_layer_by_layer(browser, tmp_path):
    path = explainer_page("two-layer-net").save(tmp_path / "mlp.html")
    page, errors, requests = open_page(browser, path)
    assert page.locator("svg .node").count() == 5
    page.locator("#step").fill("8")  # the last frame: dL/dx
    assert page.locator("#step-label").inner_text() == "backward: dL/dx"
    data = page_data("two-layer-net")
    shown = page.locator('#step-panel table[data-key="grad"] td').evaluate_all(
        "tds => tds.map(td => Number(td.dataset.value))")
    np.testing.assert_allclose(shown, np.ravel(data["rows"][0]["grad"][0]), atol=1e-12)
    assert shoot_views(page, tmp_path / "mlp") == ["graph-view", "step-view", "node-view"]
    assert errors == [] and requests == [path.as_uri()]
    page.close()


def test_in_chromium_the_japanese_page_speaks_japanese_and_switches(browser, tmp_path):
    path = explainer_page("rnn", lang="ja").save(tmp_path / "ja.html")
    page, errors, requests = open_page(browser, path)
    assert page.locator("html").get_attribute("lang") == "ja"
    assert "順伝播" in page.locator("#step-label").inner_text()
    assert "時間方向" in page.locator("#title").inner_text()
    assert "計算グラフ" in page.locator("#graph-view h2").inner_text()
    page.locator("#step").fill("4")
    assert "逆伝播" in page.locator("#step-label").inner_text()
    assert "損失" in page.locator('table[data-key="from-loss"]').get_attribute("data-name")
    page.locator("#lang").click()  # to English, where the reader was
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("#step-label").inner_text() == "backward, t = 1"
    assert page.locator("#lang").inner_text() == "日本語"
    assert errors == [] and requests == [path.as_uri()]
    page.close()


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_connectivity_is_the_gradient_a_loss_sends_back(cell):
    """An entry of the connectivity view is the norm of dL_t/dx_{t-k}: checked against central
    differences on the same layer and inputs, one sequence at a time."""
    from bptt.nn.stacks import make_recurrent_stack
    from bptt.tools.explaining.page import connectivity

    T, D, H, N, t, k = 5, 3, 4, 2, 4, 2
    m = connectivity(cell, T=T, D=D, H=H, N=N, seed=3)
    assert all(m[r][c] is None for r in range(T) for c in range(r + 1, T))
    g = np.random.default_rng(3)  # the same draws, in the same order, as connectivity's
    layer = make_recurrent_stack(cell, D, H, dtype=np.float64, generator=g).layers[0]
    xs = g.standard_normal((N, T, D))
    u = g.standard_normal(H)
    u /= np.linalg.norm(u)
    norms = []
    for n in range(N):
        x = xs[n:n + 1].copy()

        def loss():
            layer.reset_state()
            return float(layer.forward(x)[0, t] @ u)

        grad = bptt.numerical_gradient(loss, x)  # (1, T, D)
        norms.append(np.linalg.norm(grad[0, t - k]))
    assert m[t][k] == pytest.approx(np.mean(norms), rel=1e-6)


def test_in_chromium_the_connectivity_view_shows_every_cell(browser, tmp_path):
    page_obj = explainer_page("gru")
    path = page_obj.save(tmp_path / "gru.html")
    page, errors, _ = open_page(browser, path)
    cells = page_obj.data["connectivity"]["cells"]
    assert list(cells) == ["gru", "rnn", "lstm"]
    for cell, m in cells.items():
        shown = [float(v) for v in page.locator(f'table[data-key="conn-{cell}"] td[data-value]')
                 .evaluate_all("tds => tds.map(td => td.dataset.value)")]
        assert np.allclose(shown, [v for row in m for v in row if v is not None], rtol=1e-12)
    assert errors == []
    page.close()


# -- bptt report: a trained run of any kind ---------------------------------------------------
RUNS = Path(__file__).parent / "fixtures" / "runs-0.1"


@pytest.mark.parametrize("run, kind, views", [
    ("lm", "language-model", {"curves", "graph", "step", "connectivity"}),
    ("seq2seq", "seq2seq", {"curves"}),
    ("attention", "seq2seq", {"curves", "attention"}),
    ("fit-regressor", "sequence-regressor", {"curves"}),
    ("fit-classifier", "sequence-classifier", {"curves"}),
])
def test_bptt_report_writes_the_page_of_a_run_of_every_kind(run, kind, views, tmp_path,
                                                            capsys):
    from bptt.train.progress import read_jsonl

    out = tmp_path / f"{run}.html"
    assert main(["report", str(RUNS / run), "--html", str(out)]) == 0
    assert "wrote" in capsys.readouterr().err
    from bptt.tools.explaining.page import report_data

    data = report_data(RUNS / run)
    assert data["report"]["kind"] == kind and data["model"] == run
    epochs = [r for r in read_jsonl(RUNS / run / "log.jsonl") if r["event"] == "epoch"]
    curves = {c["key"]: c["points"] for c in data["report"]["curves"]}
    metric = {"language-model": "valid_ppl", "seq2seq": "test_acc"}.get(kind, "val_loss")
    assert curves[metric] == [[r["step"], r[metric]] for r in epochs]
    assert ("rows" in data) == ("graph" in views)
    assert (data["report"]["attention"] is not None) == ("attention" in views)
    if "attention" in views:
        w = np.array(data["report"]["attention"]["weights"])
        np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-5)  # a distribution per row


@pytest.mark.parametrize("run, shown, hidden", [
    ("attention", ["curves-view", "attention-view"], ["graph-view", "step-view"]),
    ("lm", ["curves-view", "graph-view", "step-view", "connectivity-view"], ["attention-view"]),
])
def test_in_chromium_a_report_shows_its_views_and_its_numbers(browser, run, shown, hidden,
                                                             tmp_path):
    from bptt.tools.explaining.page import report_page

    page_obj = report_page(RUNS / run, lang="ja")
    path = page_obj.save(tmp_path / f"{run}.html")
    page, errors, requests = open_page(browser, path)
    for view in shown:
        assert page.locator(f"#{view}").is_visible(), view
    for view in hidden:
        assert not page.locator(f"#{view}").is_visible(), view
    assert "学習曲線" in page.locator("#curves-view h2").inner_text()
    for curve in page_obj.data["report"]["curves"]:
        ys = page.locator(f'svg[data-key="curve-{curve["key"]}"] circle').evaluate_all(
            "cs => cs.map(c => Number(c.dataset.y))")
        assert np.allclose(ys, [p[1] for p in curve["points"]])
    if page_obj.data["report"]["attention"]:
        weights = page.locator('table[data-key="attention"] td').evaluate_all(
            "tds => tds.map(td => Number(td.dataset.value))")
        assert np.allclose(weights, np.ravel(page_obj.data["report"]["attention"]["weights"]))
    assert set(shown) <= set(shoot_views(page, tmp_path / run))
    assert errors == [] and requests == [path.as_uri()]
    page.close()


def test_in_chromium_a_unit_is_coloured_over_the_models_own_text(browser, tmp_path):
    """Pick a gate and a unit: each word shows that unit's value there, the library's (the
    replay of the trained layer by gate_activations)."""
    from bptt import load_checkpoint
    from bptt.tools.explaining.page import report_page
    from bptt.tools.explaining.plots import gate_activations

    page_obj = report_page(RUNS / "lm")
    units = page_obj.data["report"]["units"]
    ck = load_checkpoint(RUNS / "lm")
    acts = gate_activations(ck.model, [ck.vocab.stoi[t] for t in units["tokens"]])
    path = page_obj.save(tmp_path / "lm.html")
    page, errors, _ = open_page(browser, path)
    assert page.locator("#units-view").is_visible()
    page.locator("#unit-gate").select_option("f")
    page.locator("#unit").select_option("3")
    assert page.locator("#unit-text").get_attribute("data-gate") == "f"
    shown = page.locator("#unit-text .tok").evaluate_all(
        "ts => ts.map(t => Number(t.dataset.value))")
    np.testing.assert_allclose(shown, acts["f"][:, 3], atol=1e-9)
    assert errors == []
    page.close()


@pytest.fixture(scope="module")
def tiny_pages(tmp_path_factory):
    """The README's `bptt train` (the tiny preset: V 430, H 128), stopped early, and its two
    pages."""
    tmp = tmp_path_factory.mktemp("tiny")
    run = tmp / "lm"
    assert main(["train", "--max-steps", "3", "--quiet", "--out", str(run)]) == 0
    pages = []
    for argv, name in ((["report", str(run)], "report.html"),
                       (["explain", str(run)], "explain.html")):
        assert main([*argv, "--html", str(tmp / name)]) == 0
        pages.append(tmp / name)
    return pages


def test_the_pages_of_the_readmes_tiny_run_stay_under_two_megabytes(tiny_pages):
    for page in tiny_pages:
        assert page.stat().st_size < 2_000_000, page.name


def test_in_chromium_the_pages_of_the_tiny_run_open_without_an_error(browser, tiny_pages):
    for out in tiny_pages:
        page, errors, requests = open_page(browser, out)
        assert page.locator("#graph-view").is_visible()
        assert errors == [] and requests == [out.as_uri()]
        page.close()
