// Heatmap of cells (rows) by tokens (columns) on a canvas: one pixel per value is
// written into a small offscreen image which is then scaled up without smoothing,
// so its columns line up with the token strip. Selected rows and the cursor are
// outlined in an SVG overlay (outline, not colour alone). Clicking a row emits
// "togglecell"; hovering emits "cursor".

import d3 from "../lib/d3.js";
import { sizeCanvas } from "../core/canvas.js";
import { rampLut, rampOf } from "../core/palettes.js";

export function heatmapHeight(cells) {
  if (cells <= 0) return 0;
  const row = Math.max(1, Math.min(12, Math.floor(360 / cells)));
  return Math.min(360, cells * row);
}

export function createHeatmap(root) {
  root.classList.add("heatmap");
  const canvas = document.createElement("canvas");
  canvas.setAttribute("role", "img");
  root.append(canvas);
  const svg = d3.select(root).append("svg").attr("class", "overlay");
  const labels = svg.append("g").attr("class", "cell-labels");
  const marks = svg.append("g");
  const hit = svg.append("rect").attr("class", "hit").attr("fill", "transparent");
  const image = document.createElement("canvas");
  let last = null;
  let drawn = { data: null, key: "" };

  function paint(data, rows, cols, ramp) {
    image.width = Math.max(1, cols);
    image.height = Math.max(1, rows);
    const ictx = image.getContext("2d");
    const img = ictx.createImageData(image.width, image.height);
    const { lut, steps, lo, hi } = rampLut(ramp);
    const px = img.data;
    const scale = (steps - 1) / (hi - lo);
    for (let r = 0; r < rows; r++) {
      const row = data.values[r];
      for (let c = 0; c < cols; c++) {
        const v = row[c];
        const o = (r * cols + c) * 4;
        if (!Number.isFinite(v)) {
          px[o] = 200; px[o + 1] = 200; px[o + 2] = 200; px[o + 3] = 255;
          continue;
        }
        const k = Math.round((Math.max(lo, Math.min(hi, v)) - lo) * scale) * 4;
        px[o] = lut[k]; px[o + 1] = lut[k + 1]; px[o + 2] = lut[k + 2]; px[o + 3] = 255;
      }
    }
    ictx.putImageData(img, 0, 0);
    drawn = { data, key: `${lo}|${hi}|${ramp.kind}` };
  }

  function pick(event) {
    if (!last) return null;
    const [mx, my] = d3.pointer(event, svg.node());
    const { layout, data, height } = last;
    const t = Math.floor((mx - layout.left) / layout.colW);
    const r = Math.floor((my / height) * data.cells.length);
    if (t < 0 || t >= layout.n || r < 0 || r >= data.cells.length) return null;
    return { t, cell: data.cells[r] };
  }
  hit.on("pointermove", (event) => {
    const p = pick(event);
    if (p) root.dispatchEvent(new CustomEvent("cursor", { bubbles: true, detail: p }));
  });
  hit.on("click", (event) => {
    const p = pick(event);
    if (p) root.dispatchEvent(new CustomEvent("togglecell", { bubbles: true, detail: { cell: p.cell } }));
  });

  return {
    /** `domain`: the source's value range ([0, 1] for gates: a sequential ramp;
     * [-m, m]: diverging, white at 0). */
    update(data, state, layout, cursor, domain = [-1, 1], hoverCell = null) {
      const ramp = rampOf(domain);
      const rows = data.cells.length;
      const cols = data.values[0] ? data.values[0].length : 0;
      const height = heatmapHeight(rows);
      const fullW = layout.left + layout.width + 8;
      last = { layout, data, height };

      if (drawn.data !== data || drawn.key !== `${ramp.lo}|${ramp.hi}|${ramp.kind}`) paint(data, rows, cols, ramp);

      const ctx = sizeCanvas(canvas, fullW, height);
      ctx.clearRect(0, 0, fullW, height);
      ctx.imageSmoothingEnabled = false;
      if (rows && cols) ctx.drawImage(image, layout.left, 0, layout.colW * cols, height);

      svg.attr("width", fullW).attr("height", height);
      const rowH = rows ? height / rows : 0;
      const rowOf = new Map(data.cells.map((c, i) => [c, i]));
      const outlines = state.cells.filter((c) => rowOf.has(c)).map((c) => ({ c, r: rowOf.get(c) }));
      marks.selectAll("rect.sel").data(outlines, (d) => d.c).join("rect")
        .attr("class", "sel")
        .attr("x", layout.left - 0.5).attr("width", layout.width + 1)
        .attr("y", (d) => d.r * rowH - 0.5).attr("height", Math.max(rowH, 1) + 1);
      // Cell numbers in the left margin: every row when rows are tall enough,
      // else every k-th row so that labels never overlap (11 px apart at least).
      const every = rowH >= 11 ? 1 : Math.ceil(11 / Math.max(rowH, 0.01));
      const shown = data.cells.map((c, r) => ({ c, r })).filter((d) => d.r % every === 0);
      labels.selectAll("text").data(shown, (d) => d.c).join("text")
        .attr("x", layout.left - 4)
        .attr("y", (d) => d.r * rowH + rowH / 2)
        .attr("dy", "0.35em")
        .attr("text-anchor", "end")
        .attr("font-size", 10)
        .attr("fill", "currentColor")
        .text((d) => d.c);
      const cur = cursor && cursor.t !== null && cursor.t !== undefined ? [cursor] : [];
      marks.selectAll("rect.cursor-col").data(cur).join("rect")
        .attr("class", "cursor-col")
        .attr("x", (d) => layout.left + d.t * layout.colW).attr("width", layout.colW)
        .attr("y", 0).attr("height", height);
      const rowCell = hoverCell !== null && hoverCell !== undefined ? hoverCell : (cursor ? cursor.cell : null);
      const curRow = rowOf.has(rowCell) ? [{ cell: rowCell }] : [];
      marks.selectAll("rect.cursor-row").data(curRow).join("rect")
        .attr("class", "cursor-row")
        .attr("x", layout.left).attr("width", layout.width)
        .attr("y", (d) => rowOf.get(d.cell) * rowH - (rowH < 3 ? 1.5 : 0))
        .attr("height", Math.max(rowH, 3));
      hit.attr("x", layout.left).attr("y", 0).attr("width", layout.width).attr("height", height);

      canvas.setAttribute("aria-label",
        `Heatmap of ${rows} cells by ${cols} tokens (${data.start} to ${data.end}); ` +
        `colours ${ramp.describe(ramp.lo, ramp.hi)}`);
      root.dataset.ready = "true";
    },
    destroy() { root.replaceChildren(); },
  };
}
