// bptt's explainer page: the unrolled graph, a step-through of forward and backward, and the
// numbers of one node. Plain JavaScript and SVG; the data is the JSON in #bptt-data (made by
// bptt.tools.explaining.page from one real forward and backward pass).
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("bptt-data").textContent);
  const I18N = {
    en: {
      title: "bptt: backprop through time in {model}",
      graph: "The unrolled graph",
      graphHint: "Click a node: its layer's equations, its value and its gradient dL/d(node).",
      steps: "Step through",
      node: "A node",
      noNode: "No node chosen yet.",
      lang: "日本語",
      summary: "{model}: batch N = {N}, T = {T} steps; loss {loss} (mean cross-entropy of the next word); the {cell} cell replayed step by step {replay}.",
      replayOk: "gives the layer's own numbers back",
      replayBad: "DIFFERS from the layer",
      forwardAt: "forward, t = {t}",
      backwardAt: "backward, t = {t}",
      computedFrom: "{h}{t} is computed from x{t} and {h}{p}.",
      computedFirst: "{h}0 is computed from x0 and the initial state (zeros).",
      fromLoss: "from the loss at {t}: dhs[:, {t}]",
      fromNext: "from {h}{n}: dh_next",
      fromNone: "from the future: 0 (last step)",
      total: "dL/d{h}{t}",
      initial: "dh (the initial state's gradient)",
      nodeTitle: "{label}: {layer}, t = {t}, shape {shape}",
      grad: "dL/d{label}",
      forward: "forward:", oneStep: "one step ({cell}):", backward: "backward:",
      ids: "ids",
      reportTitle: "bptt: the run {model}",
      reportSummary: "{run}: a {kind} run.",
      curves: "Training curves",
      curvesHint: "From the run's log.jsonl: each logged window and each evaluation; hover a point for its numbers.",
      step: "step {x0} .. {x1}",
      pointTip: "step {x}: {key} {y}",
      attentionView: "Attention",
      attentionHint: "The weights the decoder gave each source character while it wrote each output character, for \"{text}\" (a test source of the run); hover a cell for its weight.",
      weightTip: "{out} <- {src}: {v}",
      units: "Units over a text",
      unitsHint: "A text the trained model writes itself, each word coloured by one unit of its last recurrent layer (a gate f, i, o, g, the cell state c or the state h): red positive, blue negative. Pick a unit and see where it fires; hover a word for the number.",
      unitTip: "{gate}[{unit}] at t = {t}: {v}",
      gateLabel: "gate or state",
      unitLabel: "unit",
      conn: "Gradient connectivity",
      connHint: "|dL_t / dx_(t-k)|: row t (the loss at step t), column k (how many steps back the input is), for one fresh layer of each cell ({T} steps, D = {D}, H = {H}, mean over {N} sequences). Darker is larger, on one logarithmic scale for all (three decades); hover for the number. Where a row fades, the gradient vanishes.",
      connEntry: "{cell}: t = {t}, k = {k}: {v}",
      raw: "{text}",
      features: "features",
      summarySeq2seq: "{model}: seq2seq ({kind}), batch N = {N}, source T_s = {Ts} steps, target T_t = {Tt} steps; loss {loss} (mean cross-entropy of the next target token); the {cell} cells of encoder and decoder replayed step by step {replay}.",
      summaryMlp: "{model}: batch N = {N}; loss {loss} (mean cross-entropy); forward layer by layer, then the chain rule back.",
      encoderAt: "forward, encoder, t = {t}",
      decoderAt: "forward, decoder, t = {t}",
      decoderBackAt: "backward, decoder, t = {t}",
      encoderBackAt: "backward, encoder, t = {t}",
      decoderFirst: "h'0 starts from the encoder's last state h{last} and reads y0 (the start symbol).",
      decoderFrom: "h'{t} is computed from y{t} (the previous target token: teacher forcing) and h'{p}.",
      weightsAt: "attention weights a{t}: one row per sequence, one column per source step",
      contextIs: "c{t} = sum over j of a{t}[j] h_j: the encoder states, weighted; s{t} reads [c{t}, h'{t}].",
      fromOutput: "from the output at {t} (scores, and the attention's query): dhs[:, {t}]",
      toEncoder: "dh: what the decoder sends back into the encoder's last state h{last}",
      fromAttention: "from the attention of every decoder step: dhs_enc[:, {t}]",
      fromAttentionAndStart: "from the attention of every decoder step and from the decoder's start state: dhs_enc[:, {t}] + dh",
      fromDecoderState: "from the decoder's start state: dh",
      fromNothing: "from above: 0 (only the last state goes on)",
      layerForward: "forward: {layer}",
      layerBackward: "backward: dL/d{layer}",
      theInput: "The input x: N examples of D features.",
      layerOf: "{out} = {layer}({x}).",
      chainRule: "dL/d{x} = {layer}.backward(dL/d{y}): the gradient from above times the layer's local derivative (the chain rule).",
    },
    ja: {
      title: "bptt: {model} の時間方向の誤差逆伝播",
      graph: "時間方向に展開した計算グラフ",
      graphHint: "ノードをクリックすると、そのレイヤの式、値、勾配 dL/d(ノード) が表示されます。",
      steps: "一歩ずつ見る",
      node: "ノード",
      noNode: "ノードはまだ選ばれていません。",
      lang: "English",
      summary: "{model}: バッチ N = {N}, T = {T} ステップ; 損失 {loss} (次の単語の平均交差エントロピー誤差); {cell} セルを1ステップずつ再実行した結果は{replay}。",
      replayOk: "レイヤ自身の数値と一致します",
      replayBad: "レイヤの数値と一致しません",
      forwardAt: "順伝播, t = {t}",
      backwardAt: "逆伝播, t = {t}",
      computedFrom: "{h}{t} は x{t} と {h}{p} から計算されます。",
      computedFirst: "{h}0 は x0 と初期状態 (ゼロ) から計算されます。",
      fromLoss: "時刻 {t} の損失からの勾配: dhs[:, {t}]",
      fromNext: "{h}{n} からの勾配: dh_next",
      fromNone: "未来からの勾配: 0 (最後のステップ)",
      total: "dL/d{h}{t} (勾配の和)",
      initial: "dh (初期状態の勾配)",
      nodeTitle: "{label}: {layer}, t = {t}, 形状 {shape}",
      grad: "dL/d{label} (勾配)",
      forward: "順伝播:", oneStep: "1ステップ ({cell}):", backward: "逆伝播:",
      ids: "単語ID",
      reportTitle: "bptt: 学習済みの {model}",
      reportSummary: "{run}: {kind} の学習結果。",
      curves: "学習曲線",
      curvesHint: "この学習の log.jsonl から: 記録された区間ごとの損失と各評価。点にマウスを重ねると数値が出ます。",
      step: "ステップ {x0} .. {x1}",
      pointTip: "ステップ {x}: {key} {y}",
      attentionView: "Attention (注意)",
      attentionHint: "デコーダが出力の各文字を書くときに入力の各文字へ与えた重み (テスト用の入力 \"{text}\")。セルにマウスを重ねると重みが出ます。",
      weightTip: "{out} <- {src}: {v}",
      units: "テキスト上のユニット",
      unitsHint: "学習済みモデル自身が書いた文章。各単語を最後の再帰レイヤの1ユニット (ゲート f, i, o, g、記憶セル c、隠れ状態 h) の値で色付けします: 赤は正、青は負。ユニットを選んで、どこで発火するかを見てください。単語にマウスを重ねると数値が出ます。",
      unitTip: "{gate}[{unit}] (t = {t}): {v}",
      gateLabel: "ゲート・状態",
      unitLabel: "ユニット",
      conn: "勾配の伝わり方",
      connHint: "|dL_t / dx_(t-k)|: 行 t は時刻 t の損失、列 k は何ステップ前の入力か。各セルの新しいレイヤ1層 ({T} ステップ, D = {D}, H = {H}, {N} 系列の平均)。濃いほど大きく (全セル共通の対数目盛, 3桁)、マウスを重ねると数値が出ます。行が薄れていくところで勾配が消失しています。",
      connEntry: "{cell}: t = {t}, k = {k}: {v}",
      raw: "{text}",
      features: "特徴量",
      summarySeq2seq: "{model}: {kind} 型の seq2seq モデル, バッチ N = {N}, 入力 T_s = {Ts} ステップ, 出力 T_t = {Tt} ステップ; 損失 {loss} (次の出力トークンの平均交差エントロピー誤差); エンコーダとデコーダの {cell} セルを1ステップずつ再実行した結果は{replay}。",
      summaryMlp: "{model}: バッチ N = {N}; 損失 {loss} (平均交差エントロピー誤差); レイヤごとに順伝播し、連鎖律で逆伝播します。",
      encoderAt: "順伝播, エンコーダ, t = {t}",
      decoderAt: "順伝播, デコーダ, t = {t}",
      decoderBackAt: "逆伝播, デコーダ, t = {t}",
      encoderBackAt: "逆伝播, エンコーダ, t = {t}",
      decoderFirst: "h'0 はエンコーダの最後の状態 h{last} から始まり、y0 (開始記号) を読みます。",
      decoderFrom: "h'{t} は y{t} (一つ前の正解トークン: Teacher Forcing) と h'{p} から計算されます。",
      weightsAt: "Attention の重み a{t}: 行は系列、列は入力の各ステップ",
      contextIs: "c{t} = Σ_j a{t}[j] h_j: エンコーダの隠れ状態の重み付き和 (コンテキストベクトル)。s{t} は [c{t}, h'{t}] から計算されます。",
      fromOutput: "時刻 {t} の出力 (スコアと Attention の問い合わせ) からの勾配: dhs[:, {t}]",
      toEncoder: "dh: デコーダからエンコーダの最後の状態 h{last} へ逆伝播する勾配",
      fromAttention: "すべてのデコーダ時刻の Attention からの勾配: dhs_enc[:, {t}]",
      fromAttentionAndStart: "Attention とデコーダの初期状態からの勾配: dhs_enc[:, {t}] + dh",
      fromDecoderState: "デコーダの初期状態からの勾配: dh",
      fromNothing: "上からの勾配: 0 (先へ渡るのは最後の状態だけ)",
      layerForward: "順伝播: {layer}",
      layerBackward: "逆伝播: dL/d{layer}",
      theInput: "入力 x: N 個のデータ、それぞれ D 個の特徴量。",
      layerOf: "{out} = {layer}({x})。",
      chainRule: "dL/d{x} = {layer}.backward(dL/d{y}): 上流から来た勾配に、そのレイヤの局所的な微分を掛けます (連鎖律)。",
    },
  };
  let lang = data.lang === "ja" ? "ja" : "en";
  const tr = (key, args) => I18N[lang][key].replace(/\{(\w+)\}/g, (_, k) => String(args[k]));
  const svgNS = "http://www.w3.org/2000/svg";
  const fmt = v => (Math.abs(v) >= 1e-3 || v === 0 ? v.toFixed(4) : v.toExponential(3));

  function texts() {
    document.documentElement.lang = lang;
    document.title = tr(data.report ? "reportTitle" : "title", {model: data.model});
    document.getElementById("title").textContent = document.title;
    document.querySelectorAll("[data-i18n]").forEach(e => { e.textContent = tr(e.dataset.i18n, {}); });
    const parts = [];
    if (data.report) parts.push(tr("reportSummary", {run: data.report.run, kind: data.report.kind}));
    if (data.summary) parts.push(tr(data.summary[0], Object.assign({}, data.summary[1], {
      model: data.model, loss: fmt(data.loss),
      replay: tr(data.summary[1].replay ? "replayOk" : "replayBad", {})})));
    document.getElementById("summary").textContent = parts.join(" ");
  }

  // -- heatmaps: one table per (N, width) array, each entry on hover and in data-value -------
  function heat(name, matrix, key) {
    const wrap = document.createElement("div");
    const title = document.createElement("div");
    title.className = "heat-title";
    title.textContent = name;
    wrap.appendChild(title);
    const table = document.createElement("table");
    table.className = "heat";
    table.dataset.name = name;
    table.dataset.key = key || name;
    let most = 0;
    matrix.forEach(row => row.forEach(v => { most = Math.max(most, Math.abs(v)); }));
    matrix.forEach((row, n) => {
      const tr = document.createElement("tr");
      row.forEach((v, j) => {
        const td = document.createElement("td");
        const a = most > 0 ? Math.abs(v) / most : 0;
        td.style.background = v >= 0 ? `rgba(214, 96, 77, ${a})` : `rgba(67, 147, 195, ${a})`;
        td.dataset.value = String(v);
        td.title = `${name}[${n}, ${j}] = ${v}`;
        td.textContent = Math.abs(v) < 1e-3 && v !== 0 ? "~0" : v.toFixed(2);
        tr.appendChild(td);
      });
      table.appendChild(tr);
    });
    wrap.appendChild(table);
    return wrap;
  }

  // -- gradient connectivity: |dL_t/dx_{t-k}| for each cell, side by side ----------------------
  function connectivity() {
    const c = data.connectivity;
    document.getElementById("conn-hint").textContent = tr("connHint", c.sizes);
    const box = document.getElementById("connectivity");
    box.innerHTML = "";
    // one scale for every cell (log, three decades), so the cells compare at a glance
    const most = Math.max(...Object.values(c.cells).map(m => Math.max(...m.flat().filter(v => v !== null))));
    Object.entries(c.cells).forEach(([cell, m]) => {
      const wrap = document.createElement("div");
      const title = document.createElement("div");
      title.className = "heat-title";
      title.textContent = cell.toUpperCase();
      wrap.appendChild(title);
      const table = document.createElement("table");
      table.className = "conn";
      table.dataset.key = `conn-${cell}`;
      const head = document.createElement("tr");
      head.appendChild(document.createElement("th"));
      m.forEach((_, k) => { const th = document.createElement("th"); th.textContent = `k${k}`; head.appendChild(th); });
      table.appendChild(head);
      m.forEach((row, t) => {
        const tr_ = document.createElement("tr");
        const th = document.createElement("th");
        th.textContent = `t${t}`;
        tr_.appendChild(th);
        row.forEach((v, k) => {
          const td = document.createElement("td");
          if (v !== null) {
            const a = v > 0 && most > 0 ? Math.max(0.03, 1 + Math.log10(v / most) / 3) : 0;
            td.style.background = `rgba(120, 60, 170, ${a})`;
            td.dataset.value = String(v);
            td.title = tr("connEntry", {cell: cell, t: t, k: k, v: v.toExponential(3)});
          }
          tr_.appendChild(td);
        });
        table.appendChild(tr_);
      });
      wrap.appendChild(table);
      box.appendChild(wrap);
    });
  }

  // -- the explainer views: graph, node, step-through (any model: rows, edges, frames) -------
  let refresh = () => {};
  const rowName = row => row.layer === "input" ? tr("ids", {}) :
    row.layer === "features" ? tr("features", {}) : row.layer;
  const nodeName = (row, t) => data.view === "mlp" ? row.label : `${row.label}${t}`;
  function explainer() {
    const rows = data.rows;
    const byKey = {};
    rows.forEach((row, r) => { byKey[row.key] = r; });
    // -- the unrolled graph ------------------------------------------------------------------
    const W = 110, Hgap = 70, left = 170, topPad = 30, boxW = 54, boxH = 28;
    const levels = Math.max(...rows.map(r => r.level)) + 1;
    const columns = Math.max(...rows.map(r => r.offset + r.value.length));
    const svg = document.createElementNS(svgNS, "svg");
    const width = left + columns * W + 40, height = topPad + levels * Hgap;
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const defs = document.createElementNS(svgNS, "defs");
    defs.innerHTML = '<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" ' +
      'markerWidth="7" markerHeight="7" orient="auto-start-reverse">' +
      '<path d="M 0 0 L 10 5 L 0 10 z" fill="#9aa3b2"/></marker>';
    svg.appendChild(defs);
    const pos = key => {
      const [k, t] = key.split("_");
      const row = rows[byKey[k]];
      return [left + (row.offset + Number(t)) * W + W / 2, height - topPad / 2 - (row.level + 0.5) * Hgap];
    };
    const most = Math.max(1e-12, ...data.edges.filter(e => e.weight !== undefined).map(e => e.weight));
    const edges = data.edges.map(e => {
      const [x1, y1] = pos(e.from), [x2, y2] = pos(e.to);
      const path = document.createElementNS(svgNS, "path");
      let d;
      if (e.cls.includes("handoff"))  // the encoder's last state into the decoder, below the labels
        d = `M ${x1} ${y1 + boxH / 2} Q ${(x1 + x2) / 2} ${y1 + Hgap} ${x2 - 2} ${y2 + boxH / 2 + 2}`;
      else if (y1 === y2) d = `M ${x1 + boxW / 2} ${y1} L ${x2 - boxW / 2 - 2} ${y2}`;  // along time
      else if (e.cls === "skip") d = `M ${x1 + boxW / 2} ${y1} Q ${x1 + boxW} ${(y1 + y2) / 2} ${x2 + boxW / 2 + 2} ${y2}`;
      else d = `M ${x1} ${y1 - boxH / 2} L ${x2} ${y2 + boxH / 2 + 2}`;  // up a layer
      path.setAttribute("d", d);
      path.setAttribute("class", "edge" + (e.cls ? " " + e.cls : ""));
      if (e.weight !== undefined) path.style.strokeOpacity = String(0.12 + 0.88 * e.weight / most);
      path.dataset.from = e.from;
      path.dataset.to = e.to;
      svg.appendChild(path);
      return path;
    });
    const nodes = {};
    rows.forEach((row, r) => {
      const label = document.createElementNS(svgNS, "text");
      label.setAttribute("x", row.offset ? left + row.offset * W - 150 : 6);
      label.setAttribute("y", pos(`${row.key}_0`)[1] + 4);
      label.textContent = rowName(row);
      label.setAttribute("font-size", "10");
      svg.appendChild(label);
      row.value.forEach((_, t) => {
        const [x, y] = pos(`${row.key}_${t}`);
        const g = document.createElementNS(svgNS, "g");
        g.setAttribute("class", "node");
        g.dataset.node = `${row.key}_${t}`;
        const rect = document.createElementNS(svgNS, "rect");
        rect.setAttribute("x", x - boxW / 2); rect.setAttribute("y", y - boxH / 2);
        rect.setAttribute("width", boxW); rect.setAttribute("height", boxH); rect.setAttribute("rx", 6);
        const text = document.createElementNS(svgNS, "text");
        text.setAttribute("x", x); text.setAttribute("y", y + 4);
        text.setAttribute("text-anchor", "middle");
        text.textContent = nodeName(row, t);
        g.appendChild(rect); g.appendChild(text);
        g.addEventListener("click", () => choose(r, t));
        svg.appendChild(g);
        nodes[`${row.key}_${t}`] = g;
      });
    });
    document.getElementById("graph").appendChild(svg);

    // -- one node: equations, value, gradient ---------------------------------------------------
    let chosen = null;
    function choose(r, t) {
      chosen = [r, t];
      const row = rows[r];
      Object.values(nodes).forEach(n => n.classList.remove("chosen"));
      nodes[`${row.key}_${t}`].classList.add("chosen");
      document.getElementById("node-title").textContent =
        tr("nodeTitle", {label: nodeName(row, t), layer: rowName(row), t: t, shape: row.shape});
      const panel = document.getElementById("node-panel");
      panel.innerHTML = "";
      panel.dataset.node = `${row.key}_${t}`;
      const eq = row.equations;
      if (eq) {
        const pre = document.createElement("pre");
        pre.className = "eq";
        const cell = row.cell_equations;
        const lines = [tr("forward", {}), ...eq.forward.map(l => "  " + l)];
        if (cell) lines.push(tr("oneStep", {cell: cell.layer}), ...cell.forward.map(l => "  " + l));
        lines.push(tr("backward", {}), ...(cell ? cell.backward : eq.backward).map(l => "  " + l));
        pre.textContent = lines.join("\n");
        panel.appendChild(pre);
      }
      panel.appendChild(heat(nodeName(row, t), row.value[t], "value"));
      if (row.grad) panel.appendChild(heat(tr("grad", {label: nodeName(row, t)}), row.grad[t], "grad"));
    }

    // -- the step-through: the frames, forward then backward -----------------------------------
    const frames = data.frames;
    const slider = document.getElementById("step");
    slider.max = String(frames.length - 1);
    function show(k) {
      k = Math.max(0, Math.min(frames.length - 1, k));
      slider.value = String(k);
      const frame = frames[k];
      const label = document.getElementById("step-label");
      label.textContent = tr(frame.title[0], frame.title[1]);
      label.dataset.phase = frame.phase;
      label.dataset.t = String(frame.t);
      Object.values(nodes).forEach(n => n.classList.remove("active", "grad"));
      edges.forEach(e => e.classList.remove("active", "grad"));
      frame.active.forEach(n => nodes[n].classList.add("active"));
      frame.grad.forEach(n => nodes[n].classList.add("grad"));
      const lit = new Set(frame.edges.map(([a, b]) => `${a}>${b}`));
      const cls = frame.phase === "forward" ? "active" : "grad";
      edges.forEach(e => { if (lit.has(`${e.dataset.from}>${e.dataset.to}`)) e.classList.add(cls); });
      const panel = document.getElementById("step-panel");
      panel.innerHTML = "";
      panel.dataset.t = String(frame.t);
      panel.dataset.phase = frame.phase;
      let sum = null;
      frame.panel.forEach(item => {
        if (item.hint) {
          sum = null;
          const p = document.createElement("p");
          p.className = "hint";
          p.textContent = tr(item.hint[0], item.hint[1]);
          panel.appendChild(p);
          return;
        }
        if (!sum) { sum = document.createElement("div"); sum.className = "sum"; panel.appendChild(sum); }
        if (item.op) {
          const op = document.createElement("span"); op.className = "op"; op.textContent = item.op;
          sum.appendChild(op);
        } else {
          sum.appendChild(heat(tr(item.heat[0], item.heat[1]), item.matrix, item.key));
        }
      });
    }
    slider.addEventListener("input", () => show(Number(slider.value)));
    document.getElementById("prev").addEventListener("click", () => show(Number(slider.value) - 1));
    document.getElementById("next").addEventListener("click", () => show(Number(slider.value) + 1));
    refresh = () => { show(Number(slider.value)); if (chosen) choose(chosen[0], chosen[1]); };
    show(0);
    const [ck, ct] = data.chosen.split("_");
    choose(byKey[ck], Number(ct));
  }

  // -- a run's report: training curves, attention ------------------------------------------
  function curves() {
    const box = document.getElementById("curves");
    box.innerHTML = "";
    document.getElementById("curves-hint").textContent = tr("curvesHint", {});
    data.report.curves.forEach(curve => {
      const w = 360, h = 190, pad = 42;
      const xs = curve.points.map(p => p[0]), ys = curve.points.map(p => p[1]);
      const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
      const sx = v => pad + (x1 > x0 ? (v - x0) / (x1 - x0) : 0.5) * (w - pad - 10);
      const sy = v => h - 24 - (y1 > y0 ? (v - y0) / (y1 - y0) : 0.5) * (h - 40);
      const svg = document.createElementNS(svgNS, "svg");
      svg.setAttribute("width", w); svg.setAttribute("height", h);
      svg.dataset.key = `curve-${curve.key}`;
      const title = document.createElementNS(svgNS, "text");
      title.setAttribute("x", pad); title.setAttribute("y", 12); title.textContent = curve.key;
      svg.appendChild(title);
      [[y1, sy(y1)], [y0, sy(y0)]].forEach(([v, y]) => {
        const t = document.createElementNS(svgNS, "text");
        t.setAttribute("x", 2); t.setAttribute("y", y + 4); t.setAttribute("font-size", "10");
        t.textContent = fmt(v);
        svg.appendChild(t);
      });
      const axis = document.createElementNS(svgNS, "text");
      axis.setAttribute("x", w - 10); axis.setAttribute("y", h - 6);
      axis.setAttribute("text-anchor", "end"); axis.setAttribute("font-size", "10");
      axis.textContent = tr("step", {x0: x0, x1: x1});
      svg.appendChild(axis);
      const line = document.createElementNS(svgNS, "polyline");
      line.setAttribute("points", curve.points.map(p => `${sx(p[0])},${sy(p[1])}`).join(" "));
      line.setAttribute("class", "curve");
      svg.appendChild(line);
      curve.points.forEach(p => {
        const c = document.createElementNS(svgNS, "circle");
        c.setAttribute("cx", sx(p[0])); c.setAttribute("cy", sy(p[1])); c.setAttribute("r", 3.2);
        c.setAttribute("class", "point");
        c.dataset.x = String(p[0]); c.dataset.y = String(p[1]);
        const tip = document.createElementNS(svgNS, "title");
        tip.textContent = tr("pointTip", {x: p[0], key: curve.key, y: p[1]});
        c.appendChild(tip);
        svg.appendChild(c);
      });
      box.appendChild(svg);
    });
  }

  function units() {
    const u = data.report.units;
    document.getElementById("units-hint").textContent = tr("unitsHint", {});
    const gate = document.getElementById("unit-gate"), unit = document.getElementById("unit");
    if (!gate.options.length) {
      Object.keys(u.acts).forEach(k => gate.add(new Option(k, k)));
      gate.value = "h";
      u.acts.h[0].forEach((_, j) => unit.add(new Option(String(j), String(j))));
      gate.addEventListener("change", paint);
      unit.addEventListener("change", paint);
    }
    paint();
  }

  function paint() {
    const u = data.report.units;
    const g = document.getElementById("unit-gate").value, j = Number(document.getElementById("unit").value);
    const text = document.getElementById("unit-text");
    text.innerHTML = "";
    text.dataset.gate = g;
    text.dataset.unit = String(j);
    u.tokens.forEach((tok, t) => {
      const v = u.acts[g][t][j];
      const span = document.createElement("span");
      span.className = "tok";
      span.textContent = tok === "<eos>" ? "⏎" : tok;
      span.dataset.value = String(v);
      span.style.background = v >= 0 ? `rgba(214, 96, 77, ${Math.min(1, Math.abs(v))})` :
        `rgba(67, 147, 195, ${Math.min(1, Math.abs(v))})`;
      span.title = tr("unitTip", {gate: g, unit: j, t: t, v: v.toFixed(4)});
      text.appendChild(span);
      if (tok === "<eos>" && t > 0) text.appendChild(document.createElement("br"));
    });
  }

  function attention() {
    const a = data.report.attention;
    document.getElementById("attention-hint").textContent = tr("attentionHint", {text: a.text});
    const box = document.getElementById("attention");
    box.innerHTML = "";
    const table = document.createElement("table");
    table.className = "heat attention";
    table.dataset.key = "attention";
    const head = document.createElement("tr");
    head.appendChild(document.createElement("th"));
    a.source.forEach(tok => { const th = document.createElement("th"); th.textContent = tok === " " ? "␣" : tok; head.appendChild(th); });
    table.appendChild(head);
    a.weights.forEach((row, i) => {
      const tr_ = document.createElement("tr");
      const th = document.createElement("th");
      th.textContent = a.output[i] === " " ? "␣" : a.output[i];
      tr_.appendChild(th);
      row.forEach((v, j) => {
        const td = document.createElement("td");
        td.style.background = `rgba(214, 96, 77, ${v})`;
        td.dataset.value = String(v);
        td.title = tr("weightTip", {out: a.output[i], src: a.source[j], v: v.toFixed(4)});
        tr_.appendChild(td);
      });
      table.appendChild(tr_);
    });
    box.appendChild(table);
  }

  // -- which views this page has ----------------------------------------------------------
  const views = {"graph-view": !!data.rows, "step-view": !!data.rows, "node-view": !!data.rows,
                 "connectivity-view": !!data.connectivity,
                 "curves-view": !!(data.report && data.report.curves.length),
                 "attention-view": !!(data.report && data.report.attention),
                 "units-view": !!(data.report && data.report.units && data.report.units.tokens.length)};
  Object.entries(views).forEach(([id, on]) => { document.getElementById(id).hidden = !on; });
  document.getElementById("lang").addEventListener("click", () => {
    lang = lang === "ja" ? "en" : "ja";
    render();
  });
  function render() {
    texts();
    if (views["connectivity-view"]) connectivity();
    if (views["curves-view"]) curves();
    if (views["attention-view"]) attention();
    if (views["units-view"]) units();
    refresh();
  }
  if (data.rows) explainer();
  render();
})();
