// A first look at a state set: the values of every cell of one source over a
// window of tokens (line plot, token strip, heatmap), with move, jump, window size,
// threshold and a cell selection, all kept in the URL.

import { get, isAbort, withQuery } from "../core/api.js";
import { bootData, fmtInt, fmtValue, h, showToken } from "../core/format.js";
import { codecs, createUrlState } from "../core/urlstate.js";
import { okabeIto } from "../core/palettes.js";
import { createHeatmap } from "../views/heatmap.js";
import { createLegend } from "../views/legend.js";
import { createLinePlot, yDomain } from "../views/lineplot.js";
import { createTokenStrip } from "../views/tokens.js";

const boot = bootData();
const AXIS_LEFT = 48;

const figure = document.getElementById("figure");
const statusEl = document.getElementById("status");
const readout = document.getElementById("readout");
const chips = document.getElementById("chips");
const controls = document.getElementById("controls");
const sourceSelect = document.getElementById("source");
const posInput = document.getElementById("pos");
const wInput = document.getElementById("w");
const thrInput = document.getElementById("threshold");

const views = {
  lines: createLinePlot(document.getElementById("lineplot")),
  tokens: createTokenStrip(document.getElementById("tokens")),
  heatmap: createHeatmap(document.getElementById("heatmap")),
  legend: createLegend(document.getElementById("legend")),
};

let info = null;
let urlState = null;
let data = null;
let fetchedFor = "";
let cursor = null;

function setBusy(busy) {
  figure.dataset.ready = busy ? "false" : "true";
  if (busy) figure.setAttribute("aria-busy", "true");
  else figure.removeAttribute("aria-busy");
}

function showError(message) {
  statusEl.className = "form-status error";
  statusEl.textContent = message;
}

function clearError() {
  statusEl.className = "form-status";
  statusEl.textContent = "";
}

function sourceById(id) {
  return info.sources.find((s) => s.id === id) || info.sources[0];
}

function sourceLabel(s) {
  const what = `layer ${s.layer} ${s.kind}`;
  // Extracted sources are named "layer 1 h" already: say it once.
  const name = s.name && s.name !== what ? `${s.name} · ${what}` : what;
  return `${name} (${fmtInt(info.length)} × ${fmtInt(s.cells)})`;
}

function makeState() {
  const first = info.sources[0].id;
  const maxPos = Math.max(0, info.length - 1);
  return createUrlState({
    source: {
      codec: codecs.str, default: first,
      clamp: (v) => (info.sources.some((s) => s.id === v) ? v : first),
    },
    pos: { codec: codecs.int, default: 0, clamp: (v) => Math.max(0, Math.min(maxPos, v)) },
    w: { codec: codecs.int, default: 100, clamp: (v) => Math.max(10, Math.min(400, v)) },
    threshold: { codec: codecs.float, default: 0.3 },
    cells: {
      codec: codecs.intList, default: [],
      clamp: (v, st) => {
        const n = sourceById(st.source).cells;
        return [...new Set(v)].filter((c) => c >= 0 && c < n);
      },
    },
  });
}

function layout(state) {
  const avail = Math.max(320, figure.clientWidth - AXIS_LEFT - 8);
  const n = data ? data.tokens.length : state.w;
  const colW = avail / state.w;
  return { left: AXIS_LEFT, width: colW * n, n, colW };
}

function syncControls(state) {
  sourceSelect.value = state.source;
  if (document.activeElement !== posInput) posInput.value = String(state.pos);
  if (document.activeElement !== wInput) wInput.value = String(state.w);
  if (document.activeElement !== thrInput) thrInput.value = String(state.threshold);
  document.getElementById("move-left").disabled = state.pos <= 0;
  document.getElementById("move-right").disabled = state.pos + state.w >= info.length;
}

function renderChips(state) {
  chips.replaceChildren(...(state.cells.length ? state.cells.map((cell, k) => h("li", {
    class: "chip", "data-cell": String(cell),
  },
  h("span", { class: "swatch", style: `background: ${okabeIto[k % okabeIto.length]}`, "aria-hidden": "true" }),
  `cell ${cell}`,
  h("button", {
    type: "button", class: "chip-remove", "aria-label": `Drop cell ${cell}`,
    onclick: () => toggleCell(cell),
  }, "×"))) : [h("li", { class: "muted" }, "none")]));
}

function speak() {
  if (!data || !cursor) { readout.textContent = ""; return; }
  const pos = data.start + cursor.t;
  const tok = showToken(data.tokens[cursor.t] ?? "");
  let text = `Position ${pos}, token “${tok}”`;
  if (cursor.cell !== null && cursor.cell !== undefined) {
    const i = data.cells.indexOf(cursor.cell);
    if (i >= 0) text += `, cell ${cursor.cell}: ${fmtValue(data.values[i][cursor.t])}`;
  }
  readout.textContent = text;
}

