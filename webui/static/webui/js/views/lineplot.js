// Line plot of every cell's value over the window, on a canvas (hundreds of cells
// times hundreds of tokens is too many marks for SVG). The grey lines of all cells
// are drawn once per window into an offscreen canvas; a change of the selection,
// the threshold or the cursor only copies that image and draws the highlighted
// lines on top, which keeps those redraws to a few milliseconds for 650 cells.
// For many values the grey lines are rasterised by hand (rasterLines).
//
// An SVG overlay carries the axis, the hypothesis range (with its off-constraint
// positions hatched before and after it), a marked match, the cursor, stream starts
// and the threshold line, whose handle on the y axis can be dragged (or moved with
// the arrow keys). Dragging over the plot sets the range; pressing near an edge of
// the range moves that edge; a click near a line toggles that cell.
//
// Events on the root (bubbling): "cursor" {t, cell}, "togglecell" {cell},
// "brush" {a, b, final} in window columns, "threshold" {value, final}.

import d3 from "../lib/d3.js";
import { sizeCanvas } from "../core/canvas.js";
import { attachColumnDrag } from "../core/drag.js";

export const PLOT_HEIGHT = 240;
const MAX_OFF = 50; // as the page's Off before / Off after inputs

/** The y range a source is drawn on: 0..1 for gates and unsigned sources, -1..1
 * for the rest, widened (symmetrically, nicely rounded) when values lie outside. */
export function sourceDomain(source, values) {
  const unit = source && (source.unsigned || String(source.kind || "").startsWith("gate_")
    && source.kind !== "gate_g" && source.kind !== "gate_n");
  let lo = Infinity;
  let hi = -Infinity;
  for (let r = 0; r < values.length; r++) {
    const row = values[r];
    for (let i = 0; i < row.length; i++) {
      const v = row[i];
      if (v === null) continue; // NaN in a JSON window; NaN itself compares false
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (unit && (!Number.isFinite(lo) || (lo >= 0 && hi <= 1))) return [0, 1];
  if (!Number.isFinite(lo) || (lo >= -1 && hi <= 1)) return unit && lo >= 0 ? [0, 1] : [-1, 1];
  if (lo >= 0) return d3.scaleLinear().domain([0, hi]).nice().domain();
  const m = Math.max(Math.abs(lo), Math.abs(hi));
  return d3.scaleLinear().domain([-m, m]).nice().domain();
}

/** Kept for callers that only have values: the symmetric domain. */
export function yDomain(values) {
  return sourceDomain(null, values);
}

const GREY = "rgba(80, 92, 110, 0.26)";
const RASTER_ABOVE = 20_000; // values; above this the grey lines are rasterised by hand

/**
 * Many lines at once, faster than the canvas' antialiased strokes: every segment
 * is walked pixel by pixel into a count per pixel (no antialiasing), and a pixel
 * crossed by c lines gets the opacity of c overlaid grey lines, so dense bundles
 * read darker, as with alpha-blended strokes. 650 cells x 200 tokens: ~8 ms
 * instead of ~35 ms for strokes in headless Chromium.
 */
function rasterLines(ctx, rows, x0, dx, y0, dy, width, height) {
  // x of column i is x0 + i * dx, y of value v is y0 + dy * v (device pixels).
  const counts = new Uint16Array(width * height);
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r];
    let pen = false;
    let px = 0;
    let py = 0;
    for (let i = 0; i < row.length; i++) {
      const v = row[i];
      if (v === null || !Number.isFinite(v)) { pen = false; continue; }
      const x = x0 + i * dx;
      const y = y0 + dy * v;
      if (pen) {
        const ex = x - px;
        const ey = y - py;
        const ax = ex < 0 ? -ex : ex;
        const ay = ey < 0 ? -ey : ey;
        const n = Math.max(1, Math.ceil(ax > ay ? ax : ay));
        const sx = ex / n;
        const sy = ey / n;
        for (let k = 0; k < n; k++) {
          const xi = (px + sx * k) | 0;
          const yi = (py + sy * k) | 0;
          if (xi >= 0 && xi < width && yi >= 0 && yi < height) counts[yi * width + xi] += 1;
        }
      }
      pen = true;
      px = x;
      py = y;
    }
  }
  const alpha = new Uint8ClampedArray(256);
  for (let c = 0; c < 256; c++) alpha[c] = Math.round(255 * (1 - (1 - 0.26) ** c));
  const img = ctx.createImageData(width, height);
  const d = img.data;
  for (let p = 0; p < counts.length; p++) {
    const c = counts[p];
    if (!c) continue;
    const o = p * 4;
    d[o] = 80; d[o + 1] = 92; d[o + 2] = 110; d[o + 3] = alpha[c > 255 ? 255 : c];
  }
  ctx.putImageData(img, 0, 0);
}

