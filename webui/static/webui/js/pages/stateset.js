// The analysis page of a state set: LSTMVis' selection and match views.
//
// Selection view: the values of every cell of a source over a window of tokens
// (line plot, an optional second source stacked under it, token strip, annotation
// tracks, heatmap). A hypothesis is a range of tokens (brushed on the plot or the
// tokens, or typed), a threshold (dragged on the plot's y axis or typed) and the
// off-constraints before and after the range; the cells it selects come from the
// selection API, debounced, stale requests aborted (a local preview from the
// window's values shows meanwhile), and can be edited by hand (add, exclude).
// Match view: the selected cells matched over the whole corpus, with the length
// histograms (a bar filters the hits to one length), a table of the hits aligned
// at their start with heatmaps of the cells on and of each annotation, paging, and
// the job's progress when a match runs long.
//
// Everything that makes the view is in the URL (js/core/urlstate.js); reloading
// gives the same view. Other modules read and set the selection through
// ./analysis-state.js.

import { get, getWindow, isAbort, post, withQuery } from "../core/api.js";
import { bootData, fmtInt, fmtValue, h, showToken } from "../core/format.js";
import { codecs, createUrlState } from "../core/urlstate.js";
import { okabeIto } from "../core/palettes.js";
import { createHeatmap } from "../views/heatmap.js";
import { createHistograms } from "../views/histogram.js";
import { createLegend } from "../views/legend.js";
import { createLinePlot, sourceDomain } from "../views/lineplot.js";
import { createMatchTable } from "../views/matches.js";
import { createOverview } from "../views/overview.js";
import { createTokenStrip } from "../views/tokens.js";
import { createTracks } from "../views/tracks.js";
import { emitSelectionChange, registerAnalysis } from "./analysis-state.js";
import { firstWindow } from "./stateset-first-window.js";

const boot = bootData();
const AXIS_LEFT = 48;
const W_MIN = 10;
const W_MAX = 400;
const PAGE = 20;
const MATCH_LIMIT = 500;
const CONTEXT_LEFT = 10;
const CONTEXT_RIGHT = 5;
const SELECTION_DEBOUNCE_MS = 90;
const LINE_COLOURS = ["#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7"];
const MANY_COLOUR = "#0072B2";

const $ = (id) => document.getElementById(id);
const figure = $("figure");
const statusEl = $("status");
const readout = $("readout");
const chips = $("chips");
const tooltip = $("tooltip");
const inputs = {
  source: $("source"), cmp: $("cmp"), pos: $("pos"), w: $("w"), threshold: $("threshold"),
  start: $("range-start"), end: $("range-end"), zl: $("zl"), zr: $("zr"),
  minlen: $("minlen"), maxlen: $("maxlen"), search: $("search"), addCell: $("add-cell"),
};

const views = {
  overview: createOverview($("overview")),
  lines: createLinePlot($("lineplot"), { name: "Line plot" }),
  cmp: createLinePlot($("lineplot-cmp"), { height: 170, name: "Compared source" }),
  tokens: createTokenStrip($("tokens")),
  tracks: createTracks($("tracks")),
  heatmap: createHeatmap($("heatmap")),
  legend: createLegend($("legend")),
  histograms: createHistograms($("histograms")),
  table: createMatchTable($("match-table")),
};

let info = null;
let urlState = null;
let cursor = null;
let hoverCell = null;
const win = { key: "", data: null, loading: "" };
const cmpWin = { key: "", data: null, loading: "" };
// The range's selection: `cells` null while unknown; `preview` while only the
// local estimate is known.
const sel = { key: "", cells: null, preview: false, error: "", timer: 0, requested: false };
const selCache = new Map();
let pendingCells = null; // {key, cells, resolve}: cells a spec asked for, applied once the range's selection is known
let lastEmitted = "";
let pendingMeasure = null;
let firstDraw = true;

// ---------------------------------------------------------------- small helpers

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
  const name = s.name && s.name !== what ? `${s.name} · ${what}` : what;
  return `${name} (${fmtInt(s.cells)} cells)`;
}

function isCharCorpus() {
  return win.data ? win.data.tokens.every((t) => [...t].length <= 1) : false;
}

function measure(name, start) {
  try { performance.measure(name, { start, end: performance.now() }); } catch { /* old browsers */ }
}

function colourOf(eff) {
  const idx = new Map(eff.map((c, i) => [c, i]));
  return (cell) => (eff.length > LINE_COLOURS.length ? MANY_COLOUR : LINE_COLOURS[idx.get(cell) % LINE_COLOURS.length]);
}

// ---------------------------------------------------------------- URL state

function makeState() {
  const first = info.sources[0].id;
  const maxPos = Math.max(0, info.length - 1);
  const clampPos = (v) => Math.max(0, Math.min(maxPos, v));
  const cellsOf = (st) => sourceById(st.source).cells;
  const cellList = (v, st) => [...new Set(v)].filter((c) => c >= 0 && c < cellsOf(st));
  const validSource = (v) => info.sources.some((s) => s.id === v);
  return createUrlState({
    source: { codec: codecs.str, default: first, clamp: (v) => (validSource(v) ? v : first) },
    cmp: { codec: codecs.str, default: "", clamp: (v, st) => (validSource(v) && v !== st.source ? v : "") },
    w: { codec: codecs.int, default: 100, clamp: (v) => Math.max(W_MIN, Math.min(W_MAX, v)) },
    pos: { codec: codecs.int, default: 0, clamp: (v, st) => Math.max(0, Math.min(Math.max(0, info.length - st.w), v)) },
    threshold: { codec: codecs.float, default: 0.3, clamp: (v) => (Number.isFinite(v) ? v : 0.3) },
    zl: { codec: codecs.int, default: 1, clamp: (v) => Math.max(0, Math.min(50, v)) },
    zr: { codec: codecs.int, default: 0, clamp: (v) => Math.max(0, Math.min(50, v)) },
    start: {
      codec: codecs.int, default: null,
      clamp: (v, st) => (v === null || st.end === null || v > st.end || v < 0 || v > maxPos ? null : v),
    },
    end: { codec: codecs.int, default: null, clamp: (v, st) => (v === null || st.start === null ? null : clampPos(v)) },
    cells: { codec: codecs.intList, default: [], clamp: cellList },
    ex: { codec: codecs.intList, default: [], clamp: (v, st) => cellList(v, st).filter((c) => !st.cells.includes(c)) },
    minlen: { codec: codecs.int, default: 2, clamp: (v) => Math.max(1, Math.min(1_000_000, v)) },
    maxlen: { codec: codecs.int, default: null, clamp: (v, st) => (v === null || v < st.minlen ? null : v) },
    match: { codec: codecs.int, default: 0, clamp: (v) => (v === 1 ? 1 : 0) },
    len: { codec: codecs.int, default: null, clamp: (v) => (v === null || v < 1 ? null : v) },
    page: { codec: codecs.int, default: 1, clamp: (v) => Math.max(1, v) },
    paint: { codec: codecs.str, default: "count" },
    mark: { codec: codecs.intList, default: [], clamp: (v) => (v.length === 2 && v[0] <= v[1] && v[0] >= 0 ? v : []) },
    q: { codec: codecs.str, default: "" },
  });
}

