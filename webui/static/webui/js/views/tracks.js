// Annotation tracks under the tokens, one row per track of the state set, drawn
// on one canvas aligned with the plot's columns:
//   - discrete: a coloured box per token (Okabe-Ito by label; a legend below);
//   - scalar (depth, surprisal, frequencies): a band whose height is the value
//     within the track's range;
//   - wordvec (top-k predictions): the k predicted tokens stacked, each box shaded
//     by its probability, the token written where it fits.
// Each track's name is written above its row. Hovering emits "cursor" {t}.

import { sizeCanvas } from "../core/canvas.js";
import { h, showToken } from "../core/format.js";
import { okabeIto } from "../core/palettes.js";

const CAPTION = 13;
const MONO = 'ui-monospace, "SFMono-Regular", Menlo, Consolas, "Liberation Mono", monospace';

export function labelColour(track, value) {
  if (value === null || value === undefined || value === "") return null;
  const labels = track.labels || [];
  let i = typeof value === "number" ? value : labels.indexOf(String(value));
  if (i < 0) i = [...String(value)].reduce((s, ch) => (s * 31 + ch.charCodeAt(0)) >>> 0, 7);
  return okabeIto[i % okabeIto.length];
}

function scalarRange(track, values) {
  if (track.range && track.range.length === 2 && track.range[1] > track.range[0]) return track.range;
  let lo = 0;
  let hi = 0;
  for (const v of values) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  return hi > lo ? [lo, hi] : [lo, lo + 1];
}

function rowsOf(track, values) {
  if (track.kind === "wordvec") {
    let k = track.k || 0;
    for (const v of values) if (Array.isArray(v)) k = Math.max(k, v.length);
    return Math.max(1, Math.min(5, k || 3));
  }
  return 1;
}

function bodyHeight(track, values) {
  if (track.kind === "discrete") return 14;
  if (track.kind === "wordvec") return rowsOf(track, values) * 13;
  return 22;
}

