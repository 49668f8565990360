// The match table: one row per hit, its tokens aligned at the match start with
// the context before and after it; beside it, small heatmaps (one pixel column
// group per token) of the selected cells that are on and of each annotation
// track; a header button per heatmap paints that quantity onto the row's tokens.
// A row is a button: clicking it (or Enter) emits "openhit" {position, length}.
// Emits "paint" {name} when a "Paint tokens by" button is pressed.

import { sizeCanvas } from "../core/canvas.js";
import { fmtInt, h, showToken } from "../core/format.js";
import { sequential } from "../core/palettes.js";
import { countShade } from "./tokens.js";
import { labelColour } from "./tracks.js";

const PX = 4; // heatmap pixels per token
const SHOW_HEAD = 24; // tokens shown of a long hit: its first ...
const SHOW_TAIL = 6; // ... and its last

/** What a quantity looks like on one token: {background, color} or null. */
export function paintOf(column, value, m) {
  if (column.kind === "count") return countShade(value, m);
  if (value === null || value === undefined) return null;
  if (column.kind === "discrete") {
    const c = labelColour(column, value);
    return c ? { background: c, color: c === "#000000" || c === "#0072B2" ? "#fff" : "#111" } : null;
  }
  if (column.kind === "wordvec") {
    const w = Math.max(0, Math.min(1, Number(value && value.weight) || 0));
    return { background: `rgba(0, 114, 178, ${0.08 + 0.82 * w})`, color: w > 0.5 ? "#fff" : "#111" };
  }
  if (!Number.isFinite(value)) return null;
  const [lo, hi] = column.range;
  const f = hi > lo ? Math.max(0, Math.min(1, (value - lo) / (hi - lo))) : 0;
  return { background: sequential(0.15 + 0.85 * f), color: f > 0.55 ? "#111" : "#fff" };
}

/** The heatmap columns of a page: "cells on" first, then each annotation track. */
export function matchColumns(tracks, hits) {
  const cols = [{ name: "cells on", key: "count", kind: "count" }];
  for (const tr of tracks) {
    if (!hits.some((hh) => hh.annotations && tr.name in hh.annotations)) continue;
    let range = tr.range;
    if (tr.kind === "scalar" && !(range && range.length === 2 && range[1] > range[0])) {
      let lo = Infinity;
      let hi = -Infinity;
      for (const hh of hits) for (const v of hh.annotations[tr.name] || []) if (Number.isFinite(v)) {
        lo = Math.min(lo, v); hi = Math.max(hi, v);
      }
      range = Number.isFinite(lo) && hi > lo ? [lo, hi] : [0, 1];
    }
    cols.push({ name: tr.name, key: tr.name, kind: tr.kind, labels: tr.labels, range });
  }
  return cols;
}

function valueOf(hit, column, i) {
  return column.kind === "count" ? hit.cell_count[i] : (hit.annotations[column.key] || [])[i];
}

function describe(column, v) {
  if (v === null || v === undefined) return "–";
  if (column.kind === "wordvec") return `${JSON.stringify(v.token)} ${(Number(v.weight) * 100).toFixed(0)}%`;
  if (typeof v === "number") return String(+v.toFixed(3));
  return String(v);
}

const STRIP = 5; // heatmap strip height, px
const GAP = 1;

/** One canvas per hit: a strip per column (cells on, then each track), tokens
 * left to right with the match start at the same x in every row. */
function miniHeatmaps(hit, columns, m, left, slots) {
  const canvas = document.createElement("canvas");
  const height = columns.length * (STRIP + GAP) - GAP;
  const ctx = sizeCanvas(canvas, slots * PX, height);
  const pad = left - (hit.position - hit.start); // empty slots so that the match starts aligned
  columns.forEach((column, r) => {
    const y = r * (STRIP + GAP);
    ctx.fillStyle = "#eef1f5";
    ctx.fillRect(0, y, slots * PX, STRIP);
    for (let i = 0; i < hit.tokens.length; i++) {
      const slot = pad + i;
      if (slot >= slots) break;
      const paint = paintOf(column, valueOf(hit, column, i), m);
      if (!paint) continue;
      ctx.fillStyle = paint.background;
      ctx.fillRect(slot * PX, y, PX, STRIP);
    }
  });
  ctx.strokeStyle = "#1c2430";
  ctx.lineWidth = 1;
  const x0 = left * PX + 0.5;
  const x1 = Math.min(slots, left + hit.length) * PX - 0.5;
  ctx.strokeRect(x0, 0.5, Math.max(1, x1 - x0), height - 1);
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", `${columns.map((c) => c.name).join(", ")} over the hit at ${hit.position}`);
  canvas.className = "mini-heatmap";
  return canvas;
}

/** What the painted colours mean: a few sample boxes. */
function paintLegend(column, m) {
  let samples;
  if (column.kind === "count") samples = [0, Math.ceil(m / 2), m].filter((v, i, a) => a.indexOf(v) === i).map((v) => [v, v]);
  else if (column.kind === "discrete") samples = (column.labels || []).filter((l) => l !== "").slice(0, 8).map((l) => [l, l]);
  else if (column.kind === "wordvec") samples = [[{ weight: 0.1 }, "10%"], [{ weight: 0.5 }, "50%"], [{ weight: 0.9 }, "90%"]];
  else {
    const [lo, hi] = column.range;
    samples = [lo, (lo + hi) / 2, hi].map((v) => [v, String(+v.toFixed(2))]);
  }
  return h("span", { class: "paint-legend", "aria-label": `${column.name} colours` },
    h("span", { class: "muted" }, column.kind === "wordvec" ? "top prediction's probability:" : `${column.name}:`),
    samples.map(([v, text]) => {
      const paint = paintOf(column, v, m);
      return h("span", {
        class: "count-box",
        style: paint ? `background: ${paint.background}; color: ${paint.color}` : undefined,
      }, text);
    }));
}

