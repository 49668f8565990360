// Colour-blind-safe palettes.
//
// - diverging: for states in [-1, 1], centred on 0 (blue for negative, white at 0,
//   orange-red for positive; Brewer RdBu reversed is safe for the common forms of
//   colour blindness). Used through a lookup table so a canvas can colour 10^5
//   values without calling a scale per value.
// - okabeIto: categories (selected cells).
// - sequential: cividis-like ramp for counts.

import d3 from "../lib/d3.js";

export const okabeIto = [
  "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000",
];

export const diverging = (t) => d3.interpolateRdBu(1 - t); // t in [0, 1]; 0.5 is white

/** A diverging scale from [-extent, extent] to CSS colours, white at 0. */
export function divergingScale(extent = 1) {
  return d3.scaleDiverging((t) => diverging(t)).domain([-extent, 0, extent]).clamp(true);
}

/** Precomputed RGBA for `steps` bins over [-extent, extent], for canvas pixel writes. */
export function divergingLut(extent = 1, steps = 256) {
  const lut = new Uint8ClampedArray(steps * 4);
  for (let i = 0; i < steps; i++) {
    const c = d3.rgb(diverging(i / (steps - 1)));
    lut.set([c.r, c.g, c.b, 255], i * 4);
  }
  return {
    extent,
    steps,
    index(v) {
      if (!Number.isFinite(v)) return -1;
      const t = (Math.max(-extent, Math.min(extent, v)) + extent) / (2 * extent);
      return Math.round(t * (steps - 1)) * 4;
    },
    lut,
  };
}

export const sequential = (t) => d3.interpolateCividis(t);