// ---------------------------------------------------------------- selection

function selKey(st) {
  return st.start === null ? "" : `${st.source}|${st.start}|${st.end}|${st.threshold}|${st.zl}|${st.zr}`;
}

/** The range's cells from the window's values, when the window covers the pattern. */
function localSelection(st) {
  const data = win.data;
  if (!data || st.start === null || win.key !== windowKey(st)) return null;
  const lo = st.start - st.zl;
  const hi = st.end + st.zr;
  const inside = (t) => t >= 0 && t < info.length;
  for (const t of [lo, hi]) if (inside(t) && (t < data.start || t > data.end)) return null;
  const thr = st.threshold;
  const out = [];
  for (let i = 0; i < data.cells.length; i++) {
    const row = data.values[i];
    const on = (t) => inside(t) && Number.isFinite(row[t - data.start]) && row[t - data.start] >= thr;
    let ok = true;
    for (let t = st.start; t <= st.end && ok; t++) ok = on(t);
    for (let t = lo; t < st.start && ok; t++) ok = !on(t);
    for (let t = st.end + 1; t <= hi && ok; t++) ok = !on(t);
    if (ok) out.push(data.cells[i]);
  }
  return out;
}

function fetchSelection(st) {
  return post(boot.api.selection, {
    source: st.source, start: st.start, end: st.end, threshold: st.threshold, zero_left: st.zl, zero_right: st.zr,
  }, { key: "selection" }).then((answer) => answer.cells);
}

function ensureSelection(st, { now = false } = {}) {
  const key = selKey(st);
  const run = () => {
    clearTimeout(sel.timer);
    sel.requested = true;
    fetchSelection(st).then((cells) => {
      selCache.set(key, cells);
      if (sel.key !== key) return;
      sel.cells = cells;
      sel.preview = false;
      render("selection");
    }).catch((err) => {
      if (isAbort(err) || sel.key !== key) return;
      sel.error = err.message;
      sel.cells = [];
      sel.preview = false;
      render("selection");
    });
  };
  if (key !== sel.key) {
    clearTimeout(sel.timer);
    sel.key = key;
    sel.error = "";
    sel.requested = false;
    if (!key) { sel.cells = []; sel.preview = false; return; }
    if (selCache.has(key)) { sel.cells = selCache.get(key); sel.preview = false; return; }
    const local = localSelection(st);
    sel.cells = local ?? sel.cells;
    sel.preview = true;
    if (now) run(); else sel.timer = setTimeout(run, SELECTION_DEBOUNCE_MS);
    return;
  }
  if (!sel.preview) return;
  const local = localSelection(st);
  if (local) sel.cells = local;
  if (now && !sel.requested) run();
}

/** The selected cells: the range's selection plus the added cells, minus the excluded. */
function effective(st) {
  const base = st.start === null ? [] : sel.cells || [];
  const ex = new Set(st.ex);
  const inBase = new Set(base);
  const out = base.filter((c) => !ex.has(c));
  for (const c of st.cells) if (!inBase.has(c) && !ex.has(c)) out.push(c);
  return out;
}

function selectionKnown(st) {
  return st.start === null || (sel.key === selKey(st) && sel.cells !== null && !sel.preview);
}

function spec(st = urlState.get()) {
  return {
    source: st.source,
    start: st.start,
    end: st.end,
    threshold: st.threshold,
    zero_left: st.zl,
    zero_right: st.zr,
    min_length: st.minlen,
    max_length: st.maxlen,
    cells_added: [...st.cells],
    cells_excluded: [...st.ex],
    cells: effective(st),
  };
}

/** Edits (added, excluded) that turn the range's cells `base` into exactly `want`. */
function editsFor(base, want) {
  const b = new Set(base);
  const w = new Set(want);
  return { cells: want.filter((c) => !b.has(c)), ex: base.filter((c) => !w.has(c)) };
}

function toggleCell(cell) {
  const st = urlState.get();
  const eff = effective(st);
  if (eff.includes(cell)) {
    if (st.cells.includes(cell)) urlState.set({ cells: st.cells.filter((c) => c !== cell) });
    else urlState.set({ ex: [...st.ex, cell] });
  } else if (st.ex.includes(cell)) {
    urlState.set({ ex: st.ex.filter((c) => c !== cell) });
  } else {
    urlState.set({ cells: [...st.cells, cell] });
  }
}

/** Show the range [a, b] in the window when it is outside. */
function posFor(st, a, b = a) {
  if (a >= st.pos && b < st.pos + st.w) return st.pos;
  const lead = b - a + 1 >= st.w * 0.75 ? 2 : Math.floor(st.w / 4);
  return Math.max(0, a - lead);
}

async function applySpec(s) {
  const st = urlState.get();
  const patch = {};
  if (s.source !== undefined) patch.source = s.source;
  if (s.start !== undefined) patch.start = s.start;
  if (s.end !== undefined) patch.end = s.end;
  if (s.threshold !== undefined) patch.threshold = s.threshold;
  if (s.zero_left !== undefined) patch.zl = s.zero_left;
  if (s.zero_right !== undefined) patch.zr = s.zero_right;
  if (s.min_length !== undefined) patch.minlen = s.min_length ?? 2;
  if (s.max_length !== undefined) patch.maxlen = s.max_length;
  const explicit = s.cells_added !== undefined || s.cells_excluded !== undefined;
  if (explicit) {
    patch.cells = s.cells_added || [];
    patch.ex = s.cells_excluded || [];
  }
  const next = { ...st, ...patch };
  if (next.start !== null && next.start !== undefined) patch.pos = posFor(next, next.start, next.end ?? next.start);
  const wanted = !explicit && Array.isArray(s.cells) ? [...s.cells] : null;
  if (wanted && (next.start === null || next.start === undefined)) {
    patch.cells = wanted;
    patch.ex = [];
  }
  const done = new Promise((resolve) => {
    pendingCells = wanted && next.start !== null && next.start !== undefined
      ? { cells: wanted, resolve } : { cells: null, resolve };
  });
  if (wanted && next.start !== null && next.start !== undefined) { patch.cells = []; patch.ex = []; }
  urlState.set(patch);
  settlePending();
  return done;
}

