// Small SVG charts of a hypothesis' statistics and of a cell ranking: horizontal
// bars with their labels and values written out, an axis, an optional dashed
// reference line (lift 1, AUROC 0.5, Pearson 0). Bars are <rect class="bar">, each
// row has a <title> with the full numbers; the figure is role="img" with a name.
// Colours come from the Okabe-Ito set through CSS classes, and whatever colour
// says is also written (a star, a sign, a legend).

import d3 from "../lib/d3.js";
import { fmtInt, h } from "../core/format.js";

const WIDTH = 340;

export const fmtNum = (v, digits = 2) => (v === null || v === undefined || Number.isNaN(v) ? "–" : v.toFixed(digits));

/** A p- or q-value: small ones in exponent form. */
export function fmtP(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (v === 0) return "0";
  return v < 0.001 ? v.toExponential(1) : v.toFixed(3);
}

function clip(text, n = 16) {
  const s = String(text);
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

/**
 * items: [{label, value, note?, title?, kind?}] (value null: nothing to draw).
 * domain [lo, hi]; bars start at `base` (default lo); `reference` draws a dashed line.
 */
export function barChart(items, {
  domain, base = domain[0], reference = null, name, format = fmtNum,
  width = WIDTH, labelWidth = 96, noteWidth = 78, barHeight = 14, gap = 5, ticks = 4,
}) {
  const top = 4;
  const axisH = 20;
  const plotH = items.length * (barHeight + gap);
  const height = top + plotH + axisH;
  const x = d3.scaleLinear().domain(domain).range([labelWidth, width - noteWidth]).clamp(true);
  const svg = d3.create("svg")
    .attr("class", "stat-chart")
    .attr("width", width).attr("height", height)
    .attr("viewBox", `0 0 ${width} ${height}`)
    .attr("role", "img")
    .attr("aria-label", name);
  svg.append("g").attr("class", "axis")
    .attr("transform", `translate(0,${top + plotH})`)
    .call(d3.axisBottom(x).ticks(ticks).tickSizeOuter(0));
  const rows = svg.selectAll("g.row").data(items).join("g")
    .attr("class", (d) => `row ${d.kind || ""}`.trim())
    .attr("transform", (d, i) => `translate(0,${top + i * (barHeight + gap)})`);
  rows.append("title").text((d) => d.title ?? `${d.label}: ${format(d.value)}`);
  rows.append("text").attr("class", "bar-label")
    .attr("x", labelWidth - 6).attr("y", barHeight / 2).attr("dy", "0.35em").attr("text-anchor", "end")
    .text((d) => clip(d.label));
  rows.filter((d) => d.value !== null && d.value !== undefined && !Number.isNaN(d.value))
    .append("rect").attr("class", "bar")
    .attr("x", (d) => Math.min(x(base), x(d.value)))
    .attr("width", (d) => Math.max(1, Math.abs(x(d.value) - x(base))))
    .attr("y", 0).attr("height", barHeight);
  rows.append("text").attr("class", "bar-value")
    .attr("x", width - noteWidth + 6).attr("y", barHeight / 2).attr("dy", "0.35em")
    .text((d) => d.note ?? format(d.value));
  if (reference !== null) {
    svg.append("line").attr("class", "ref")
      .attr("x1", x(reference)).attr("x2", x(reference))
      .attr("y1", 0).attr("y2", top + plotH);
  }
  return svg.node();
}

/** A legend row: [[class, text], ...], each key a swatch drawn like its bars. */
export function chartLegend(keys) {
  return h("p", { class: "chart-legend" },
    keys.map(([kind, text]) => h("span", { class: `chart-key ${kind}` }, h("span", { class: "chart-swatch", "aria-hidden": "true" }), text)));
}

/** What "actual positive" is called for a statistics row. */
function positiveName(stats) {
  return stats.label !== null && stats.label !== undefined
    ? `${stats.annotation} = ${stats.label}`
    : `${stats.annotation} ≥ ${stats.threshold}`;
}

/** The 2 × 2 table of tokens and the precision, recall and F1 bars. */
export function agreementFigure(stats) {
  const a = stats.agreement || {};
  const pos = positiveName(stats);
  const cell = (v, what) => h("td", { class: "num", title: what }, fmtInt(v));
  const table = h("table", { class: "table confusion" },
    h("caption", { class: "sr-only" }, `Tokens by the hypothesis and ${pos}`),
    h("thead", {}, h("tr", {},
      h("td", {}),
      h("th", { scope: "col" }, pos),
      h("th", { scope: "col" }, "otherwise"))),
    h("tbody", {},
      h("tr", {}, h("th", { scope: "row" }, "cells on"), cell(a.tp, "true positives"), cell(a.fp, "false positives")),
      h("tr", {}, h("th", { scope: "row" }, "cells off"), cell(a.fn, "false negatives"), cell(a.tn, "true negatives"))));
  const bars = barChart([
    { label: "precision", value: a.precision },
    { label: "recall", value: a.recall },
    { label: "F1", value: a.f1 },
  ], { domain: [0, 1], name: `Precision ${fmtNum(a.precision)}, recall ${fmtNum(a.recall)}, F1 ${fmtNum(a.f1)}`, noteWidth: 44 });
  return h("div", { class: "agreement" }, table, bars);
}

/** Lift per label inside the matched ranges, sorted, q < 0.05 marked. */
export function enrichmentFigure(stats, { top = 12 } = {}) {
  const rows = [...(stats.enrichment || [])].sort((p, q) => (q.lift ?? -1) - (p.lift ?? -1)
    || String(p.label).localeCompare(String(q.label)));
  if (!rows.length) return h("p", { class: "muted" }, "No labels to compare (a scalar track has none).");
  if (stats.ranges === 0) {
    return h("p", { class: "muted" },
      "No matched ranges: the cells are never on together within the off-constraints, so nothing lies inside.");
  }
  const shown = rows.slice(0, top);
  const max = Math.max(1.5, ...shown.map((r) => r.lift ?? 0));
  const significant = (r) => r.q !== null && r.q !== undefined && r.q < 0.05;
  const chart = barChart(shown.map((r) => ({
    label: r.label,
    value: r.lift,
    kind: significant(r) ? "sig" : "ns",
    note: `${fmtNum(r.lift)}× · q ${fmtP(r.q)}${significant(r) ? " *" : ""}`,
    title: `${r.label}: lift ${fmtNum(r.lift)}, ${fmtInt(r.inside)} inside, ${fmtNum(r.expected, 1)} expected, p ${fmtP(r.p)}, q ${fmtP(r.q)}`,
  })), {
    domain: [0, max * 1.05], reference: 1, noteWidth: 112, width: 370,
    name: `Lift per label: ${shown.map((r) => `${r.label} ${fmtNum(r.lift)}${significant(r) ? " (q < 0.05)" : ""}`).join(", ")}`,
  });
  return h("div", { class: "enrichment" }, chart,
    chartLegend([["sig", "q < 0.05 (marked *)"], ["ns", "not significant"], ["ref", "lift 1 = as often as anywhere"]]),
    rows.length > shown.length ? h("p", { class: "hint" }, `${rows.length - shown.length} more labels in the CSV.`) : null);
}

/** Jaccard of the top hits against the threshold moved ±delta and each cell left out. */
export function robustnessFigure(stats, { top = 14 } = {}) {
  const r = stats.robustness || {};
  const items = (r.threshold || []).map((t) => ({
    label: `threshold ${fmtNum(t.threshold)}`, value: t.jaccard, kind: "thr",
  }));
  const loo = [...(r.leave_one_out || [])].sort((p, q) => (p.jaccard ?? 2) - (q.jaccard ?? 2) || p.cell - q.cell);
  items.push(...loo.slice(0, top).map((c) => ({ label: `without cell ${c.cell}`, value: c.jaccard, kind: "loo" })));
  if (!items.length) return h("p", { class: "muted" }, "Nothing to compare.");
  const chart = barChart(items, {
    domain: [0, 1], noteWidth: 44,
    name: `Jaccard of the top ${r.top_k ?? ""} hits: ${items.map((i) => `${i.label} ${fmtNum(i.value)}`).join(", ")}`,
  });
  return h("div", { class: "robustness" }, chart,
    chartLegend([["thr", `threshold ±${r.delta ?? ""}`], ...(loo.length ? [["loo", "one cell left out"]] : [])]),
    loo.length > top ? h("p", { class: "hint" }, `${loo.length - top} more cells in the CSV.`) : null);
}

/** The best cells of a ranking: AUROC around 0.5, or Pearson around 0. */
export function rankingFigure(ranking, { top = 20 } = {}) {
  const measure = ranking.measure;
  const cells = (ranking.cells || []).slice(0, top);
  const auroc = measure === "auroc";
  const rises = (v) => v !== null && v !== undefined && (auroc ? v > 0.5 : v > 0);
  const chart = barChart(cells.map((c) => ({
    label: `cell ${c.cell}`,
    value: c[measure],
    kind: rises(c[measure]) ? "rise" : "fall",
    note: fmtNum(c[measure], 3),
    title: `cell ${c.cell}: ${measure} ${fmtNum(c[measure], 3)}${c.spearman !== undefined ? `, spearman ${fmtNum(c.spearman, 3)}` : ""}`,
  })), {
    domain: auroc ? [0, 1] : [-1, 1], base: auroc ? 0.5 : 0, reference: auroc ? 0.5 : 0,
    labelWidth: 70, noteWidth: 50,
    name: `The ${cells.length} best cells by ${measure}: ${cells.map((c) => `${c.cell} ${fmtNum(c[measure], 2)}`).join(", ")}`,
  });
  return h("div", { class: "ranking-chart" }, chart,
    chartLegend([["rise", auroc ? "higher on the label" : "rises with the value"], ["fall", auroc ? "lower on the label" : "falls with the value"]]));
}