function draw() {
  if (!data) return;
  const state = urlState.get();
  const lay = layout(state);
  const extent = Math.max(...yDomain(data.values).map(Math.abs));
  const starts = info.stream_starts || [];
  views.lines.update(data, state, lay, cursor, starts);
  views.tokens.update(data, state, lay, cursor, starts);
  views.heatmap.update(data, state, lay, cursor, extent);
  views.legend.update({ extent, threshold: state.threshold });
  renderChips(state);
  speak();
  setBusy(false);
}

async function refresh() {
  const state = urlState.get();
  syncControls(state);
  const key = `${state.source}|${state.pos}|${state.w}`;
  if (key === fetchedFor && data) { draw(); return; }
  setBusy(true);
  const end = Math.min(info.length - 1, state.pos + state.w - 1);
  try {
    const answer = await get(withQuery(boot.api.context, {
      source: state.source, start: state.pos, end,
    }), { key: "context" });
    data = answer;
    fetchedFor = key;
    cursor = cursor ? { t: Math.min(cursor.t, data.tokens.length - 1), cell: cursor.cell } : null;
    clearError();
    draw();
  } catch (err) {
    if (isAbort(err)) return;
    showError(err.message);
    figure.removeAttribute("aria-busy");
  }
}

function toggleCell(cell) {
  const cells = urlState.get().cells;
  urlState.set({ cells: cells.includes(cell) ? cells.filter((c) => c !== cell) : [...cells, cell] });
}

function moveBy(delta) {
  const st = urlState.get();
  urlState.set({ pos: st.pos + delta });
}

function wire() {
  sourceSelect.replaceChildren(...info.sources.map((s) => h("option", { value: s.id }, sourceLabel(s))));
  sourceSelect.addEventListener("change", () => urlState.set({ source: sourceSelect.value, cells: [] }));
  document.getElementById("move-left").addEventListener("click", () => moveBy(-Math.ceil(urlState.get().w / 2)));
  document.getElementById("move-right").addEventListener("click", () => moveBy(Math.ceil(urlState.get().w / 2)));
  // Applying reads every field at once, so that a change of one field never
  // drops an edit still pending in another.
  const applyForm = () => {
    const patch = {};
    const pos = codecs.int.parse(posInput.value.trim());
    const w = codecs.int.parse(wInput.value.trim());
    const thr = codecs.float.parse(thrInput.value.trim());
    const bad = [];
    if (pos === undefined) bad.push("position must be a whole number"); else patch.pos = pos;
    if (w === undefined) bad.push("window must be a whole number"); else patch.w = w;
    if (thr === undefined) bad.push("threshold must be a number like 0.3"); else patch.threshold = thr;
    if (bad.length) showError(`Check the fields: ${bad.join("; ")}.`); else clearError();
    urlState.set(patch);
    syncControls(urlState.get());
  };
  controls.addEventListener("submit", (event) => {
    event.preventDefault();
    applyForm();
  });
  thrInput.addEventListener("change", applyForm);

  figure.addEventListener("cursor", (event) => {
    cursor = event.detail;
    draw();
  });
  figure.addEventListener("togglecell", (event) => toggleCell(event.detail.cell));
  figure.addEventListener("pointerleave", () => { cursor = null; draw(); });
  figure.addEventListener("keydown", (event) => {
    if (!data) return;
    const n = data.tokens.length;
    const cells = data.cells;
    const cur = cursor || { t: 0, cell: cells[0] ?? null };
    let next = null;
    const ci = cells.indexOf(cur.cell);
    switch (event.key) {
      case "ArrowLeft": next = { ...cur, t: Math.max(0, cur.t - 1) }; break;
      case "ArrowRight": next = { ...cur, t: Math.min(n - 1, cur.t + 1) }; break;
      case "ArrowUp": next = { ...cur, cell: cells[Math.max(0, ci - 1)] }; break;
      case "ArrowDown": next = { ...cur, cell: cells[Math.min(cells.length - 1, ci + 1)] }; break;
      case "Enter":
      case " ":
        if (cur.cell !== null) toggleCell(cur.cell);
        event.preventDefault();
        return;
      default: return;
    }
    event.preventDefault();
    cursor = next;
    draw();
  });

  let pending = false;
  window.addEventListener("resize", () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; draw(); });
  });
  urlState.subscribe(() => refresh());
}

async function start() {
  setBusy(true);
  try {
    info = await get(boot.api.stateset, { key: "stateset" });
  } catch (err) {
    if (!isAbort(err)) showError(err.message);
    figure.removeAttribute("aria-busy");
    return;
  }
  document.getElementById("stateset-meta").textContent =
    `${fmtInt(info.length)} tokens · ${info.sources.length} source${info.sources.length === 1 ? "" : "s"}` +
    (info.vocab_size ? ` · vocabulary of ${fmtInt(info.vocab_size)}` : "");
  if (!info.sources.length) {
    showError("This state set has no sources to show.");
    figure.removeAttribute("aria-busy");
    return;
  }
  urlState = makeState();
  urlState.normalize();
  wire();
  refresh();
}

start();