function settlePending() {
  if (!pendingCells) return;
  const st = urlState.get();
  if (!selectionKnown(st)) return;
  const p = pendingCells;
  pendingCells = null;
  if (p.cells) {
    const edits = editsFor(st.start === null ? [] : sel.cells, p.cells);
    urlState.set(edits, { replace: true });
  }
  p.resolve(spec());
}

async function switchSource(id) {
  const st = urlState.get();
  const target = sourceById(id);
  const keep = selectionKnown(st) ? effective(st) : [];
  const cmp = st.cmp === id ? "" : st.cmp;
  if (!keep.length || !keep.every((c) => c < target.cells)) {
    urlState.set({ source: id, cmp, cells: [], ex: [] });
    return;
  }
  let base = [];
  if (st.start !== null) {
    const next = { ...st, source: id };
    const key = selKey(next);
    try {
      base = selCache.get(key) ?? await fetchSelection(next);
      selCache.set(key, base);
    } catch (err) {
      if (!isAbort(err)) showError(err.message);
      return;
    }
  }
  urlState.set({ source: id, cmp, ...editsFor(base, keep) });
}

// ---------------------------------------------------------------- windows

function windowKey(st) {
  return `${st.source}|${st.pos}|${st.w}`;
}

function layout(st, n) {
  const avail = Math.max(320, figure.clientWidth - AXIS_LEFT - 8);
  const colW = avail / st.w;
  return { left: AXIS_LEFT, width: colW * n, n, colW };
}

// Windows read ahead (the next and the previous one), so that a pan draws at once.
const windowCache = new Map();
const CACHE_WINDOWS = 6;

function remember(key, data) {
  windowCache.delete(key);
  windowCache.set(key, data);
  while (windowCache.size > CACHE_WINDOWS) windowCache.delete(windowCache.keys().next().value);
}

function prefetch(st) {
  for (const pos of [st.pos + st.w, st.pos - st.w]) {
    const p = Math.max(0, Math.min(info.length - st.w, pos));
    if (p === st.pos) continue;
    const key = `${st.source}|${p}|${st.w}`;
    if (windowCache.has(key)) continue;
    const end = Math.min(info.length - 1, p + st.w - 1);
    const pending = getWindow(withQuery(boot.api.context, { source: st.source, start: p, end }));
    windowCache.set(key, pending); // a pan before it arrives waits for this answer
    pending.then((data) => remember(key, data)).catch(() => windowCache.delete(key));
  }
}

async function loadWindow(target, st, source, key) {
  if (target.key === key && target.data) return true;
  const cached = windowCache.get(key);
  if (cached && !(cached instanceof Promise)) {
    target.data = cached;
    target.key = key;
    target.loading = "";
    return true;
  }
  if (target.loading === key) return false;
  target.loading = key;
  if (cached instanceof Promise) {
    try {
      const data = await cached;
      if (target.loading !== key) return false;
      target.data = data;
      target.key = key;
      target.loading = "";
      return true;
    } catch {
      // fall through to a request of its own
    }
  }
  const end = Math.min(info.length - 1, st.pos + st.w - 1);
  const t0 = performance.now();
  const url = withQuery(boot.api.context, { source, start: st.pos, end });
  try {
    const ahead = target === win ? firstWindow(url) : null;
    const data = await ((ahead && ahead.catch(() => null)) || Promise.resolve(null)).then((got) => got
      || getWindow(url, { key: target === win ? "context" : "context-cmp" }));
    if (target.loading !== key) return false;
    measure("analysis:context", t0);
    if (target === win) remember(key, data);
    target.data = data;
    target.key = key;
    target.loading = "";
    return true;
  } catch (err) {
    if (target.loading === key) target.loading = "";
    if (!isAbort(err)) {
      showError(err.message);
      figure.removeAttribute("aria-busy");
    }
    return false;
  }
}

// ---------------------------------------------------------------- drawing

let chipsKey = "";

function renderChips(st, eff) {
  const colour = colourOf(eff);
  const fromRange = new Set(st.start === null ? [] : sel.cells || []);
  const key = `${eff.join(",")}|${st.ex.join(",")}|${st.cells.join(",")}|${sel.preview}`;
  if (key !== chipsKey) {
    chipsKey = key;
    chips.replaceChildren(...(eff.length ? eff.map((cell) => {
      const added = !fromRange.has(cell);
      return h("li", {
        class: `chip${added ? " is-added" : ""}`, "data-cell": String(cell), tabindex: "0",
        title: added ? `cell ${cell}, added by hand` : `cell ${cell}, selected by the range`,
        onpointerenter: () => setHover(cell), onpointerleave: () => setHover(null),
        onfocus: () => setHover(cell), onblur: () => setHover(null),
      },
      h("span", { class: "swatch", style: `background: ${colour(cell)}`, "aria-hidden": "true" }),
      `cell ${cell}`,
      added ? h("span", { class: "chip-tag" }, "+") : null,
      h("button", {
        type: "button", class: "chip-remove",
        "aria-label": added ? `Drop cell ${cell}` : `Exclude cell ${cell}`,
        title: added ? "Drop this cell" : "Exclude this cell from the selection",
        onclick: () => { setHover(null); toggleCell(cell); },
      }, "×"));
    }) : [h("li", { class: "muted" }, sel.preview && st.start !== null ? "…" : "none")]));
    const exBox = $("excluded");
    exBox.hidden = st.ex.length === 0;
    exBox.replaceChildren(h("span", { class: "muted" }, "Excluded:"), ...st.ex.map((cell) => h("button", {
      type: "button", class: "btn btn-small chip-restore", "aria-label": `Restore cell ${cell}`,
      title: "Put this cell back into the selection", onclick: () => toggleCell(cell),
    }, `cell ${cell} ↺`)));
  }
  const nRange = st.start === null ? 0 : (sel.cells || []).length;
  const added = eff.filter((c) => !fromRange.has(c)).length;
  $("selection-summary").textContent = `Selected cells: ${eff.length}` +
    (st.start !== null ? ` (${nRange} from the range${added ? `, ${added} added` : ""}${st.ex.length ? `, ${st.ex.length} excluded` : ""})` : "") +
    (sel.preview && st.start !== null ? " · updating…" : "");
}

