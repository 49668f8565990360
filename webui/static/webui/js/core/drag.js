// Dragging over token columns: one helper for the line plot and the token strip.
//
// A press and release without movement is a click (handed to `onClick`); a drag
// sets a range of columns. Pressing within a few pixels of an edge of the current
// range moves that edge only, so a range can be adjusted without redrawing it.
// While dragging `onRange(a, b, false)` is called on every move; on release
// `onRange(a, b, true)` once. Columns are clamped to the window.

const SLOP = 3; // pixels a press may move and still be a click
const EDGE = 5; // pixels around a range edge that grab that edge

/**
 * el: the element that receives the pointer events.
 * opts.geometry() -> {left, colW, n} (x of column 0 relative to el, width, count)
 * opts.range() -> {a, b} | null: the current range in window columns (may lie outside)
 * opts.onRange(a, b, final); opts.onClick(event); opts.enabled(event) -> bool
 */
export function attachColumnDrag(el, opts) {
  let drag = null;

  const xOf = (event) => event.clientX - el.getBoundingClientRect().left;
  const colAt = (x) => {
    const g = opts.geometry();
    return Math.max(0, Math.min(g.n - 1, Math.floor((x - g.left) / g.colW)));
  };

  el.addEventListener("pointerdown", (event) => {
    if (event.button !== 0 || (opts.enabled && !opts.enabled(event))) return;
    const g = opts.geometry();
    if (!g || !g.n) return;
    const x = xOf(event);
    const r = opts.range();
    let anchor = colAt(x);
    let mode = "new";
    if (r) {
      const xa = g.left + r.a * g.colW;
      const xb = g.left + (r.b + 1) * g.colW;
      if (Math.abs(x - xa) <= EDGE) { mode = "edge"; anchor = r.b; }
      else if (Math.abs(x - xb) <= EDGE) { mode = "edge"; anchor = r.a; }
    }
    drag = { x0: x, anchor, mode, moved: false, a: anchor, b: anchor, id: event.pointerId };
    el.setPointerCapture?.(event.pointerId);
    event.preventDefault();
  });

  el.addEventListener("pointermove", (event) => {
    if (!drag || event.pointerId !== drag.id) return;
    const x = xOf(event);
    if (!drag.moved && Math.abs(x - drag.x0) < SLOP && drag.mode === "new") return;
    drag.moved = true;
    const t = colAt(x);
    drag.a = Math.min(drag.anchor, t);
    drag.b = Math.max(drag.anchor, t);
    opts.onRange(drag.a, drag.b, false);
  });

  const finish = (event) => {
    if (!drag || event.pointerId !== drag.id) return;
    const d = drag;
    drag = null;
    el.releasePointerCapture?.(event.pointerId);
    // Moves may be coalesced: the release's own position decides the end.
    const x = xOf(event);
    if (event.type === "pointerup" && (d.moved || Math.abs(x - d.x0) >= SLOP)) {
      const t = colAt(x);
      d.a = Math.min(d.anchor, t);
      d.b = Math.max(d.anchor, t);
      d.moved = true;
    }
    if (d.moved) opts.onRange(d.a, d.b, true);
    else if (event.type === "pointerup" && opts.onClick) opts.onClick(event);
  };
  el.addEventListener("pointerup", finish);
  el.addEventListener("pointercancel", finish);

  /** The cursor a pointer at `x` would get: a resize cursor over a range edge. */
  return {
    cursorAt(event) {
      const g = opts.geometry();
      const r = opts.range();
      if (!g || !r) return "";
      const x = xOf(event);
      const xa = g.left + r.a * g.colW;
      const xb = g.left + (r.b + 1) * g.colW;
      return Math.abs(x - xa) <= EDGE || Math.abs(x - xb) <= EDGE ? "ew-resize" : "";
    },
    get dragging() { return drag !== null && drag.moved; },
  };
}
