"""The page of `vlens view`: one HTML file, its CSS and JavaScript inline, no network.

`vlens.viewer.view` fills `PAGE` with one JSON document (`<script type="application/json">`); the script
below draws everything from it. Kept apart from `vlens.viewer.view` so the Python that computes the data
reads top to bottom without a page of markup in the middle.

The JSON (see `vlens.viewer.page_data.page_data`) holds:

- `frames`: `[{src, label}]`, each frame a PNG data URI;
- `grid`: `[rows, cols]` of patches per frame; `layers`, `heads` (the head slider's last stop is
  the mean over heads), `queries` (e.g. `["answer", "question"]`);
- `maps`: base64 of uint8 `[query, layer, head + 1, frame, row, col]`, each (query, layer, head)
  slice scaled to its own maximum `scale[q][l][h]` (255 = that maximum);
- `mass`: `[query][layer][head + 1][frame]` attention mass to each frame's video positions;
- `knockouts`: `{columns, rows, note}` or null; `patching`: `[{name, layers, groups, effect, n}]`.
"""

PAGE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
  body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.2rem 2rem; color: #222; }
  h1 { font-size: 1.3rem; margin-bottom: 0.2rem; }
  h2 { font-size: 1.05rem; margin-top: 1.6rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
  .sub { color: #666; font-size: 0.85rem; }
  .controls { display: grid; grid-template-columns: max-content 260px max-content; gap: 0.35rem 0.8rem;
              align-items: center; margin: 0.8rem 0; font-size: 0.9rem; }
  .controls output { font-variant-numeric: tabular-nums; color: #444; }
  .frames { display: flex; flex-wrap: wrap; gap: 0.6rem; }
  .frame { text-align: center; font-size: 0.75rem; color: #444; }
  .frame canvas { display: block; border: 1px solid #ccc; image-rendering: pixelated; }
  .legend { display: flex; align-items: center; gap: 0.5rem; font-size: 0.8rem; margin-top: 0.6rem; }
  .bar { width: 180px; height: 12px; border: 1px solid #aaa; }
  table { border-collapse: collapse; font-size: 0.8rem; margin: 0.4rem 0; }
  th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; font-variant-numeric: tabular-nums; }
  th { background: #f4f4f4; }
  td.name { text-align: left; font-family: ui-monospace, monospace; }
  .hbar { display: inline-block; height: 9px; background: #4a7bb7; vertical-align: middle; }
  .heat td { width: 2.6rem; text-align: center; }
  .note { font-size: 0.8rem; color: #555; max-width: 60rem; }
</style>
</head>
<body>
<h1 id="title"></h1>
<div class="sub" id="subtitle"></div>

<h2>Attention over each frame's patches</h2>
<div class="note">Each cell is one patch position of a sampled frame; its colour is the attention weight
from the chosen query position(s) to that patch, in the chosen layer and head (the head slider's last
stop is the mean over heads). Colours are scaled to the largest patch weight of the current layer and
head, printed in the legend; below each frame, its share of the query's attention (all its positions).</div>
<div class="controls">
  <label for="layer">layer</label><input type="range" id="layer" min="0" value="0" step="1"><output id="layer-out"></output>
  <label for="head">head</label><input type="range" id="head" min="0" value="0" step="1"><output id="head-out"></output>
  <label for="query">query</label><select id="query"></select><output id="query-out"></output>
  <label for="opacity">overlay opacity</label><input type="range" id="opacity" min="0" max="100" value="75" step="5"><output id="opacity-out"></output>
</div>
<div class="frames" id="frames"></div>
<div class="legend"><span>0</span><canvas class="bar" id="colorbar" width="180" height="12"></canvas>
  <span id="legend-max"></span><span>attention weight per patch</span></div>

<div id="knockouts"></div>
<div id="patching"></div>

<script type="application/json" id="vlens-data">__DATA__</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("vlens-data").textContent);
const [ROWS, COLS] = D.grid;
const NQ = D.queries.length, NL = D.layers.length, NH = D.heads.length + 1, NF = D.frames.length;
const MAPS = Uint8Array.from(atob(D.maps), c => c.charCodeAt(0));
// viridis, 9 stops: patches read against the grey-ish synthetic and natural frames alike
const STOPS = [[68,1,84],[72,40,120],[62,74,137],[49,104,142],[38,130,142],[31,158,137],[53,183,121],[109,205,89],[253,231,37]];
function cmap(t) {
  const x = Math.max(0, Math.min(1, t)) * (STOPS.length - 1), i = Math.min(STOPS.length - 2, Math.floor(x)), f = x - i;
  return STOPS[i].map((a, k) => Math.round(a + f * (STOPS[i + 1][k] - a)));
}
const el = id => document.getElementById(id);
const canvases = [], images = [];
const SIZE = D.frame_px;

function pct(v) { return (100 * v).toFixed(1) + "%"; }
function fmt(v, d) { return (v === null || v === undefined || Number.isNaN(v)) ? "–" : Number(v).toFixed(d); }

function setup() {
  el("title").textContent = D.title;
  el("subtitle").textContent = D.subtitle;
  el("layer").max = NL - 1;
  el("head").max = NH - 1;
  el("head").value = NH - 1;
  for (const [i, q] of D.queries.entries()) {
    const o = document.createElement("option");
    o.value = i; o.textContent = q; el("query").appendChild(o);
  }
  const box = el("frames");
  D.frames.forEach((fr, f) => {
    const div = document.createElement("div"); div.className = "frame";
    const c = document.createElement("canvas");
    c.width = SIZE[0]; c.height = SIZE[1]; c.id = "frame-" + f;
    const cap = document.createElement("div"); cap.id = "cap-" + f;
    div.appendChild(c); div.appendChild(cap); box.appendChild(div); canvases.push(c);
  });
  const bar = el("colorbar").getContext("2d");
  for (let x = 0; x < 180; x++) { const [r, g, b] = cmap(x / 179); bar.fillStyle = `rgb(${r},${g},${b})`; bar.fillRect(x, 0, 1, 12); }
  for (const id of ["layer", "head", "query", "opacity"]) el(id).addEventListener("input", draw);
  renderKnockouts(); renderPatching();
}

function draw() {
  const l = +el("layer").value, h = +el("head").value, q = +el("query").value, alpha = +el("opacity").value / 100;
  el("layer-out").textContent = `${D.layers[l]}  (blocks.${D.layers[l]}.attn.hook_pattern)`;
  el("head-out").textContent = h === NH - 1 ? "mean over heads" : `head ${D.heads[h]}`;
  el("query-out").textContent = D.query_notes[q];
  el("opacity-out").textContent = alpha.toFixed(2);
  el("legend-max").textContent = D.scale[q][l][h].toPrecision(3);
  const base = (((q * NL + l) * NH + h) * NF) * ROWS * COLS;
  canvases.forEach((c, f) => {
    const ctx = c.getContext("2d");
    ctx.clearRect(0, 0, c.width, c.height);
    if (images[f]) ctx.drawImage(images[f], 0, 0, c.width, c.height);
    else { ctx.fillStyle = "#999"; ctx.fillRect(0, 0, c.width, c.height); }
    const cw = c.width / COLS, ch = c.height / ROWS;
    for (let r = 0; r < ROWS; r++) for (let k = 0; k < COLS; k++) {
      const v = MAPS[base + (f * ROWS + r) * COLS + k] / 255;
      const [R, G, B] = cmap(v);
      ctx.fillStyle = `rgba(${R},${G},${B},${alpha * Math.sqrt(v)})`;  // a patch nobody attends to stays visible
      ctx.fillRect(k * cw, r * ch, Math.ceil(cw), Math.ceil(ch));
    }
    el("cap-" + f).textContent = `${D.frames[f].label} · ${pct(D.mass[q][l][h][f])}`;
  });
  document.body.dataset.state = `${q}/${l}/${h}`;
}

function renderKnockouts() {
  const K = D.knockouts;
  if (!K) return;
  const box = el("knockouts");
  box.innerHTML = "<h2>Knockouts, per configuration</h2>";
  const note = document.createElement("div"); note.className = "note"; note.textContent = K.note; box.appendChild(note);
  const t = document.createElement("table");
  const head = t.insertRow();
  for (const c of [...K.columns, ""]) { const th = document.createElement("th"); th.textContent = c; head.appendChild(th); }
  for (const row of K.rows) {
    const tr = t.insertRow();
    row.cells.forEach((v, i) => { const td = tr.insertCell(); td.textContent = v; if (i === 0) td.className = "name"; });
    const td = tr.insertCell();
    if (row.bar !== null && !Number.isNaN(row.bar)) {
      const b = document.createElement("span"); b.className = "hbar";
      b.style.width = Math.round(120 * Math.max(0, Math.min(1, row.bar))) + "px"; td.appendChild(b);
    }
  }
  box.appendChild(t);
}

function diverging(v) {  // -1 blue, 0 white, 1 red (the report's RdBu heatmaps)
  if (v === null || Number.isNaN(v)) return "#eee";
  const t = Math.max(-1, Math.min(1, v));
  const a = Math.round(255 * (1 - Math.abs(t)));
  return t >= 0 ? `rgb(255,${a},${a})` : `rgb(${a},${a},255)`;
}

function renderPatching() {
  if (!D.patching.length) return;
  const box = el("patching");
  box.innerHTML = "<h2>Activation patching</h2><div class='note'>Normalised effect of patching the clean " +
    "activation into the corrupted run at a layer (rows, top = last) and position group (columns): " +
    "0 = the corrupted answer, 1 = the clean answer.</div>";
  for (const P of D.patching) {
    const h = document.createElement("h3"); h.style.fontSize = "0.9rem";
    h.textContent = `${P.name} (n = ${P.n})`; box.appendChild(h);
    const t = document.createElement("table"); t.className = "heat";
    const head = t.insertRow(); head.appendChild(document.createElement("th")).textContent = "layer";
    for (const g of P.groups) head.appendChild(document.createElement("th")).textContent = g;
    for (let i = P.layers.length - 1; i >= 0; i--) {
      const tr = t.insertRow(); tr.appendChild(document.createElement("th")).textContent = P.layers[i];
      P.effect[i].forEach(v => { const td = tr.insertCell(); td.textContent = fmt(v, 2); td.style.background = diverging(v); });
    }
    box.appendChild(t);
  }
}

setup();
Promise.all(D.frames.map((fr, f) => new Promise(resolve => {
  if (!fr.src) { resolve(); return; }  // no pixels given: the frame is drawn grey
  const img = new Image();
  img.onload = () => { images[f] = img; resolve(); };
  img.onerror = () => resolve();  // a frame that does not decode stays grey; the overlay still draws
  img.src = fr.src;
}))).then(() => { draw(); window.vlensReady = true; });
</script>
</body>
</html>
"""