export function createTracks(root) {
  root.classList.add("tracks");
  const canvas = document.createElement("canvas");
  canvas.setAttribute("role", "img");
  const legend = h("div", { class: "track-legend" });
  root.append(canvas, legend);
  let last = null;
  let drawnKey = null;

  canvas.addEventListener("pointermove", (event) => {
    if (!last) return;
    const x = event.clientX - canvas.getBoundingClientRect().left;
    const t = Math.floor((x - last.layout.left) / last.layout.colW);
    if (t < 0 || t >= last.layout.n) return;
    root.dispatchEvent(new CustomEvent("cursor", {
      bubbles: true, detail: { t, cell: last.cursorCell, clientX: event.clientX, clientY: event.clientY },
    }));
  });

  return {
    /** p: {data (context answer), tracks (the state set's annotations), layout, cursor} */
    update(p) {
      const { data, layout } = p;
      const tracks = (p.tracks || []).filter((tr) => data.annotations && data.annotations[tr.name]);
      last = { layout, cursorCell: p.cursor ? p.cursor.cell : null };
      root.hidden = tracks.length === 0;
      if (!tracks.length) { root.dataset.ready = "true"; return; }
      const key = `${layout.width}|${layout.colW}|${p.cursor ? p.cursor.t : ""}`;
      if (drawnKey && drawnKey.data === data && drawnKey.key === key) return;
      drawnKey = { data, key };
      const fullW = layout.left + layout.width + 8;
      const heights = tracks.map((tr) => CAPTION + bodyHeight(tr, data.annotations[tr.name]) + 4);
      const total = heights.reduce((a, b) => a + b, 0);
      const ctx = sizeCanvas(canvas, fullW, total);
      ctx.clearRect(0, 0, fullW, total);
      const cw = layout.colW;
      const n = layout.n;
      let y = 0;
      const legends = [];
      tracks.forEach((tr, k) => {
        const values = data.annotations[tr.name];
        ctx.fillStyle = "#5d6877";
        ctx.font = "600 10px system-ui, sans-serif";
        ctx.textBaseline = "alphabetic";
        const kind = tr.kind === "wordvec" ? "top predictions" : tr.kind;
        ctx.fillText(`${tr.name} · ${kind}`, layout.left, y + 10);
        const top = y + CAPTION;
        const bh = bodyHeight(tr, values);
        ctx.fillStyle = "#f3f5f8";
        ctx.fillRect(layout.left, top, n * cw, bh);
        if (tr.kind === "discrete") {
          const seen = new Map();
          for (let i = 0; i < n; i++) {
            const colour = labelColour(tr, values[i]);
            if (!colour) continue;
            seen.set(String(values[i]), colour);
            ctx.fillStyle = colour;
            ctx.fillRect(layout.left + i * cw, top, Math.max(1, cw - (cw > 4 ? 1 : 0)), bh);
          }
          const labels = tr.labels && tr.labels.length ? tr.labels.filter((l) => l !== "") : [...seen.keys()];
          legends.push(h("div", { class: "track-key", "data-track": tr.name },
            h("span", { class: "track-key-name" }, `${tr.name}:`),
            labels.slice(0, 24).map((l) => h("span", { class: "track-key-item" },
              h("span", { class: "swatch", style: `background: ${labelColour(tr, l)}`, "aria-hidden": "true" }), l))));
        } else if (tr.kind === "wordvec") {
          const rows = rowsOf(tr, values);
          ctx.font = `10px ${MONO}`;
          ctx.textBaseline = "middle";
          ctx.textAlign = "center";
          for (let i = 0; i < n; i++) {
            const entries = Array.isArray(values[i]) ? values[i] : [];
            for (let j = 0; j < Math.min(rows, entries.length); j++) {
              const e = entries[j] || {};
              const w = Math.max(0, Math.min(1, Number(e.weight) || 0));
              const x = layout.left + i * cw;
              const yy = top + j * 13;
              ctx.fillStyle = `rgba(0, 114, 178, ${0.08 + 0.82 * w})`;
              ctx.fillRect(x, yy, Math.max(1, cw - (cw > 4 ? 1 : 0)), 12);
              const label = showToken(String(e.token ?? ""));
              if (cw >= 7 && ctx.measureText(label).width <= cw - 1) {
                ctx.fillStyle = w > 0.5 ? "#fff" : "#1c2430";
                ctx.fillText(label, x + cw / 2, yy + 6.5);
              }
            }
          }
          ctx.textAlign = "start";
          legends.push(h("div", { class: "track-key", "data-track": tr.name },
            h("span", { class: "track-key-name" }, `${tr.name}:`),
            h("span", { class: "track-key-item" }, h("span", { class: "swatch ramp-blue", "aria-hidden": "true" }),
              `top ${rows} predictions, darker = more probable`)));
        } else {
          const [lo, hi] = scalarRange(tr, values);
          ctx.fillStyle = k % 2 ? "#CC79A7" : "#0072B2";
          for (let i = 0; i < n; i++) {
            const v = values[i];
            if (!Number.isFinite(v)) continue;
            const f = Math.max(0, Math.min(1, (v - lo) / (hi - lo)));
            const hh = Math.max(f > 0 ? 1 : 0, f * bh);
            ctx.fillRect(layout.left + i * cw, top + bh - hh, Math.max(1, cw - (cw > 4 ? 1 : 0)), hh);
          }
          ctx.fillStyle = "#5d6877";
          ctx.font = "9px system-ui, sans-serif";
          ctx.textAlign = "end";
          ctx.fillText(String(+hi.toFixed(2)), layout.left - 4, top + 8);
          ctx.fillText(String(+lo.toFixed(2)), layout.left - 4, top + bh);
          ctx.textAlign = "start";
        }
        if (p.cursor && p.cursor.t !== null && p.cursor.t !== undefined && p.cursor.t < n) {
          ctx.strokeStyle = "rgba(28, 36, 48, 0.7)";
          ctx.lineWidth = 1;
          ctx.strokeRect(layout.left + p.cursor.t * cw + 0.5, top + 0.5, Math.max(1, cw - 1), bh - 1);
        }
        y += heights[k];
      });
      legend.replaceChildren(...legends);
      canvas.setAttribute("aria-label",
        `Annotation tracks over tokens ${data.start} to ${data.end}: ` +
        tracks.map((tr) => `${tr.name} (${tr.kind})`).join(", "));
      root.dataset.ready = "true";
    },
    destroy() { root.replaceChildren(); },
  };
}