export function createMatchTable(root) {
  return {
    /**
     * p: {page (GET /api/matches/{id}/ answer), tracks, m (selected cells), paint (column key),
     *     charTokens (bool), current (position of the hit shown in the selection view)}
     */
    update(p) {
      const { page } = p;
      const hits = page.hits || [];
      const columns = matchColumns(p.tracks, hits);
      const paintCol = columns.find((c) => c.key === p.paint) || null;
      const left = page.left;
      const maxLen = hits.reduce((a, hh) => Math.max(a, hh.length), 1);
      const slots = Math.min(56, left + maxLen + page.right);
      const leftW = p.charTokens ? `calc(${left} * (1ch + 1px))` : "16em";

      const head = h("tr", {},
        h("th", { scope: "col", class: "num" }, "#"),
        h("th", { scope: "col", class: "num" }, "Position"),
        h("th", { scope: "col", class: "num" }, "Length"),
        h("th", { scope: "col", class: "num", title: "selected cells on throughout the hit (of all selected), and the Jaccard index" }, "Cells"),
        h("th", { scope: "col", class: "ctx-head" }, h("span", { class: "ctx-left-head", style: `width: ${leftW}` }, "before"), h("span", {}, "▸ match")),
        h("th", { scope: "col", class: "heat-head" }, "Heatmaps", h("span", { class: "muted small" },
          ` (${columns.map((c) => c.name).join(" / ")})`)));

      const rows = hits.map((hit, k) => {
        const rel = hit.position - hit.start;
        const spans = hit.tokens.map((tok, i) => {
          const paint = paintCol ? paintOf(paintCol, valueOf(hit, paintCol, i), p.m) : null;
          const inHit = i >= rel && i < rel + hit.length;
          return h("span", {
            class: `tok${inHit ? " in-hit" : ""}`,
            style: paint ? `background: ${paint.background}; color: ${paint.color}` : undefined,
            title: `${hit.start + i}: ${JSON.stringify(tok)}` +
              columns.map((c) => ` · ${c.name} ${describe(c, valueOf(hit, c, i))}`).join(""),
          }, showToken(tok));
        });
        const before = spans.slice(0, rel);
        let match = spans.slice(rel, rel + hit.length);
        if (match.length > SHOW_HEAD + SHOW_TAIL + 4) {
          // A long hit shows its start and its end; the middle is counted.
          const cut = match.length - SHOW_HEAD - SHOW_TAIL;
          match = [...match.slice(0, SHOW_HEAD),
            h("span", { class: "tok-gap", title: `${cut} tokens not shown` }, `…${fmtInt(cut)}…`),
            ...match.slice(-SHOW_TAIL)];
        }
        const after = spans.slice(rel + hit.length);
        const open = () => root.dispatchEvent(new CustomEvent("openhit", {
          bubbles: true, detail: { position: hit.position, length: hit.length },
        }));
        return h("tr", {
          class: `hit-row${p.current === hit.position ? " is-current" : ""}`,
          tabindex: "0",
          "data-position": String(hit.position),
          "data-length": String(hit.length),
          "aria-label": `Hit ${page.offset + k + 1} at position ${hit.position}, length ${hit.length}; open in the view`,
          onclick: open,
          onkeydown: (event) => { if (event.key === "Enter") { event.preventDefault(); open(); } },
        },
        h("td", { class: "num" }, String(page.offset + k + 1)),
        h("td", { class: "num" }, fmtInt(hit.position)),
        h("td", { class: "num" }, String(hit.length)),
        h("td", { class: "num" }, `${hit.intersection}/${p.m}`, h("span", { class: "muted small" }, ` · ${hit.jaccard.toFixed(2)}`)),
        h("td", { class: "ctx" },
          h("span", { class: "ctx-left", style: `width: ${leftW}` }, before),
          h("span", { class: "ctx-match" }, match),
          h("span", { class: "ctx-right" }, after),
          hit.clipped ? h("span", { class: "muted small" }, " …") : null),
        h("td", { class: "heat" }, miniHeatmaps(hit, columns, p.m, left, slots)));
      });

      const tableEl = h("table", { class: "table match-table", "aria-label": "Matches" },
        h("thead", {}, head),
        h("tbody", {}, rows));
      const paintBar = h("div", { class: "paint-bar", role: "group", "aria-label": "Paint the tokens by" },
        h("span", { class: "muted" }, "Paint tokens by:"),
        [{ name: "nothing", key: "none" }, ...columns].map((c) => {
          const on = c.key === "none" ? !paintCol : Boolean(paintCol && paintCol.key === c.key);
          return h("button", {
            type: "button", class: `btn btn-small paint-btn${on ? " is-on" : ""}`, "aria-pressed": String(on),
            onclick: () => root.dispatchEvent(new CustomEvent("paint", { bubbles: true, detail: { name: c.key } })),
          }, c.name);
        }));
      if (paintCol) paintBar.append(paintLegend(paintCol, p.m));
      root.replaceChildren(paintBar, tableEl);
    },
  };
}
