// The usage page's plots over days (UTC): lines (active users, latency) and stacked
// bars (actions by kind, jobs by outcome), drawn with D3 into SVG at the width of
// their container. A day is the band [day, day + 1); long ranges are drawn in bins
// of several days. Every mark carries a <title> with its figure, and every plot an
// aria-label that says what it shows; the same figures download as CSV.

import d3 from "../lib/d3.js";
import { fmtInt, h } from "../core/format.js";

const DAY = 86_400_000;
const MARGIN = { top: 12, right: 18, bottom: 26, left: 56 };

/** "2025-03-01" as the Date of that day's start, UTC. */
export const dayOf = (iso) => new Date(`${iso}T00:00:00Z`);
export const isoOf = (date) => date.toISOString().slice(0, 10);
export const addDays = (iso, n) => isoOf(new Date(dayOf(iso).getTime() + n * DAY));
export const daysBetween = (a, b) => Math.round((dayOf(b) - dayOf(a)) / DAY) + 1;

const fmtDay = d3.utcFormat("%-d %b %Y");

function frame(root, label, height) {
  const width = Math.max(320, Math.floor(root.clientWidth || 880));
  const svg = d3.create("svg")
    .attr("class", "usage-svg")
    .attr("width", width)
    .attr("height", height)
    .attr("viewBox", `0 0 ${width} ${height}`)
    .attr("role", "img")
    .attr("aria-label", label);
  return { svg, width, height };
}

function timeScale(first, last, width) {
  return d3.scaleUtc()
    .domain([dayOf(first), new Date(dayOf(last).getTime() + DAY)])
    .range([MARGIN.left, width - MARGIN.right]);
}

function axes(svg, x, y, { width, height, days, yFormat }) {
  const ticks = Math.max(2, Math.min(days, Math.floor(width / 95)));
  svg.append("g").attr("class", "axis")
    .attr("transform", `translate(0,${height - MARGIN.bottom})`)
    .call(d3.axisBottom(x).ticks(ticks).tickSizeOuter(0)
      .tickFormat(d3.utcFormat(days > 150 ? "%b %Y" : "%-d %b")));
  // Counts get whole ticks only: no "0.5 users".
  const yTicks = yFormat === fmtInt ? y.ticks(4).filter(Number.isInteger) : y.ticks(4);
  svg.append("g").attr("class", "axis")
    .attr("transform", `translate(${MARGIN.left},0)`)
    .call(d3.axisLeft(y).tickValues(yTicks).tickFormat(yFormat));
  svg.append("g").attr("class", "grid")
    .selectAll("line").data(yTicks).join("line")
    .attr("x1", MARGIN.left).attr("x2", width - MARGIN.right)
    .attr("y1", (v) => y(v)).attr("y2", (v) => y(v));
}

/** A key of the series drawn: [{name, colour, dashed}]. */
export function legend(items) {
  return h("ul", { class: "usage-legend" }, items.map((item) => h("li", {},
    h("span", {
      class: `usage-swatch${item.dashed ? " is-dashed" : ""}`,
      style: item.dashed ? `border-color: ${item.colour}` : `background: ${item.colour}`,
    }),
    item.name)));
}

const empty = (text) => h("p", { class: "muted empty" }, text);

/**
 * Lines over days. series: [{name, colour, dashed, step, points: [[iso day, value|null]]}];
 * a point sits in the middle of its day; with `step`, a value holds for `step` days
 * from its day (drawn as steps; a step series has no gaps).
 */
