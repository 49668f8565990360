// The whole corpus as one thin bar: the window as a rectangle that can be dragged
// (pan), a click elsewhere centres the window there, and ticks for the hypothesis
// range, the search hits and the match hits, so that a jump has a context.
// Emits "pan" {pos, final} on its root.

import d3 from "../lib/d3.js";

const HEIGHT = 22;

export function createOverview(root) {
  root.classList.add("overview");
  const svg = d3.select(root).append("svg").attr("class", "overview-svg").attr("height", HEIGHT)
    .attr("role", "img");
  const track = svg.append("rect").attr("class", "ov-track").attr("y", 6).attr("height", HEIGHT - 12);
  const ticks = svg.append("g");
  const win = svg.append("rect").attr("class", "ov-window").attr("y", 2).attr("height", HEIGHT - 4);
  let last = null;
  let drag = null;

  const emit = (pos, final) => root.dispatchEvent(new CustomEvent("pan", { bubbles: true, detail: { pos, final } }));
  const posAt = (event) => {
    const [mx] = d3.pointer(event, svg.node());
    return Math.round(last.x.invert(mx));
  };

  svg.on("pointerdown", (event) => {
    if (!last || event.button !== 0) return;
    const p = posAt(event);
    const inside = p >= last.pos && p < last.pos + last.w;
    drag = { id: event.pointerId, offset: inside ? p - last.pos : Math.floor(last.w / 2), moved: false };
    svg.node().setPointerCapture?.(event.pointerId);
    if (!inside) emit(p - drag.offset, false);
    event.preventDefault();
  });
  svg.on("pointermove", (event) => {
    if (!drag || drag.id !== event.pointerId) return;
    drag.moved = true;
    emit(posAt(event) - drag.offset, false);
  });
  const end = (event) => {
    if (!drag || drag.id !== event.pointerId) return;
    const d = drag;
    drag = null;
    emit(posAt(event) - d.offset, true);
  };
  svg.on("pointerup", end).on("pointercancel", end);

  return {
    /** p: {length, pos, w, width, left, range {start, end} | null, search [positions], hits [positions]} */
    update(p) {
      const width = Math.max(50, p.width);
      const x = d3.scaleLinear().domain([0, Math.max(1, p.length)]).range([p.left, p.left + width]);
      last = { x, pos: p.pos, w: p.w };
      svg.attr("width", p.left + width + 8);
      track.attr("x", p.left).attr("width", width);
      const marks = [
        ...(p.hits || []).map((pos) => ({ pos, kind: "hit" })),
        ...(p.search || []).map((pos) => ({ pos, kind: "search" })),
        ...(p.range ? [{ pos: p.range.start, kind: "range" }] : []),
      ];
      ticks.selectAll("line").data(marks).join("line")
        .attr("class", (d) => `ov-${d.kind}`)
        .attr("x1", (d) => x(d.pos) + 0.5).attr("x2", (d) => x(d.pos) + 0.5)
        .attr("y1", (d) => (d.kind === "range" ? 0 : 5)).attr("y2", (d) => (d.kind === "range" ? HEIGHT : HEIGHT - 5));
      const wx = x(p.pos);
      win.attr("x", wx).attr("width", Math.max(3, x(p.pos + p.w) - wx));
      svg.attr("aria-label", `Corpus of ${p.length} tokens; the window shows ${p.pos} to ${Math.min(p.length, p.pos + p.w) - 1}` +
        (p.hits && p.hits.length ? `; ${p.hits.length} match hits marked` : ""));
      root.dataset.ready = "true";
    },
  };
}