function renderNote(st, eff) {
  const note = $("selection-note");
  if (sel.error) {
    note.hidden = false;
    note.className = "selection-note alert alert-error";
    note.replaceChildren(sel.error);
    return;
  }
  if (st.start === null || sel.preview || (sel.cells && sel.cells.length)) {
    note.hidden = true;
    return;
  }
  const parts = [`No cell is on throughout ${st.start}–${st.end} at threshold ${st.threshold}` +
    (st.zl ? ` and off at the ${st.zl === 1 ? "position" : `${st.zl} positions`} before it` : "") +
    (st.zr ? ` and the ${st.zr === 1 ? "position" : `${st.zr} positions`} after it` : "") + "."];
  const buttons = [];
  if (st.zl > 0) {
    const alt = localSelection({ ...st, zl: 0 });
    parts.push(" Cells that were on already before the range are left out by “Off before”: start the range where the cells switch on (for brackets, at the opening bracket)" +
      (alt && alt.length ? `, or set Off before to 0 (${alt.length} cell${alt.length === 1 ? "" : "s"} then).` : ", or set Off before to 0."));
    buttons.push(h("button", { type: "button", class: "btn btn-small", onclick: () => urlState.set({ zl: 0 }) }, "Use Off before 0"));
  }
  const lower = Math.round((st.threshold - 0.2) * 100) / 100;
  const alt2 = localSelection({ ...st, threshold: lower });
  if (alt2 && alt2.length) {
    parts.push(` At threshold ${lower}: ${alt2.length} cell${alt2.length === 1 ? "" : "s"}.`);
    buttons.push(h("button", { type: "button", class: "btn btn-small", onclick: () => urlState.set({ threshold: lower }) }, `Use threshold ${lower}`));
  }
  note.hidden = false;
  note.className = "selection-note alert alert-info";
  note.replaceChildren(parts.join(""), " ", ...buttons);
  void eff;
}