export function lineChart(root, { label, first, last, series, yFormat = fmtInt, height = 210 }) {
  const values = series.flatMap((s) => s.points.map((p) => p[1])).filter((v) => v != null);
  if (!values.length) return empty("Nothing in this range.");
  const { svg, width } = frame(root, label, height);
  const x = timeScale(first, last, width);
  const y = d3.scaleLinear().domain([0, d3.max(values) || 1]).nice()
    .range([height - MARGIN.bottom, MARGIN.top]);
  axes(svg, x, y, { width, height, days: daysBetween(first, last), yFormat });
  const lo = dayOf(first).getTime();
  const hi = dayOf(last).getTime() + DAY;
  for (const s of series) {
    const span = (s.step || 1) * DAY;
    const at = (iso) => {
      const a = Math.max(dayOf(iso).getTime(), lo);
      const b = Math.min(dayOf(iso).getTime() + span, hi);
      return x(new Date((a + b) / 2));
    };
    const g = svg.append("g").attr("class", "series").attr("data-series", s.name);
    // A figure of several days (a week) holds over them: a step from its first day.
    const path = s.step
      ? d3.line().curve(d3.curveStepAfter).x((p) => p[0]).y((p) => y(p[1]))([
        ...s.points.map((p) => [x(new Date(Math.max(dayOf(p[0]).getTime(), lo))), p[1]]),
        ...s.points.slice(-1).map((p) => [x(new Date(Math.min(dayOf(p[0]).getTime() + span, hi))), p[1]]),
      ])
      : d3.line().defined((p) => p[1] != null).x((p) => at(p[0])).y((p) => y(p[1]))(s.points);
    g.append("path")
      .attr("class", `line${s.dashed ? " is-dashed" : ""}`)
      .attr("stroke", s.colour)
      .attr("d", path);
    if (s.points.length <= 150) {
      g.selectAll("circle").data(s.points.filter((p) => p[1] != null)).join("circle")
        .attr("r", 2.5).attr("fill", s.colour)
        .attr("cx", (p) => at(p[0])).attr("cy", (p) => y(p[1]))
        .append("title").text((p) => `${s.name}, ${fmtDay(dayOf(p[0]))}: ${yFormat(p[1])}`);
    }
  }
  return svg.node();
}

/** How many days one bar covers, for a range of `days`. */
export const binDays = (days) => (days <= 120 ? 1 : days <= 730 ? 7 : 30);

/**
 * Stacked bars over days. keys: [{key, name, colour}]; rows: [{day: iso, values: {key: n}}].
 * Days are summed into bins of binDays(range) days.
 */
export function barChart(root, { label, first, last, keys, rows, yFormat = fmtInt, height = 210 }) {
  const days = daysBetween(first, last);
  const step = binDays(days);
  const bins = new Map();
  for (const row of rows) {
    const offset = Math.floor((dayOf(row.day) - dayOf(first)) / DAY / step) * step;
    const start = addDays(first, offset);
    const bin = bins.get(start) || { day: start, values: {} };
    for (const [k, v] of Object.entries(row.values)) bin.values[k] = (bin.values[k] || 0) + v;
    bins.set(start, bin);
  }
  const data = [...bins.values()].sort((a, b) => (a.day < b.day ? -1 : 1));
  const totals = data.map((d) => keys.reduce((n, k) => n + (d.values[k.key] || 0), 0));
  if (!d3.max(totals)) return empty("Nothing in this range.");
  const { svg, width } = frame(root, label, height);
  const x = timeScale(first, last, width);
  const y = d3.scaleLinear().domain([0, d3.max(totals)]).nice()
    .range([height - MARGIN.bottom, MARGIN.top]);
  axes(svg, x, y, { width, height, days, yFormat });
  const stacked = d3.stack().keys(keys.map((k) => k.key))
    .value((d, key) => d.values[key] || 0)(data);
  const lastEnd = dayOf(last).getTime() + DAY;
  const x0 = (d) => x(dayOf(d.day));
  const x1 = (d) => x(new Date(Math.min(dayOf(d.day).getTime() + step * DAY, lastEnd)));
  const gap = (d) => Math.min(1, (x1(d) - x0(d)) * 0.15);
  const names = new Map(keys.map((k) => [k.key, k]));
  svg.append("g").attr("class", "bars").selectAll("g").data(stacked).join("g")
    .attr("fill", (layer) => names.get(layer.key).colour)
    .attr("data-key", (layer) => layer.key)
    .selectAll("rect")
    .data((layer) => layer.filter((seg) => seg[1] > seg[0]).map((seg) => ({ seg, key: layer.key })))
    .join("rect")
    .attr("x", ({ seg }) => x0(seg.data) + gap(seg.data))
    .attr("width", ({ seg }) => Math.max(1, x1(seg.data) - x0(seg.data) - 2 * gap(seg.data)))
    .attr("y", ({ seg }) => y(seg[1]))
    .attr("height", ({ seg }) => y(seg[0]) - y(seg[1]))
    .append("title")
    .text(({ seg, key }) => {
      const when = step === 1 ? fmtDay(dayOf(seg.data.day))
        : `${step} days from ${fmtDay(dayOf(seg.data.day))}`;
      return `${names.get(key).name}, ${when}: ${yFormat(seg[1] - seg[0])}`;
    });
  return svg.node();
}
