// The analysis page's selection, for other modules of the page (the hypothesis
// panel): read the current selection spec, apply one, and hear when it changes.
//
//   import { getSpec, applySpec, onSelectionChange, ready } from "./analysis-state.js";
//   await ready;                       // the page has loaded its state set
//   const spec = getSpec();            // {source, start, end, threshold, zero_left, ...}
//   await applySpec({...spec, threshold: 0.4});   // resolves once the cells are known
//   const off = onSelectionChange((spec) => ...);  // also: document "selectionchange"
//
// A spec is {source, start, end, threshold, zero_left, zero_right, min_length,
// max_length, cells_added, cells_excluded, cells}: `start`/`end` are the hypothesis
// range (inclusive, null without one), `cells` the selected cells (the range's
// selection plus `cells_added` minus `cells_excluded`). docs/webui.md has the contract.

export const SELECTION_EVENT = "selectionchange";

let provider = null;
let resolveReady;
/** Resolves with the state set's description once the page can answer. */
export const ready = new Promise((resolve) => { resolveReady = resolve; });

/** Called once by the page (stateset.js). */
export function registerAnalysis(p) {
  provider = p;
  resolveReady(p.stateset());
}

/** The current selection spec (a copy), or null before the page is ready. */
export function getSpec() {
  return provider ? provider.getSpec() : null;
}

/** The state set the page shows ({id, name, length, sources, annotations, ...}). */
export function getStateset() {
  return provider ? provider.stateset() : null;
}

/**
 * Show a spec: source, range, threshold, constraints, length filter and cells go
 * into the view (and its URL), the window moves to the range. Fields left out keep
 * their current value. Given `cells` without `cells_added`/`cells_excluded`, the
 * edits are worked out so that exactly those cells end up selected. Resolves with
 * the resulting spec once its cells are known.
 */
export function applySpec(spec) {
  if (!provider) return Promise.reject(new Error("The analysis page is not ready yet."));
  return provider.applySpec(spec);
}

/** fn(spec) on every change of the selection; returns a function that stops it. */
export function onSelectionChange(fn) {
  const listener = (event) => {
    // The browser fires a plain "selectionchange" for text selections too.
    if (event instanceof CustomEvent && event.detail && "cells" in event.detail) fn(event.detail);
  };
  document.addEventListener(SELECTION_EVENT, listener);
  return () => document.removeEventListener(SELECTION_EVENT, listener);
}

/** Called by the page when the spec (cells included) changed. */
export function emitSelectionChange(spec) {
  document.dispatchEvent(new CustomEvent(SELECTION_EVENT, { detail: spec }));
}
