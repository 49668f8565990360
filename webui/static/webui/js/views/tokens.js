// The token strip under the plot: one box per position, aligned with the plot's
// columns. Labels stay upright while they fit (the font steps down from 12 to 9 px
// first); only when they cannot fit are they turned vertical, and when even that
// is too tight only every k-th label is written (each box keeps its tooltip).
// Tokens are shaded by how many selected cells are on (value >= threshold) and
// the hypothesis range is outlined. Dragging over the strip sets the range (the
// same "brush" event as the plot). The boxes are built once per window; a change
// of selection or threshold only restyles them.

import { h, showToken } from "../core/format.js";
import { sequential } from "../core/palettes.js";
import { attachColumnDrag } from "../core/drag.js";

export function countOn(data, cells, threshold) {
  const n = data.tokens.length;
  const counts = new Array(n).fill(0);
  const rowOf = new Map(data.cells.map((c, i) => [c, i]));
  for (const cell of cells) {
    const i = rowOf.get(cell);
    if (i === undefined) continue;
    const row = data.values[i];
    for (let t = 0; t < n; t++) if (row[t] >= threshold) counts[t] += 1;
  }
  return counts;
}

/** Shade of a token with `on` of `k` selected cells on (null: unshaded). */
export function countShade(on, k) {
  if (!k || !on) return null;
  const f = on / k;
  return { background: sequential(0.3 + 0.7 * f), color: f > 0.55 ? "#111" : "#fff" };
}

let measureCtx = null;
function textWidth(text, px) {
  measureCtx = measureCtx || document.createElement("canvas").getContext("2d");
  measureCtx.font = `${px}px ui-monospace, "SFMono-Regular", Menlo, Consolas, "Liberation Mono", monospace`;
  return measureCtx.measureText(text).width;
}

/** How labels fit columns of `colW` px: {mode: "upright"|"vertical", size, every}. */
export function labelFit(labels, colW) {
  let longest = "";
  for (const s of labels) if (s.length > longest.length) longest = s;
  for (const size of [12, 11, 10, 9]) {
    if (textWidth(longest, size) <= colW - 2) return { mode: "upright", size, every: 1 };
  }
  if (colW >= 12) return { mode: "vertical", size: 11, every: 1 };
  return { mode: "vertical", size: 10, every: Math.ceil(12 / Math.max(colW, 0.5)) };
}

export function createTokenStrip(root) {
  root.classList.add("tokens");
  let built = null; // {data, colW, items, strip}
  let last = null;

  const drag = attachColumnDrag(root, {
    geometry: () => (last ? { left: last.layout.left, colW: last.layout.colW, n: last.layout.n } : null),
    range: () => (last && last.p.range ? last.p.range : null),
    onRange: (a, b, final) => root.dispatchEvent(new CustomEvent("brush", { bubbles: true, detail: { a, b, final } })),
    onClick: null,
  });
  root.addEventListener("pointermove", (event) => {
    if (!last || drag.dragging) return;
    root.style.cursor = drag.cursorAt(event) || "";
    const li = event.target.closest?.("li.token");
    if (!li) return;
    const t = Number(li.dataset.pos) - last.p.data.start;
    root.dispatchEvent(new CustomEvent("cursor", {
      bubbles: true, detail: { t, cell: last.p.cursor ? last.p.cursor.cell : null, clientX: event.clientX, clientY: event.clientY },
    }));
  });

  function build(data, layout, streamStarts) {
    const labels = data.tokens.map(showToken);
    const fit = labelFit(labels, layout.colW);
    const starts = new Set(streamStarts);
    const strip = h("ol", {
      class: `token-strip${fit.mode === "vertical" ? " vertical" : ""}`,
      style: `margin-left: ${layout.left}px; width: ${layout.width}px; font-size: ${fit.size}px`,
      "aria-label": `Tokens ${data.start} to ${data.end}`,
    });
    const items = data.tokens.map((tok, i) => {
      const pos = data.start + i;
      const shown = i % fit.every === 0;
      const li = h("li", {
        class: `token${starts.has(pos) ? " is-stream-start" : ""}`,
        style: `width: ${layout.colW}px`,
        "data-pos": String(pos),
        "data-token": tok,
      }, h("span", shown ? {} : { class: "thinned" }, labels[i]));
      strip.append(li);
      return li;
    });
    root.replaceChildren(strip);
    built = { data, colW: layout.colW, width: layout.width, items, strip, starts };
  }

  return {
    /**
     * p: {data, layout, selected [cells], threshold, cursor {t}, range {a, b} | null,
     *     hits: Set of window columns inside a search hit, streamStarts}
     */
    update(p) {
      const { data, layout } = p;
      last = { layout, p };
      if (!built || built.data !== data || built.colW !== layout.colW || built.width !== layout.width) {
        build(data, layout, p.streamStarts || []);
      }
      const counts = countOn(data, p.selected, p.threshold);
      const k = p.selected.length;
      const r = p.range;
      built.items.forEach((li, i) => {
        const on = counts[i];
        const shade = countShade(on, k);
        li.style.background = shade ? shade.background : "";
        li.style.color = shade ? shade.color : "";
        li.dataset.on = String(on);
        const inRange = r && i >= r.a && i <= r.b;
        li.className = "token" +
          (built.starts.has(data.start + i) ? " is-stream-start" : "") +
          (shade ? " is-on" : "") +
          (p.cursor && p.cursor.t === i ? " is-cursor" : "") +
          (inRange ? " in-range" : "") +
          (inRange && i === r.a ? " range-first" : "") +
          (inRange && i === r.b ? " range-last" : "") +
          (p.hits && p.hits.has(i) ? " is-hit" : "");
        li.title = `${data.start + i}: ${JSON.stringify(data.tokens[i])}` +
          (k ? ` · ${on} of ${k} selected cells on` : "") +
          (built.starts.has(data.start + i) ? " · stream start: state is zero here" : "");
      });
      root.dataset.ready = "true";
    },
    destroy() { root.replaceChildren(); built = null; },
  };
}
