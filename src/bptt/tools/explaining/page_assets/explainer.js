// bptt's explainer page: the unrolled graph, a step-through of forward and backward, and the
// numbers of one node. Plain JavaScript and SVG; the data is the JSON in #bptt-data (made by
// bptt.tools.explaining.page from one real forward and backward pass).
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("bptt-data").textContent);
  const T = data.T;
  const rows = data.rows;
  const svgNS = "http://www.w3.org/2000/svg";
  const top = rows.filter(r => r.key.startsWith("h")).slice(-1)[0];
  const fmt = v => (Math.abs(v) >= 1e-3 || v === 0 ? v.toFixed(4) : v.toExponential(3));

  document.getElementById("summary").textContent =
    `${data.model}: batch N = ${data.dims.N}, T = ${T} steps; loss ${fmt(data.loss)} ` +
    `(mean cross-entropy of the next word); the ${data.replay.cell} cell replayed step by ` +
    `step ${data.replay.replay_ok ? "gives the layer's own numbers back" : "DIFFERS from the layer"}.`;

  // -- heatmaps: one table per (N, width) array, each entry on hover and in data-value -------
  function heat(name, matrix) {
    const wrap = document.createElement("div");
    const title = document.createElement("div");
    title.className = "heat-title";
    title.textContent = name;
    wrap.appendChild(title);
    const table = document.createElement("table");
    table.className = "heat";
    table.dataset.name = name;
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

  // -- the unrolled graph ------------------------------------------------------------------
  const W = 110, Hgap = 70, left = 170, topPad = 30, boxW = 54, boxH = 28;
  const svg = document.createElementNS(svgNS, "svg");
  const height = topPad + rows.length * Hgap;
  svg.setAttribute("width", left + T * W + 40);
  svg.setAttribute("height", height);
  svg.setAttribute("viewBox", `0 0 ${left + T * W + 40} ${height}`);
  const defs = document.createElementNS(svgNS, "defs");
  defs.innerHTML = '<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" ' +
    'markerWidth="7" markerHeight="7" orient="auto-start-reverse">' +
    '<path d="M 0 0 L 10 5 L 0 10 z" fill="#9aa3b2"/></marker>';
  svg.appendChild(defs);
  const pos = (r, t) => [left + t * W + W / 2, height - topPad / 2 - (r + 0.5) * Hgap];
  const edges = [];
  function edge(r1, t1, r2, t2, cls) {
    const [x1, y1] = pos(r1, t1), [x2, y2] = pos(r2, t2);
    const line = document.createElementNS(svgNS, "line");
    const horizontal = r1 === r2;
    line.setAttribute("x1", horizontal ? x1 + boxW / 2 : x1);
    line.setAttribute("y1", horizontal ? y1 : y1 - boxH / 2);
    line.setAttribute("x2", horizontal ? x2 - boxW / 2 - 2 : x2);
    line.setAttribute("y2", horizontal ? y2 : y2 + boxH / 2 + 2);
    line.setAttribute("class", "edge" + (cls ? " " + cls : ""));
    line.dataset.from = `${rows[r1].key}_${t1}`;
    line.dataset.to = `${rows[r2].key}_${t2}`;
    svg.appendChild(line);
    edges.push(line);
  }
  for (let t = 0; t < T; t++) {
    for (let r = 0; r + 1 < rows.length; r++) edge(r, t, r + 1, t, "");
    rows.forEach((row, r) => { if (row.key.startsWith("h") && t > 0) edge(r, t - 1, r, t, "recurrent"); });
  }
  const nodes = {};
  rows.forEach((row, r) => {
    const label = document.createElementNS(svgNS, "text");
    label.setAttribute("x", 6);
    label.setAttribute("y", pos(r, 0)[1] + 4);
    label.textContent = row.layer === "input" ? "ids" : row.layer;
    label.setAttribute("font-size", "10");
    svg.appendChild(label);
    for (let t = 0; t < T; t++) {
      const [x, y] = pos(r, t);
      const g = document.createElementNS(svgNS, "g");
      g.setAttribute("class", "node");
      g.dataset.node = `${row.key}_${t}`;
      const rect = document.createElementNS(svgNS, "rect");
      rect.setAttribute("x", x - boxW / 2); rect.setAttribute("y", y - boxH / 2);
      rect.setAttribute("width", boxW); rect.setAttribute("height", boxH); rect.setAttribute("rx", 6);
      const text = document.createElementNS(svgNS, "text");
      text.setAttribute("x", x); text.setAttribute("y", y + 4);
      text.setAttribute("text-anchor", "middle");
      text.textContent = `${row.label}${t}`;
      g.appendChild(rect); g.appendChild(text);
      g.addEventListener("click", () => choose(r, t));
      svg.appendChild(g);
      nodes[`${row.key}_${t}`] = g;
    }
  });
  document.getElementById("graph").appendChild(svg);

  // -- one node: equations, value, gradient ---------------------------------------------------
  function choose(r, t) {
    const row = rows[r];
    Object.values(nodes).forEach(n => n.classList.remove("chosen"));
    nodes[`${row.key}_${t}`].classList.add("chosen");
    document.getElementById("node-title").textContent =
      `${row.label}${t}: ${row.layer}, t = ${t}, shape ${row.shape}`;
    const panel = document.getElementById("node-panel");
    panel.innerHTML = "";
    panel.dataset.node = `${row.key}_${t}`;
    const eq = row.equations;
    if (eq) {
      const pre = document.createElement("pre");
      pre.className = "eq";
      const cell = row.cell_equations;
      const lines = ["forward:", ...eq.forward.map(l => "  " + l)];
      if (cell) lines.push(`one step (${cell.layer}):`, ...cell.forward.map(l => "  " + l));
      lines.push("backward:", ...(cell ? cell.backward : eq.backward).map(l => "  " + l));
      pre.textContent = lines.join("\n");
      panel.appendChild(pre);
    }
    panel.appendChild(heat(`${row.label}${t}`, row.value[t]));
    if (row.grad) panel.appendChild(heat(`dL/d${row.label}${t}`, row.grad[t]));
  }

  // -- the step-through: forward t = 0..T-1, then backward t = T-1..0 ------------------------
  const slider = document.getElementById("step");
  slider.max = String(2 * T - 1);
  function show(k) {
    k = Math.max(0, Math.min(2 * T - 1, k));
    slider.value = String(k);
    const forward = k < T;
    const t = forward ? k : 2 * T - 1 - k;
    const label = document.getElementById("step-label");
    label.textContent = forward ? `forward, t = ${t}` : `backward, t = ${t}`;
    label.dataset.phase = forward ? "forward" : "backward";
    label.dataset.t = String(t);
    Object.values(nodes).forEach(n => n.classList.remove("active", "grad"));
    edges.forEach(e => e.classList.remove("active", "grad"));
    const panel = document.getElementById("step-panel");
    panel.innerHTML = "";
    panel.dataset.t = String(t);
    panel.dataset.phase = label.dataset.phase;
    if (forward) {
      rows.forEach(row => nodes[`${row.key}_${t}`].classList.add("active"));
      edges.forEach(e => {
        const to = e.dataset.to.split("_")[1];
        if (Number(to) === t) e.classList.add("active");
      });
      panel.appendChild(heat(`${top.label}${t}`, top.value[t]));
      const p = document.createElement("p");
      p.className = "hint";
      p.textContent = t > 0 ? `${top.label}${t} is computed from x${t} and ${top.label}${t - 1}.` :
        `${top.label}0 is computed from x0 and the initial state (zeros).`;
      panel.appendChild(p);
      return;
    }
    // backward at t: the two gradients that meet at h_t, then their sum
    const rep = data.replay;
    nodes[`${top.key}_${t}`].classList.add("grad");
    nodes[`s_${t}`].classList.add("grad");
    if (t + 1 < T) nodes[`${top.key}_${t + 1}`].classList.add("grad");
    edges.forEach(e => {
      if (e.dataset.to === `${top.key}_${t + 1}` && e.dataset.from === `${top.key}_${t}`) e.classList.add("grad");
      if (e.dataset.from === `${top.key}_${t}` && e.dataset.to.startsWith("s_")) e.classList.add("grad");
    });
    const sum = document.createElement("div");
    sum.className = "sum";
    sum.appendChild(heat(`from the loss at ${t}: dhs[:, ${t}]`, rep.from_loss[t]));
    const plus = document.createElement("span"); plus.className = "op"; plus.textContent = "+";
    sum.appendChild(plus);
    sum.appendChild(heat(t + 1 < T ? `from ${top.label}${t + 1}: dh_next` : "from the future: 0 (last step)", rep.from_next[t]));
    const eqs = document.createElement("span"); eqs.className = "op"; eqs.textContent = "=";
    sum.appendChild(eqs);
    sum.appendChild(heat(`dL/d${top.label}${t}`, rep.total[t]));
    panel.appendChild(sum);
    if (t === 0) {
      panel.appendChild(heat("dh (the initial state's gradient)", rep.dh0));
    }
  }
  slider.addEventListener("input", () => show(Number(slider.value)));
  document.getElementById("prev").addEventListener("click", () => show(Number(slider.value) - 1));
  document.getElementById("next").addEventListener("click", () => show(Number(slider.value) + 1));
  show(0);
  choose(rows.findIndex(r => r === top), 0);
})();