function speak() {
  const data = win.data;
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

function showTooltip(st) {
  const data = win.data;
  if (!data || !cursor || cursor.clientX === undefined) { tooltip.hidden = true; return; }
  const t = cursor.t;
  const pos = data.start + t;
  const rows = [h("div", { class: "tt-head" }, h("b", {}, `“${showToken(data.tokens[t] ?? "")}”`), ` at ${fmtInt(pos)}`)];
  if (cursor.cell !== null && cursor.cell !== undefined) {
    const i = data.cells.indexOf(cursor.cell);
    if (i >= 0) {
      const v = data.values[i][t];
      rows.push(h("div", {}, `cell ${cursor.cell}: ${fmtValue(v)}`, h("span", { class: "muted" }, v >= st.threshold ? " · on" : " · off")));
    }
  }
  for (const tr of info.annotations || []) {
    const v = data.annotations && data.annotations[tr.name] ? data.annotations[tr.name][t] : undefined;
    if (v === undefined || v === null) continue;
    const text = tr.kind === "wordvec" && Array.isArray(v)
      ? v.slice(0, 3).map((e) => `${showToken(String(e.token))} ${(Number(e.weight) * 100).toFixed(0)}%`).join(", ")
      : typeof v === "number" ? String(+v.toFixed(3)) : String(v);
    rows.push(h("div", { class: "tt-ann" }, h("span", { class: "muted" }, `${tr.name}: `), text));
  }
  tooltip.replaceChildren(...rows);
  tooltip.hidden = false;
  const box = figure.getBoundingClientRect();
  const x = cursor.clientX - box.left;
  const y = cursor.clientY - box.top;
  const wTip = tooltip.offsetWidth;
  tooltip.style.left = `${Math.min(box.width - wTip - 4, x + 14)}px`;
  tooltip.style.top = `${Math.max(0, y + 16)}px`;
}

function searchHitColumns(st) {
  const out = new Set();
  if (!search.answer || !win.data) return out;
  const len = Math.max(1, search.answer.tokens.length);
  for (const p of search.answer.positions) {
    for (let t = p; t < p + len; t++) if (t >= win.data.start && t <= win.data.end) out.add(t - win.data.start);
  }
  void st;
  return out;
}

function draw() {
  const data = win.data;
  if (!data) return;
  const t0 = performance.now();
  const st = urlState.get();
  const eff = effective(st);
  const lay = layout(st, data.tokens.length);
  const colour = colourOf(eff);
  const src = sourceById(st.source);
  const domain = sourceDomain(src, data.values);
  const range = st.start === null ? null : { a: st.start - data.start, b: st.end - data.start };
  const mark = st.mark.length === 2 ? { a: st.mark[0] - data.start, b: st.mark[1] - data.start } : null;
  const starts = info.stream_starts || [];
  const common = {
    layout: lay, selected: eff, colourOf: colour, hoverCell, cursor, threshold: st.threshold,
    range, zl: st.zl, zr: st.zr, mark, streamStarts: starts,
  };
  views.lines.update({ ...common, data, domain, label: `Line plot of ${sourceLabel(src)}` });
  const cmpOn = Boolean(st.cmp) && cmpWin.data && cmpWin.key === `${st.cmp}|${st.pos}|${st.w}`;
  $("lineplot-cmp").hidden = !cmpOn;
  $("caption-cmp").hidden = !cmpOn;
  if (cmpOn) {
    const cs = sourceById(st.cmp);
    $("caption-cmp").textContent = `Compared: ${sourceLabel(cs)}`;
    views.cmp.update({
      ...common, data: cmpWin.data, domain: sourceDomain(cs, cmpWin.data.values),
      selected: eff.filter((c) => c < cs.cells), label: `Line plot of ${sourceLabel(cs)}`,
    });
  }
  $("caption-main").textContent = `Cell values · ${sourceLabel(src)}`;
  views.tokens.update({ ...common, data, hits: searchHitColumns(st) });
  views.tracks.update({ data, tracks: info.annotations || [], layout: lay, cursor });
  views.heatmap.update(data, { cells: eff }, lay, cursor, domain, hoverCell);
  views.legend.update({ domain, threshold: st.threshold, k: eff.length, selectedColour: eff.length ? colour(eff[0]) : "#E69F00" });
  views.overview.update({
    length: info.length, pos: st.pos, w: st.w, width: lay.colW * st.w, left: AXIS_LEFT,
    range: st.start === null ? null : { start: st.start, end: st.end },
    search: search.answer ? search.answer.positions : [],
    hits: match.hits || [],
  });
  renderChips(st, eff);
  renderNote(st, eff);
  speak();
  showTooltip(st);
  syncMatchButton(st, eff);
  void figure.offsetHeight; // style and layout belong to the redraw's cost
  const t1 = performance.now();
  measure("analysis:draw", t0);
  if (pendingMeasure && (!pendingMeasure.needsWindow || win.key === windowKey(st))) {
    measure(pendingMeasure.name, pendingMeasure.t0);
    pendingMeasure = null;
  }
  if (firstDraw) {
    firstDraw = false;
    measure("analysis:first-draw", firstDrawStart);
    setTimeout(panelLoad, 0);
  }
  void t1;
  setBusy(win.loading !== "" || (Boolean(st.cmp) && !cmpOn));
}

let firstDrawStart = 0;

function maybeEmit(st) {
  if (!selectionKnown(st)) return;
  const s = spec(st);
  const key = JSON.stringify(s);
  if (key === lastEmitted) return;
  const first = lastEmitted === "";
  lastEmitted = key;
  if (!first || s.cells.length) emitSelectionChange(s);
}

/** Everything follows the URL: fetch what is missing, then draw. */
function render(reason = "url") {
  const st = urlState.get();
  syncControls(st);
  ensureSelection(st);
  const key = windowKey(st);
  const needMain = !(win.key === key && win.data);
  const cmpKey = st.cmp ? `${st.cmp}|${st.pos}|${st.w}` : "";
  const needCmp = cmpKey && !(cmpWin.key === cmpKey && cmpWin.data);
  if (needMain || needCmp) {
    setBusy(true);
    const jobs = [];
    if (needMain) jobs.push(loadWindow(win, st, st.source, key));
    if (needCmp) jobs.push(loadWindow(cmpWin, st, st.cmp, cmpKey));
    Promise.all(jobs).then((oks) => {
      if (!oks.every(Boolean)) return;
      clearError();
      const now = urlState.get();
      if (windowKey(now) !== key) return;
      cursor = cursor && win.data ? { ...cursor, t: Math.min(cursor.t, win.data.tokens.length - 1) } : null;
      ensureSelection(now);
      draw();
      setTimeout(() => prefetch(urlState.get()), 0);
      settlePending();
      maybeEmit(now);
      ensureMatch(now);
    });
    if (win.data && !needMain) draw();
  } else {
    draw();
  }
  if (reason === "selection" || !needMain) {
    settlePending();
    maybeEmit(st);
    ensureMatch(st);
  }
  ensureSearch(st);
}

// ---------------------------------------------------------------- controls

function syncControls(st) {
  // A field being typed into keeps its text; any other shows the state.
  const set = (el, v) => {
    if (document.activeElement === el && el.dataset.dirty) return;
    el.value = v === null || v === undefined ? "" : String(v);
  };
  inputs.source.value = st.source;
  inputs.cmp.value = st.cmp;
  for (const opt of inputs.cmp.options) opt.disabled = opt.value !== "" && opt.value === st.source;
  set(inputs.pos, st.pos);
  set(inputs.w, st.w);
  set(inputs.threshold, st.threshold);
  set(inputs.start, st.start);
  set(inputs.end, st.end);
  set(inputs.zl, st.zl);
  set(inputs.zr, st.zr);
  set(inputs.minlen, st.minlen);
  set(inputs.maxlen, st.maxlen);
  set(inputs.search, st.q);
  inputs.addCell.max = String(sourceById(st.source).cells - 1);
  $("move-left").disabled = st.pos <= 0;
  $("move-right").disabled = st.pos + st.w >= info.length;
  $("zoom-in").disabled = st.w <= W_MIN;
  $("zoom-out").disabled = st.w >= W_MAX || st.w >= info.length;
  $("clear-range").disabled = st.start === null;
}

function syncMatchButton(st, eff) {
  const btn = $("match-button");
  const known = selectionKnown(st);
  btn.disabled = known && eff.length === 0;
  btn.title = eff.length ? `Match the ${eff.length} selected cell${eff.length === 1 ? "" : "s"} over the whole corpus`
    : "Select cells first: set a range or add a cell";
}

/** Read every field of both forms at once, so that no pending edit is dropped. */
function applyForms() {
  for (const el of Object.values(inputs)) delete el.dataset.dirty;
  const st = urlState.get();
  const patch = {};
  const bad = [];
  const int = (el, name, key, { optional = false } = {}) => {
    const raw = el.value.trim();
    if (raw === "" && optional) { patch[key] = null; return; }
    const v = codecs.int.parse(raw);
    if (v === undefined) bad.push(`${name} must be a whole number`); else patch[key] = v;
  };
  int(inputs.pos, "position", "pos");
  int(inputs.w, "window", "w");
  const thr = codecs.float.parse(inputs.threshold.value.trim());
  if (thr === undefined) bad.push("threshold must be a number like 0.3"); else patch.threshold = thr;
  int(inputs.zl, "off before", "zl");
  int(inputs.zr, "off after", "zr");
  int(inputs.start, "range start", "start", { optional: true });
  int(inputs.end, "range end", "end", { optional: true });
  int(inputs.minlen, "min length", "minlen");
  int(inputs.maxlen, "max length", "maxlen", { optional: true });
  const a = patch.start === undefined ? st.start : patch.start;
  const b = patch.end === undefined ? st.end : patch.end;
  if ((a === null) !== (b === null)) {
    if (a === null) { patch.start = b; patch.end = b; } else { patch.end = a; patch.start = a; }
  } else if (a !== null && b !== null) {
    if (a > b) bad.push("range end must not be before range start");
    if (a < 0 || b >= info.length) bad.push(`the range must lie within 0 to ${info.length - 1}`);
  }
  if (bad.length) {
    showError(`Check the fields: ${bad.join("; ")}.`);
    for (const k of ["start", "end"]) if (patch[k] !== undefined && bad.some((m) => m.includes("range"))) delete patch[k];
  } else {
    clearError();
  }
  const next = { ...st, ...patch };
  if (patch.start !== undefined && next.start !== null && (patch.start !== st.start || patch.end !== st.end)
      && patch.pos === st.pos) {
    patch.pos = posFor(next, next.start, next.end);
  }
  urlState.set(patch);
  syncControls(urlState.get());
}

function moveBy(delta, { replace = false } = {}) {
  const st = urlState.get();
  pendingMeasure = { name: "analysis:pan", t0: performance.now(), needsWindow: true };
  urlState.set({ pos: Math.max(0, Math.min(info.length - st.w, st.pos + delta)) }, { replace });
}

function zoomTo(w) {
  const st = urlState.get();
  const nw = Math.max(W_MIN, Math.min(W_MAX, Math.round(w)));
  const center = st.pos + st.w / 2;
  urlState.set({ w: nw, pos: Math.max(0, Math.round(center - nw / 2)) });
}

function setHover(cell) {
  if (hoverCell === cell) return;
  hoverCell = cell;
  draw();
}

// ---------------------------------------------------------------- search

const search = { key: "", answer: null };

function ensureSearch(st) {
  const box = $("search-results");
  if (!st.q) {
    search.key = "";
    search.answer = null;
    box.replaceChildren();
    return;
  }
  if (search.key === st.q) return;
  search.key = st.q;
  box.replaceChildren(h("span", { class: "muted" }, "Searching…"));
  get(withQuery(boot.api.search, { q: st.q, limit: 200 }), { key: "search" }).then((answer) => {
    if (search.key !== st.q) return;
    search.answer = answer;
    renderSearch();
    draw();
  }).catch((err) => {
    if (isAbort(err)) return;
    search.answer = null;
    box.replaceChildren(h("span", { class: "field-error" }, err.message));
  });
}

function renderSearch() {
  const box = $("search-results");
  const a = search.answer;
  if (!a) return;
  const total = a.total === null ? `${a.positions.length}+` : fmtInt(a.total);
  if (!a.positions.length) {
    box.replaceChildren(h("span", { class: "muted" }, `No hits for “${a.q}”.`));
    return;
  }
  const st = urlState.get();
  const len = Math.max(1, a.tokens.length);
  box.replaceChildren(
    h("span", { class: "muted" }, `${total} hit${a.total === 1 ? "" : "s"}${a.positions.length < (a.total ?? 0) ? `, first ${a.positions.length}` : ""}:`),
    h("ul", { class: "search-hits", "aria-label": "Search hits" }, a.positions.slice(0, 200).map((p) => h("li", {},
      h("button", {
        type: "button", class: `btn btn-small${p >= st.pos && p < st.pos + st.w ? " in-view" : ""}`,
        onclick: () => {
          const now = urlState.get();
          urlState.set({ pos: posFor({ ...now, pos: -1e9 }, p, p + len - 1), mark: [p, p + len - 1] });
        },
      }, fmtInt(p))))));
}

// ---------------------------------------------------------------- matches

const match = { qkey: "", id: null, pageKey: "", page: null, hits: [], jobTimer: 0, runs: 0, t0: 0 };

function matchBody(st, eff) {
  return {
    source: st.source,
    cells: [...eff].sort((a, b) => a - b),
    threshold: st.threshold,
    zero_left: st.zl,
    zero_right: st.zr,
    min_length: st.minlen,
    max_length: st.maxlen,
    length: st.len,
    limit: MATCH_LIMIT,
  };
}

function matchMessage(text, { kind = "hint" } = {}) {
  const el = $("match-empty");
  el.hidden = !text;
  el.className = kind === "error" ? "alert alert-error" : "hint";
  el.textContent = text || "";
}

function markMatch(ready) {
  const view = $("match-view");
  view.dataset.ready = ready ? "true" : "false";
  if (ready) view.removeAttribute("aria-busy"); else view.setAttribute("aria-busy", "true");
}

function showProgress(job) {
  const box = $("match-progress");
  if (!job) { box.hidden = true; box.replaceChildren(); return; }
  const pct = Math.round((job.progress || 0) * 100);
  box.hidden = false;
  box.replaceChildren(
    h("div", { class: "job-head" }, h("span", { class: "badge badge-running" }, job.status),
      h("span", { class: "job-message" }, job.message || "Matching over the whole corpus…")),
    h("div", {
      class: "progress", role: "progressbar", "aria-label": "Match progress",
      "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(pct),
    }, h("div", { class: "progress-fill", style: `width: ${pct}%` })));
}

function closeMatchView() {
  clearTimeout(match.jobTimer);
  match.qkey = "";
  match.id = null;
  match.page = null;
  match.pageKey = "";
  match.hits = [];
  showProgress(null);
  $("histograms").replaceChildren();
  $("match-table").replaceChildren();
  $("match-pager").hidden = true;
  $("match-filter").hidden = true;
  $("match-exact").hidden = true;
  $("match-summary").textContent = "";
  matchMessage("Set a range (or add cells) and press Match to find where else the selected cells behave the same way.");
  markMatch(true);
}

function ensureMatch(st) {
  if (!st.match) { if (match.qkey || match.page) closeMatchView(); return; }
  if (!selectionKnown(st)) { markMatch(false); return; }
  const eff = effective(st);
  if (!eff.length) {
    closeMatchView();
    matchMessage("No cells are selected: set a range that selects cells, or add cells, then press Match.");
    return;
  }
  const body = matchBody(st, eff);
  const qkey = JSON.stringify(body);
  if (qkey !== match.qkey) {
    const restart = match.runs > 0 && st.page !== 1;
    match.qkey = qkey;
    match.id = null;
    match.pageKey = "";
    if (restart) { urlState.set({ page: 1 }, { replace: true }); return; }
    runMatch(body, qkey);
    return;
  }
  if (match.id) loadPage(st);
}

function runMatch(body, qkey) {
  match.runs += 1;
  match.t0 = performance.now(); // "analysis:match": the request to the first rows drawn
  clearTimeout(match.jobTimer);
  markMatch(false);
  showProgress({ status: "queued", progress: 0, message: "Matching over the whole corpus…" });
  // The first page's rows come with the answer (`page`), unless another page is open.
  const st0 = urlState.get();
  const first = st0.page === 1
    ? { page: { offset: 0, limit: PAGE, left: CONTEXT_LEFT, right: CONTEXT_RIGHT } } : {};
  post(boot.api.matches, { ...body, ...first }, { key: "match", withStatus: true }).then(({ status, body: answer }) => {
    if (match.qkey !== qkey) return;
    if (status === 202) { pollJob(answer.job, qkey); return; }
    match.id = answer.id;
    showProgress(null);
    if (answer.page && urlState.get().page === 1) {
      match.pageKey = `${match.id}|1`;
      match.page = answer.page;
    }
    loadPage(urlState.get());
  }).catch((err) => {
    if (isAbort(err) || match.qkey !== qkey) return;
    showProgress(null);
    matchMessage(err.message, { kind: "error" });
    markMatch(true);
  });
}

function pollJob(job, qkey) {
  if (match.qkey !== qkey) return;
  showProgress(job);
  if (job.status === "succeeded") {
    match.id = job.result && job.result.match;
    showProgress(null);
    loadPage(urlState.get());
    return;
  }
  if (job.status === "failed" || job.status === "cancelled") {
    showProgress(null);
    matchMessage(job.error || `The match was ${job.status}.`, { kind: "error" });
    markMatch(true);
    return;
  }
  match.jobTimer = setTimeout(() => {
    get(`${boot.api.jobBase}${job.id}/`, { key: "match-job" }).then((next) => pollJob(next, qkey)).catch((err) => {
      if (isAbort(err) || match.qkey !== qkey) return;
      showProgress(null);
      matchMessage(err.message, { kind: "error" });
      markMatch(true);
    });
  }, 400);
}

function loadPage(st) {
  const key = `${match.id}|${st.page}`;
  if (match.pageKey === key && match.page) { renderMatch(st); ensureAllHits(match.page); return; }
  match.pageKey = key;
  markMatch(false);
  const offset = (st.page - 1) * PAGE;
  get(withQuery(`${boot.api.matchBase}${match.id}/`, { offset, limit: PAGE, left: CONTEXT_LEFT, right: CONTEXT_RIGHT }),
    { key: "match-page" }).then((page) => {
    if (match.pageKey !== key) return;
    if (page.total > 0 && offset >= page.total && st.page > 1) {
      urlState.set({ page: Math.max(1, Math.ceil(page.total / PAGE)) }, { replace: true });
      return;
    }
    match.page = page;
    renderMatch(urlState.get());
    ensureAllHits(page);
  }).catch((err) => {
    if (isAbort(err) || match.pageKey !== key) return;
    matchMessage(err.message, { kind: "error" });
    markMatch(true);
  });
}

/** The ticks on the overview: every hit's position (a page has only PAGE of them). */
function ensureAllHits(page) {
  if (!allHits.has(match.id)) {
    const id = match.id;
    allHits.set(id, null);
    get(withQuery(`${boot.api.matchBase}${id}/`, { offset: 0, limit: Math.min(1000, Math.max(1, page.total)), left: 0, right: 0 }),
      { key: "match-all" }).then((all) => {
      allHits.set(id, all.hits.map((hh) => hh.position));
      if (match.page && match.page.id === all.id) { match.hits = allHits.get(id); draw(); }
    }).catch(() => { allHits.delete(id); });
  } else if (allHits.get(match.id)) {
    match.hits = allHits.get(match.id);
  }
}
const allHits = new Map();

function renderMatch(st) {
  const page = match.page;
  if (!page) return;
  const total = page.total;
  const m = JSON.parse(match.qkey).cells.length;
  matchMessage(total ? "" : (st.len ? `No hits of length ${st.len}.` : "No hits: the selected cells are never on together elsewhere."));
  $("match-summary").textContent = `${fmtInt(total)} hit${total === 1 ? "" : "s"} of ${m} cell${m === 1 ? "" : "s"}` +
    ` · ${fmtInt(page.candidates)} candidates` + (page.seconds !== null && page.seconds !== undefined ? ` · ${page.seconds.toFixed(2)} s` : "");
  const exact = $("match-exact");
  exact.hidden = page.exact !== false;
  exact.textContent = page.exact === false
    ? `Approximate: the engine stopped at its budget and left ${fmtInt(page.unscored)} candidates unscored, so lower-ranked hits may be missing.`
    : "";
  views.histograms.update({ strict: page.strict_histogram, fuzzy: page.fuzzy_histogram, selected: st.len });
  const filter = $("match-filter");
  filter.hidden = st.len === null;
  filter.replaceChildren(...(st.len === null ? [] : [
    h("span", {}, `Showing hits of length ${st.len} only.`),
    h("button", { type: "button", class: "btn btn-small", onclick: () => urlState.set({ len: null, page: 1 }) }, "Show all lengths"),
  ]));
  views.table.update({
    page, tracks: info.annotations || [], m, paint: st.paint, charTokens: isCharCorpus(),
    current: st.mark.length === 2 ? st.mark[0] : null,
  });
  const pages = Math.max(1, Math.ceil(total / PAGE));
  $("match-pager").hidden = total <= PAGE;
  $("page-info").textContent = `Hits ${fmtInt(page.offset + 1)}–${fmtInt(Math.min(total, page.offset + PAGE))} of ${fmtInt(total)} · page ${st.page} of ${pages}`;
  $("page-prev").disabled = st.page <= 1;
  $("page-next").disabled = st.page >= pages;
  markMatch(true);
  if (match.t0) {
    void $("match-table").offsetHeight; // the rows' layout belongs to the cost
    measure("analysis:match", match.t0);
    match.t0 = 0;
  }
}

// ---------------------------------------------------------------- wiring

function wire() {
  const options = info.sources.map((s) => h("option", { value: s.id }, sourceLabel(s)));
  inputs.source.replaceChildren(...options);
  inputs.cmp.replaceChildren(h("option", { value: "" }, "none"), ...info.sources.map((s) => h("option", { value: s.id }, sourceLabel(s))));
  for (const el of Object.values(inputs)) el.addEventListener("input", () => { el.dataset.dirty = "1"; });
  inputs.source.addEventListener("change", () => switchSource(inputs.source.value));
  inputs.cmp.addEventListener("change", () => urlState.set({ cmp: inputs.cmp.value }));
  $("move-left").addEventListener("click", () => moveBy(-Math.ceil(urlState.get().w / 2)));
  $("move-right").addEventListener("click", () => moveBy(Math.ceil(urlState.get().w / 2)));
  $("zoom-in").addEventListener("click", () => zoomTo(urlState.get().w / 1.5));
  $("zoom-out").addEventListener("click", () => zoomTo(urlState.get().w * 1.5));
  $("clear-range").addEventListener("click", () => urlState.set({ start: null, end: null, ex: [] }));
  for (const id of ["controls", "selection-controls"]) {
    $(id).addEventListener("submit", (event) => { event.preventDefault(); applyForms(); });
  }
  // The range applies on Enter or "Apply" only: a start typed before its end is not a range yet.
  for (const el of [inputs.threshold, inputs.zl, inputs.zr, inputs.minlen, inputs.maxlen]) {
    el.addEventListener("change", applyForms);
  }
  $("add-cell-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const st = urlState.get();
    const n = sourceById(st.source).cells;
    const v = codecs.int.parse(inputs.addCell.value.trim());
    if (v === undefined || v < 0 || v >= n) {
      showError(`Add cell: give a cell number from 0 to ${n - 1}.`);
      return;
    }
    clearError();
    inputs.addCell.value = "";
    if (effective(st).includes(v)) return;
    if (st.ex.includes(v)) urlState.set({ ex: st.ex.filter((c) => c !== v) });
    else urlState.set({ cells: [...st.cells, v] });
  });
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const raw = inputs.search.value;
    const q = isCharCorpus() ? raw : raw.trim();
    search.key = "";
    urlState.set({ q });
  });
  $("match-button").addEventListener("click", () => {
    const st = urlState.get();
    if (st.match) {
      match.qkey = "";
      ensureMatch(st);
    } else {
      urlState.set({ match: 1, page: 1 });
    }
    $("match-view").scrollIntoView({ block: "nearest" });
  });
  $("page-prev").addEventListener("click", () => urlState.set({ page: urlState.get().page - 1 }));
  $("page-next").addEventListener("click", () => urlState.set({ page: urlState.get().page + 1 }));
  const matchView = $("match-view");
  matchView.addEventListener("lengthfilter", (event) => urlState.set({ len: event.detail.length, page: 1 }));
  matchView.addEventListener("paint", (event) => urlState.set({ paint: event.detail.name }));
  matchView.addEventListener("openhit", (event) => {
    const { position, length } = event.detail;
    const st = urlState.get();
    pendingMeasure = { name: "analysis:open-hit", t0: performance.now(), needsWindow: true };
    urlState.set({ pos: posFor({ ...st, pos: -1e9 }, position, position + length - 1), mark: [position, position + length - 1] });
    figure.scrollIntoView({ block: "nearest" });
  });

  // The figure: brush, threshold, cursor, cells.
  figure.addEventListener("brush", (event) => {
    const { a, b, final } = event.detail;
    const data = win.data;
    if (!data) return;
    const t0 = performance.now();
    urlState.set({ start: data.start + a, end: data.start + b, mark: [] }, { replace: !final });
    if (final) ensureSelection(urlState.get(), { now: true });
    measure(final ? "analysis:brush-end" : "analysis:brush", t0);
  });
  figure.addEventListener("threshold", (event) => {
    const t0 = performance.now();
    urlState.set({ threshold: event.detail.value }, { replace: !event.detail.final });
    if (event.detail.final) ensureSelection(urlState.get(), { now: true });
    measure("analysis:threshold", t0);
  });
  figure.addEventListener("offconstraint", (event) => {
    const { side, value, final } = event.detail;
    const key = side === "left" ? "zl" : "zr";
    const st = urlState.get();
    if (st[key] === value && !final) return;
    urlState.set({ [key]: value }, { replace: !final });
    if (final) ensureSelection(urlState.get(), { now: true });
  });
  figure.addEventListener("cursor", (event) => {
    cursor = event.detail;
    draw();
  });
  figure.addEventListener("togglecell", (event) => toggleCell(event.detail.cell));
  figure.addEventListener("pointerleave", () => { cursor = null; draw(); });
  $("overview").addEventListener("pan", (event) => {
    const st = urlState.get();
    const pos = Math.max(0, Math.min(info.length - st.w, event.detail.pos));
    if (pos !== st.pos || event.detail.final) urlState.set({ pos }, { replace: !event.detail.final });
  });
  figure.addEventListener("keydown", (event) => {
    const data = win.data;
    if (!data || event.target !== figure) return;
    const st = urlState.get();
    const n = data.tokens.length;
    const cells = data.cells;
    const cur = cursor || { t: 0, cell: cells[0] ?? null };
    const ci = cells.indexOf(cur.cell);
    let next = null;
    if (event.shiftKey && (event.key === "ArrowLeft" || event.key === "ArrowRight")) {
      moveBy((event.key === "ArrowLeft" ? -1 : 1) * Math.ceil(st.w / 2));
      event.preventDefault();
      return;
    }
    switch (event.key) {
      case "ArrowLeft": next = { t: Math.max(0, cur.t - 1), cell: cur.cell }; break;
      case "ArrowRight": next = { t: Math.min(n - 1, cur.t + 1), cell: cur.cell }; break;
      case "ArrowUp": next = { t: cur.t, cell: cells[Math.max(0, ci - 1)] }; break;
      case "ArrowDown": next = { t: cur.t, cell: cells[Math.min(cells.length - 1, ci + 1)] }; break;
      case "PageUp": moveBy(-st.w); event.preventDefault(); return;
      case "PageDown": moveBy(st.w); event.preventDefault(); return;
      case "Home": urlState.set({ pos: 0 }); event.preventDefault(); return;
      case "End": urlState.set({ pos: info.length - st.w }); event.preventDefault(); return;
      case "+": case "=": zoomTo(st.w / 1.5); event.preventDefault(); return;
      case "-": case "_": zoomTo(st.w * 1.5); event.preventDefault(); return;
      case "[": urlState.set({ start: data.start + cur.t, end: Math.max(data.start + cur.t, st.end ?? data.start + cur.t) }); event.preventDefault(); return;
      case "]": urlState.set({ start: Math.min(st.start ?? data.start + cur.t, data.start + cur.t), end: data.start + cur.t }); event.preventDefault(); return;
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
  let wheelIdle = 0;
  let wheelAcc = 0;
  figure.addEventListener("wheel", (event) => {
    const st = urlState.get();
    const horizontal = event.shiftKey || Math.abs(event.deltaX) > Math.abs(event.deltaY);
    if (!(event.ctrlKey || event.altKey || horizontal)) return; // plain scrolling scrolls the page
    event.preventDefault();
    const fresh = performance.now() - wheelIdle > 400;
    wheelIdle = performance.now();
    if (event.ctrlKey || event.altKey) {
      zoomTo(st.w * (event.deltaY > 0 ? 1.15 : 1 / 1.15));
      return;
    }
    const lay = layout(st, st.w);
    wheelAcc += (event.shiftKey && !event.deltaX ? event.deltaY : event.deltaX) / lay.colW;
    const step = Math.trunc(wheelAcc);
    if (!step) return;
    wheelAcc -= step;
    moveBy(step, { replace: !fresh });
  }, { passive: false });

  let pending = false;
  window.addEventListener("resize", () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; draw(); });
  });
  urlState.subscribe(() => render());
}