export function createLinePlot(root, { height = PLOT_HEIGHT, name = "Line plot" } = {}) {
  root.classList.add("lineplot");
  const canvas = document.createElement("canvas");
  canvas.setAttribute("role", "img");
  root.prepend(canvas);
  const bg = document.createElement("canvas");
  const svg = d3.select(root).append("svg").attr("class", "overlay");
  const rangeG = svg.append("g").attr("class", "range-layer");
  const markRect = svg.append("rect").attr("class", "mark").attr("visibility", "hidden");
  const axisG = svg.append("g").attr("class", "axis");
  const zeroLine = svg.append("line").attr("class", "zero");
  const cursorLine = svg.append("line").attr("class", "cursor");
  const streamG = svg.append("g").attr("class", "stream-starts");
  const hit = svg.append("rect").attr("class", "hit").attr("fill", "transparent");
  const thrG = svg.append("g").attr("class", "threshold-handle");
  const thrLine = thrG.append("line").attr("class", "threshold");
  const thrGrab = thrG.append("line").attr("class", "threshold-grab");
  const thrLabel = thrG.append("text").attr("class", "threshold-label");
  const thrKnob = thrG.append("path").attr("class", "threshold-knob")
    .attr("d", "M-9,-6 L0,0 L-9,6 Z")
    .attr("tabindex", 0).attr("role", "slider").attr("aria-label", "Threshold handle")
    .attr("aria-orientation", "vertical");

  // The off-constraints: a handle at the outer edge of each off zone (at the range's
  // edge while it is 0), dragged along the tokens or moved with the arrow keys.
  const offG = svg.append("g").attr("class", "off-handles");

  let last = null;
  let bgKey = null;

  const emit = (type, detail) => root.dispatchEvent(new CustomEvent(type, { bubbles: true, detail }));

  function nearestCell(t, my) {
    const { data, y } = last;
    let best = -1;
    let bestD = Infinity;
    const rows = data.values;
    for (let i = 0; i < rows.length; i++) {
      const v = rows[i][t];
      if (!Number.isFinite(v)) continue;
      const d = Math.abs(y(v) - my);
      if (d < bestD) { bestD = d; best = i; }
    }
    return { cell: best >= 0 ? data.cells[best] : null, near: bestD <= 6 };
  }

  function pick(event) {
    if (!last) return null;
    const [mx, my] = d3.pointer(event, svg.node());
    const { layout } = last;
    const t = Math.floor((mx - layout.left) / layout.colW);
    if (t < 0 || t >= layout.n) return null;
    return { t, ...nearestCell(t, my), x: mx, y: my };
  }

  const drag = attachColumnDrag(svg.node(), {
    geometry: () => (last ? { left: last.layout.left, colW: last.layout.colW, n: last.layout.n } : null),
    range: () => (last && last.p.range ? last.p.range : null),
    enabled: (event) => !thrG.node().contains(event.target) && !streamG.node().contains(event.target)
      && !offG.node().contains(event.target)
      && last && d3.pointer(event, svg.node())[0] >= last.layout.left,
    onRange: (a, b, final) => emit("brush", { a, b, final }),
    onClick: (event) => {
      const p = pick(event);
      if (p && p.near && p.cell !== null) emit("togglecell", { cell: p.cell });
    },
  });

  svg.on("pointermove", (event) => {
    if (drag.dragging) return;
    hit.style("cursor", drag.cursorAt(event) || null);
    const p = pick(event);
    if (p) emit("cursor", { t: p.t, cell: p.cell, clientX: event.clientX, clientY: event.clientY, source: name });
  });

  // The threshold: drag the line or its knob, or use the keys on the knob.
  let thrDrag = null;
  const valueAt = (event) => {
    const [, my] = d3.pointer(event, svg.node());
    const [d0, d1] = last.y.domain();
    const v = Math.max(Math.min(d0, d1), Math.min(Math.max(d0, d1), last.y.invert(my)));
    return Math.round(v * 100) / 100;
  };
  thrG.on("pointerdown", (event) => {
    if (!last || event.button !== 0) return;
    thrDrag = event.pointerId;
    thrG.node().setPointerCapture?.(event.pointerId);
    event.preventDefault();
    event.stopPropagation();
  });
  thrG.on("pointermove", (event) => {
    if (thrDrag !== event.pointerId) return;
    emit("threshold", { value: valueAt(event), final: false });
  });
  const thrEnd = (event) => {
    if (thrDrag !== event.pointerId) return;
    thrDrag = null;
    emit("threshold", { value: valueAt(event), final: true });
  };
  thrG.on("pointerup", thrEnd).on("pointercancel", thrEnd);
  thrKnob.on("keydown", (event) => {
    if (!last) return;
    const step = event.shiftKey ? 0.1 : 0.01;
    let v = null;
    if (event.key === "ArrowUp") v = last.p.threshold + step;
    if (event.key === "ArrowDown") v = last.p.threshold - step;
    if (v === null) return;
    event.preventDefault();
    event.stopPropagation();
    emit("threshold", { value: Math.round(v * 100) / 100, final: true });
  });

  function paintBackground(data, layout, y, fullW, h) {
    const dpr = window.devicePixelRatio || 1;
    const key = `${fullW}|${h}|${layout.colW}|${y.domain()}|${dpr}`;
    if (bgKey && bgKey.data === data && bgKey.key === key) return;
    bg.width = Math.max(1, Math.round(fullW * dpr));
    bg.height = Math.max(1, Math.round(h * dpr));
    const ctx = bg.getContext("2d");
    const x0 = layout.left + 0.5 * layout.colW;
    const cw = layout.colW;
    if (data.values.length * (data.values[0] || []).length > RASTER_ABOVE) {
      const y0 = y(0);
      const ya = y(1) - y0; // the scale is linear: no scale call per value
      rasterLines(ctx, data.values, x0 * dpr, cw * dpr, y0 * dpr, ya * dpr, bg.width, bg.height);
    } else {
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, fullW, h);
      ctx.strokeStyle = GREY;
      ctx.lineWidth = 1;
      ctx.lineJoin = "round";
      for (const row of data.values) {
        ctx.beginPath();
        let pen = false;
        for (let i = 0; i < row.length; i++) {
          const v = row[i];
          if (!Number.isFinite(v)) { pen = false; continue; }
          const x = x0 + i * cw;
          if (pen) ctx.lineTo(x, y(v)); else ctx.moveTo(x, y(v));
          pen = true;
        }
        ctx.stroke();
      }
    }
    bgKey = { data, key };
  }

  // Dragging an off handle: the column boundary nearest the pointer gives how many
  // positions before (after) the range must be off, 0..MAX_OFF.
  let offDrag = null;
  const offValue = (side, event) => {
    const [mx] = d3.pointer(event, svg.node());
    const { layout, p } = last;
    const edge = Math.round((mx - layout.left) / layout.colW); // a boundary between columns
    const v = side === "left" ? p.range.a - edge : edge - (p.range.b + 1);
    return Math.max(0, Math.min(MAX_OFF, v));
  };
  offG.on("pointerdown", (event) => {
    const side = event.target.dataset?.side;
    if (!last || !last.p.range || !side || event.button !== 0) return;
    offDrag = { id: event.pointerId, side };
    offG.node().setPointerCapture?.(event.pointerId);
    event.preventDefault();
    event.stopPropagation();
  });
  offG.on("pointermove", (event) => {
    if (!offDrag || offDrag.id !== event.pointerId) return;
    emit("offconstraint", { side: offDrag.side, value: offValue(offDrag.side, event), final: false });
  });
  const offEnd = (event) => {
    if (!offDrag || offDrag.id !== event.pointerId) return;
    const { side } = offDrag;
    offDrag = null;
    emit("offconstraint", { side, value: offValue(side, event), final: true });
  };
  offG.on("pointerup", offEnd).on("pointercancel", offEnd);
  offG.on("keydown", (event) => {
    const side = event.target.dataset?.side;
    if (!last || !side) return;
    const now = side === "left" ? last.p.zl : last.p.zr;
    const outward = side === "left" ? "ArrowLeft" : "ArrowRight";
    const inward = side === "left" ? "ArrowRight" : "ArrowLeft";
    let v = null;
    if (event.key === outward || event.key === "ArrowUp") v = now + 1;
    else if (event.key === inward || event.key === "ArrowDown") v = now - 1;
    else if (event.key === "Home") v = 0;
    if (v === null) return;
    event.preventDefault();
    event.stopPropagation();
    emit("offconstraint", { side, value: Math.max(0, Math.min(MAX_OFF, v)), final: true });
  });

  return {
    /**
     * p: {data, domain, layout {left, width, n, colW}, selected [cells], colourOf(cell),
     *     hoverCell, cursor {t, cell}, threshold, range {a, b} | null (window columns),
     *     zl, zr, mark {a, b} | null, streamStarts, label}
     */
    update(p) {
      const { data, layout } = p;
      const fullW = layout.left + layout.width + 8;
      const y = d3.scaleLinear().domain(p.domain).range([height - 8, 8]);
      last = { layout, data, y, p };
      paintBackground(data, layout, y, fullW, height);
      const ctx = sizeCanvas(canvas, fullW, height);
      ctx.clearRect(0, 0, fullW, height);
      ctx.drawImage(bg, 0, 0, fullW, height);
      ctx.lineJoin = "round";
      const rowOf = new Map(data.cells.map((c, i) => [c, i]));
      const xAt = (i) => layout.left + (i + 0.5) * layout.colW;
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
      ctx.lineWidth = p.selected.length > 24 ? 1.5 : 2.25;
      for (const cell of p.selected) {
        const i = rowOf.get(cell);
        if (i === undefined) continue;
        ctx.strokeStyle = p.colourOf(cell);
        line(data.values[i]);
      }
      const focus = p.hoverCell ?? (p.cursor ? p.cursor.cell : null);
      if (focus !== null && focus !== undefined && rowOf.has(focus)) {
        ctx.strokeStyle = "#111";
        ctx.lineWidth = p.hoverCell !== null && p.hoverCell !== undefined ? 3 : 1.5;
        if (p.hoverCell === null || p.hoverCell === undefined) ctx.setLineDash([4, 2]);
        line(data.values[rowOf.get(focus)]);
        ctx.setLineDash([]);
      }

      svg.attr("width", fullW).attr("height", height);
      axisG.attr("transform", `translate(${layout.left - 4},0)`).call(d3.axisLeft(y).ticks(5));
      const x0 = layout.left;
      const x1 = layout.left + layout.width;
      const [d0, d1] = y.domain();
      zeroLine.attr("x1", x0).attr("x2", x1).attr("y1", y(0)).attr("y2", y(0))
        .attr("visibility", d0 < 0 && d1 > 0 ? "visible" : "hidden");

      // The range, clipped to the window, and its off-constraint positions.
      const clip = (a, b) => {
        const lo = Math.max(0, a);
        const hi = Math.min(layout.n - 1, b);
        return hi >= lo ? { x: layout.left + lo * layout.colW, w: (hi - lo + 1) * layout.colW } : null;
      };
      const parts = [];
      if (p.range) {
        const on = clip(p.range.a, p.range.b);
        if (on) parts.push({ kind: "on", ...on });
        const before = p.zl > 0 ? clip(p.range.a - p.zl, p.range.a - 1) : null;
        const after = p.zr > 0 ? clip(p.range.b + 1, p.range.b + p.zr) : null;
        if (before) parts.push({ kind: "off", ...before });
        if (after) parts.push({ kind: "off", ...after });
      }
      rangeG.selectAll("rect").data(parts).join("rect")
        .attr("class", (d) => `range-${d.kind}`)
        .attr("x", (d) => d.x).attr("width", (d) => d.w).attr("y", 0).attr("height", height);
      const edges = p.range ? [p.range.a, p.range.b + 1].filter((t) => t >= 0 && t <= layout.n) : [];
      rangeG.selectAll("line").data(edges).join("line").attr("class", "range-edge")
        .attr("x1", (t) => layout.left + t * layout.colW).attr("x2", (t) => layout.left + t * layout.colW)
        .attr("y1", 0).attr("y2", height);

      // Off handles, where their edge lies inside the window.
      const handles = [];
      if (p.range) {
        const lx = p.range.a - (p.zl || 0);
        const rx = p.range.b + 1 + (p.zr || 0);
        if (lx >= 0 && lx <= layout.n) handles.push({ side: "left", t: lx, v: p.zl || 0 });
        if (rx >= 0 && rx <= layout.n) handles.push({ side: "right", t: rx, v: p.zr || 0 });
      }
      offG.selectAll("path.off-handle").data(handles, (d) => d.side).join((enter) => enter.append("path")
        .attr("class", (d) => `off-handle off-${d.side}`)
        .attr("data-side", (d) => d.side)
        .attr("tabindex", 0).attr("role", "slider")
        .attr("aria-label", (d) => (d.side === "left" ? "Off before handle" : "Off after handle"))
        .attr("aria-valuemin", 0).attr("aria-valuemax", MAX_OFF)
        .call((sel) => sel.append("title")))
        .attr("d", (d) => (d.side === "left"
          ? "M0,0 L-8,0 L-8,16 L0,16 Z M0,0 L0,-6" : "M0,0 L8,0 L8,16 L0,16 Z M0,0 L0,-6"))
        .attr("transform", (d) => `translate(${layout.left + d.t * layout.colW},${height - 18})`)
        .attr("aria-valuenow", (d) => d.v)
        .attr("aria-valuetext", (d) => `${d.v} position${d.v === 1 ? "" : "s"} must be off ${d.side === "left" ? "before" : "after"} the range`)
        .select("title")
        .text((d) => `Drag to set how many positions ${d.side === "left" ? "before" : "after"} the range must be off (now ${d.v})`);

      const mk = p.mark ? clip(p.mark.a, p.mark.b) : null;
      markRect.attr("visibility", mk ? "visible" : "hidden");
      if (mk) markRect.attr("x", mk.x).attr("width", mk.w).attr("y", 1).attr("height", height - 2);

      const thrVisible = p.threshold >= Math.min(d0, d1) && p.threshold <= Math.max(d0, d1);
      const ty = y(Math.max(Math.min(d0, d1), Math.min(Math.max(d0, d1), p.threshold)));
      thrG.attr("visibility", thrVisible ? "visible" : "hidden");
      thrLine.attr("x1", x0).attr("x2", x1).attr("y1", ty).attr("y2", ty);
      thrGrab.attr("x1", x0 - 12).attr("x2", x1).attr("y1", ty).attr("y2", ty);
      thrKnob.attr("transform", `translate(${x0 - 1},${ty})`)
        .attr("aria-valuenow", p.threshold).attr("aria-valuemin", d0).attr("aria-valuemax", d1)
        .attr("aria-valuetext", `threshold ${p.threshold}`);
      thrLabel.attr("x", x1 - 2).attr("y", ty - 5).attr("text-anchor", "end")
        .text(`threshold ${p.threshold}`);

      if (p.cursor && p.cursor.t !== null && p.cursor.t !== undefined && p.cursor.t < layout.n) {
        cursorLine.attr("x1", xAt(p.cursor.t)).attr("x2", xAt(p.cursor.t)).attr("y1", 0).attr("y2", height)
          .attr("visibility", "visible");
      } else {
        cursorLine.attr("visibility", "hidden");
      }
      hit.attr("x", x0).attr("y", 0).attr("width", layout.width).attr("height", height);

      const starts = (p.streamStarts || []).filter((s) => s >= data.start && s <= data.end);
      const xStart = (s) => layout.left + (s - data.start) * layout.colW;
      const marks = streamG.selectAll("g.stream-mark").data(starts, (s) => s).join((enter) => {
        const g = enter.append("g").attr("class", "stream-mark");
        g.append("line").attr("class", "stream-start");
        g.append("path").attr("class", "stream-start-marker").attr("d", "M-5,0 L5,0 L0,7 Z")
          .append("title");
        return g;
      });
      marks.attr("data-pos", (s) => s);
      marks.select("line").attr("x1", xStart).attr("x2", xStart).attr("y1", 0).attr("y2", height);
      marks.select("path").attr("transform", (s) => `translate(${xStart(s)},0)`)
        .attr("aria-label", (s) => `stream start at ${s}`)
        .select("title").text((s) => `stream start at position ${s}: state is zero here`);

      canvas.setAttribute("aria-label",
        `${p.label || name}: ${data.cells.length} cells over tokens ${data.start} to ${data.end}; ` +
        `${p.selected.length} selected; threshold ${p.threshold}`);
      root.dataset.ready = "true";
    },
    /** The y pixel of a value on the last drawn scale (for tests and tooltips). */
    yOf(v) { return last ? last.y(v) : null; },
    destroy() { root.replaceChildren(); },
  };
}
