// Colour-blind-safe palettes.
//
// - diverging: for states in [-1, 1], centred on 0 (blue for negative, white at 0,
//   orange-red for positive; Brewer RdBu reversed is safe for the common forms of
//   colour blindness).
// - okabeIto: categories (selected cells).
// - sequential: cividis ramp for counts and non-negative sources (gates).
// - rampOf / rampLut: the ramp of a source's value domain, and its lookup table so
//   a canvas can colour 10^5 values without calling a scale per value.

import d3 from "../lib/d3.js";

export const okabeIto = [
  "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000",
];

export const diverging = (t) => d3.interpolateRdBu(1 - t); // t in [0, 1]; 0.5 is white

export const sequential = (t) => d3.interpolateCividis(t);

/** The colour ramp of a value domain [lo, hi]: sequential (cividis) from lo for a
 * non-negative domain (gates, unsigned sources: 0..1), else diverging, white at 0,
 * over [-m, m]. `colour(t)` for t in [0, 1]; `lo`, `hi` the ends; `describe` says it. */
export function rampOf(domain = [-1, 1]) {
  const [a, b] = domain;
  if (a >= 0) {
    return {
      kind: "sequential", lo: a, hi: b > a ? b : a + 1, colour: sequential,
      describe: (lo, hi) => `from ${lo} (dark blue) to ${hi} (yellow)`,
    };
  }
  const m = Math.max(Math.abs(a), Math.abs(b)) || 1;
  return {
    kind: "diverging", lo: -m, hi: m, colour: diverging,
    describe: (lo, hi) => `from ${lo} (blue) through 0 (white) to ${hi} (red)`,
  };
}

/** Precomputed RGBA for `steps` bins over a ramp's [lo, hi], for canvas pixel writes. */
export function rampLut(ramp, steps = 256) {
  const lut = new Uint8ClampedArray(steps * 4);
  for (let i = 0; i < steps; i++) {
    const c = d3.rgb(ramp.colour(i / (steps - 1)));
    lut.set([c.r, c.g, c.b, 255], i * 4);
  }
  return { lut, steps, lo: ramp.lo, hi: ramp.hi };
}