function showGuide() {
  const g = boot.guide;
  const el = $("guide");
  if (!g) return;
  el.hidden = false;
  el.replaceChildren(h("strong", {}, "Try it: "), g.text, " ",
    g.url ? h("a", { href: g.url }, "Back to the example") : null);
}

async function start() {
  setBusy(true);
  firstDrawStart = performance.now();
  try {
    info = boot.stateset || await get(boot.api.stateset, { key: "stateset" });
  } catch (err) {
    if (!isAbort(err)) showError(err.message);
    figure.removeAttribute("aria-busy");
    return;
  }
  $("stateset-meta").textContent =
    `${fmtInt(info.length)} tokens · ${info.sources.length} source${info.sources.length === 1 ? "" : "s"}` +
    (info.vocab_size ? ` · vocabulary of ${fmtInt(info.vocab_size)}` : "") +
    ((info.annotations || []).length ? ` · tracks: ${info.annotations.map((a) => a.name).join(", ")}` : "");
  if (!info.sources.length) {
    showError("This state set has no sources to show.");
    figure.removeAttribute("aria-busy");
    return;
  }
  if (boot.guide && boot.guide.query && !window.location.search) {
    window.history.replaceState(null, "", `${window.location.pathname}?${boot.guide.query}`);
  }
  urlState = makeState();
  urlState.normalize();
  showGuide();
  wire();
  registerAnalysis({
    getSpec: () => spec(),
    applySpec,
    stateset: () => info,
  });
  render();
}

// The hypothesis panel and its ten modules (sharing, comments, statistics, ranking,
// Markdown) are loaded after the first window is drawn, so that they are not
// fetched and compiled before it; it finds the view through analysis-state.js
// whenever it comes. A page whose first draw does not come (an error) loads it too.
let panelLoading = null;
function panelLoad() {
  if (panelLoading) return;
  panelLoading = import("../views/hypothesis-panel.js")
    .then((m) => m.mountHypothesisPanel(document.getElementById("hypothesis-panel")))
    .catch((err) => showError(`The hypothesis panel could not be loaded: ${err.message}`));
}
setTimeout(panelLoad, 2000);

void okabeIto;
start();
