// Line plot of every cell's value over the window: one line per cell on a canvas
// (hundreds of cells times hundreds of tokens is too many marks for SVG), selected
// cells drawn on top in Okabe-Ito colours, and an SVG overlay for the axis, the
// threshold and the cursor. Hit-testing is arithmetic: column from x, nearest line
// from y. Emits "cursor" ({t, cell}) and "togglecell" ({cell}) events on its root.
// Stream starts (where an extraction began a stream from the zero state) are marked
// by a dashed line at the left edge of their column and a small marker above it
// whose tooltip says so.

import d3 from "../lib/d3.js";
import { sizeCanvas } from "../core/canvas.js";
import { okabeIto } from "../core/palettes.js";

export const PLOT_HEIGHT = 240;

export function yDomain(values) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const row of values) for (const v of row) if (Number.isFinite(v)) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!Number.isFinite(lo)) return [-1, 1];
  if (lo >= -1 && hi <= 1) return [-1, 1];
  const m = Math.max(Math.abs(lo), Math.abs(hi));
  return d3.scaleLinear().domain([-m, m]).nice().domain();
}

export function createLinePlot(root) {
  root.classList.add("lineplot");
  const canvas = document.createElement("canvas");
  canvas.setAttribute("role", "img");
  const svg = d3.select(root).append("svg").attr("class", "overlay");
  root.prepend(canvas);
  const axisG = svg.append("g").attr("class", "axis");
  const zeroLine = svg.append("line").attr("class", "zero");
  const thrLine = svg.append("line").attr("class", "threshold");
  const thrLabel = svg.append("text").attr("class", "threshold-label");
  const cursorLine = svg.append("line").attr("class", "cursor");
  const hit = svg.append("rect").attr("class", "hit").attr("fill", "transparent");
  const streamG = svg.append("g").attr("class", "stream-starts");

  let last = null;

  function pick(event) {
    if (!last) return null;
    const [mx, my] = d3.pointer(event, svg.node());
    const { layout, data, y } = last;
    const t = Math.floor((mx - layout.left) / layout.colW);
    if (t < 0 || t >= layout.n) return null;
    let best = -1;
    let bestD = Infinity;
    data.values.forEach((row, i) => {
      const d = Math.abs(y(row[t]) - my);
      if (d < bestD) { bestD = d; best = i; }
    });
    return { t, cell: best >= 0 ? data.cells[best] : null, near: bestD <= 6 };
  }

  hit.on("pointermove", (event) => {
    const p = pick(event);
    if (p) root.dispatchEvent(new CustomEvent("cursor", { bubbles: true, detail: p }));
  });
  hit.on("click", (event) => {
    const p = pick(event);
    if (p && p.near && p.cell !== null) {
      root.dispatchEvent(new CustomEvent("togglecell", { bubbles: true, detail: { cell: p.cell } }));
    }
  });

  return {
    /**
     * data: context answer; state: {threshold, cells (selected)}; layout: {left, width, n, colW};
     * cursor: {t, cell}; streamStarts: positions where a stream starts from the zero state.
     */
    update(data, state, layout, cursor, streamStarts = []) {
      const height = PLOT_HEIGHT;
      const fullW = layout.left + layout.width + 8;
      const y = d3.scaleLinear().domain(yDomain(data.values)).range([height - 8, 8]);
      last = { layout, data, y };
      const ctx = sizeCanvas(canvas, fullW, height);
      svg.attr("width", fullW).attr("height", height);
      const xAt = (i) => layout.left + (i + 0.5) * layout.colW;

      ctx.clearRect(0, 0, fullW, height);
      ctx.lineJoin = "round";
      const selected = new Set(state.cells);
      const cursorCell = cursor ? cursor.cell : null;
      const line = (row) => {
        ctx.beginPath();
        let pen = false;
        for (let i = 0; i < row.length; i++) {
          const v = row[i];
          if (!Number.isFinite(v)) { pen = false; continue; }
          if (pen) ctx.lineTo(xAt(i), y(v)); else ctx.moveTo(xAt(i), y(v));
          pen = true;
        }
        ctx.stroke();
      };
      ctx.strokeStyle = "rgba(80, 92, 110, 0.28)";
      ctx.lineWidth = 1;
      data.values.forEach((row, i) => { if (!selected.has(data.cells[i])) line(row); });
      ctx.lineWidth = 2.25;
      state.cells.forEach((cell, k) => {
        const i = data.cells.indexOf(cell);
        if (i < 0) return;
        ctx.strokeStyle = okabeIto[k % okabeIto.length];
        line(data.values[i]);
      });
      if (cursorCell !== null && cursorCell !== undefined) {
        const i = data.cells.indexOf(cursorCell);
        if (i >= 0) {
          ctx.strokeStyle = "#111";
          ctx.lineWidth = 1.5;
          ctx.setLineDash([4, 2]);
          line(data.values[i]);
          ctx.setLineDash([]);
        }
      }

      axisG.attr("transform", `translate(${layout.left - 4},0)`).call(d3.axisLeft(y).ticks(5));
      const x0 = layout.left;
      const x1 = layout.left + layout.width;
      const [d0, d1] = y.domain();
      zeroLine.attr("x1", x0).attr("x2", x1).attr("y1", y(0)).attr("y2", y(0))
        .attr("visibility", d0 < 0 && d1 > 0 ? "visible" : "hidden");
      const thrVisible = state.threshold >= d0 && state.threshold <= d1;
      thrLine.attr("x1", x0).attr("x2", x1).attr("y1", y(state.threshold)).attr("y2", y(state.threshold))
        .attr("visibility", thrVisible ? "visible" : "hidden");
      thrLabel.attr("x", x1 - 2).attr("y", y(state.threshold) - 4).attr("text-anchor", "end")
        .text(`threshold ${state.threshold}`).attr("visibility", thrVisible ? "visible" : "hidden");
      if (cursor && cursor.t !== null && cursor.t !== undefined) {
        cursorLine.attr("x1", xAt(cursor.t)).attr("x2", xAt(cursor.t)).attr("y1", 0).attr("y2", height)
          .attr("visibility", "visible");
      } else {
        cursorLine.attr("visibility", "hidden");
      }
      hit.attr("x", x0).attr("y", 0).attr("width", layout.width).attr("height", height);
      const starts = streamStarts.filter((p) => p >= data.start && p <= data.end);
      const xStart = (p) => layout.left + (p - data.start) * layout.colW;
      const marks = streamG.selectAll("g.stream-mark").data(starts, (p) => p).join((enter) => {
        const g = enter.append("g").attr("class", "stream-mark");
        g.append("line").attr("class", "stream-start");
        g.append("path").attr("class", "stream-start-marker").attr("d", "M-5,0 L5,0 L0,7 Z")
          .append("title");
        return g;
      });
      marks.attr("data-pos", (p) => p);
      marks.select("line").attr("x1", xStart).attr("x2", xStart).attr("y1", 0).attr("y2", height);
      marks.select("path").attr("transform", (p) => `translate(${xStart(p)},0)`)
        .attr("aria-label", (p) => `stream start at ${p}`)
        .select("title").text((p) => `stream start at position ${p}: state is zero here`);

      canvas.setAttribute("aria-label",
        `Line plot of ${data.cells.length} cells over tokens ${data.start} to ${data.end}; ` +
        `${state.cells.length} selected; threshold ${state.threshold}`);
      root.dataset.ready = "true";
    },
    destroy() { root.replaceChildren(); },
  };
}
