// A training job's learning curve: loss over training steps, training points as a
// thin line and validation points as a line with dots, redrawn as points arrive.
// A few thousand points at most (the server thins them), so SVG is enough. The
// y axis is the loss (cross-entropy per token, nats); the legend gives the latest
// perplexity of each split, exp(loss).

import d3 from "../lib/d3.js";

const WIDTH = 420;
const HEIGHT = 170;
const M = { top: 10, right: 12, bottom: 28, left: 44 };
const SERIES = [
  { split: "train", label: "training", colour: "#0072B2", dots: false },
  { split: "valid", label: "validation", colour: "#E69F00", dots: true },
];

function fmtPpl(p) {
  if (p === null || p === undefined || !Number.isFinite(p)) return "–";
  return p >= 100 ? p.toFixed(0) : p.toFixed(2);
}

export function createCurvePlot(root) {
  root.classList.add("curve");
  const svg = d3.select(root).append("svg")
    .attr("viewBox", `0 0 ${WIDTH} ${HEIGHT}`)
    .attr("width", WIDTH).attr("height", HEIGHT)
    .attr("role", "img");
  const plot = svg.append("g").attr("transform", `translate(${M.left},${M.top})`);
  const xAxis = plot.append("g").attr("class", "axis x");
  const yAxis = plot.append("g").attr("class", "axis y");
  const xLabel = svg.append("text").attr("class", "axis-label")
    .attr("x", M.left + (WIDTH - M.left - M.right) / 2).attr("y", HEIGHT - 2)
    .attr("text-anchor", "middle").text("step");
  svg.append("text").attr("class", "axis-label")
    .attr("transform", `translate(11,${M.top + (HEIGHT - M.top - M.bottom) / 2}) rotate(-90)`)
    .attr("text-anchor", "middle").text("loss");
  const lines = plot.append("g");
  const legend = d3.select(root).append("p").attr("class", "curve-legend");
  const innerW = WIDTH - M.left - M.right;
  const innerH = HEIGHT - M.top - M.bottom;

  return {
    /** curve: [{step, epoch, tokens, loss, perplexity, split}, ...] */
    update(curve) {
      const points = (curve || []).filter((p) => Number.isFinite(p.loss) && Number.isFinite(p.step));
      root.dataset.points = String(points.length);
      const bySplit = new Map(SERIES.map((s) => [s.split, points.filter((p) => p.split === s.split)]));
      const x = d3.scaleLinear()
        .domain(points.length ? d3.extent(points, (p) => p.step) : [0, 1]).range([0, innerW]);
      if (x.domain()[0] === x.domain()[1]) x.domain([x.domain()[0], x.domain()[0] + 1]);
      const y = d3.scaleLinear()
        .domain(points.length ? d3.extent(points, (p) => p.loss) : [0, 1]).nice().range([innerH, 0]);
      xAxis.attr("transform", `translate(0,${innerH})`).call(d3.axisBottom(x).ticks(5).tickSizeOuter(0));
      yAxis.call(d3.axisLeft(y).ticks(4));
      xLabel.text(points.some((p) => p.epoch !== undefined) ? "step (training batches)" : "step");
      const line = d3.line().x((p) => x(p.step)).y((p) => y(p.loss));
      lines.selectAll("g.series").data(SERIES, (s) => s.split).join(
        (enter) => {
          const g = enter.append("g").attr("class", (s) => `series series-${s.split}`);
          g.append("path").attr("fill", "none").attr("stroke", (s) => s.colour)
            .attr("stroke-width", (s) => (s.dots ? 2 : 1.25));
          return g;
        },
      ).each(function draw(s) {
        const data = bySplit.get(s.split);
        const g = d3.select(this);
        g.select("path").attr("d", data.length ? line(data) : null);
        g.selectAll("circle").data(s.dots ? data : []).join("circle")
          .attr("r", 3).attr("fill", s.colour).attr("cx", (p) => x(p.step)).attr("cy", (p) => y(p.loss))
          .selectAll("title").data((p) => [p]).join("title")
          .text((p) => `${s.label} after step ${p.step}: loss ${p.loss.toFixed(3)}, perplexity ${fmtPpl(p.perplexity)}`);
      });
      legend.selectAll("span.key").data(SERIES, (s) => s.split).join("span")
        .attr("class", (s) => `key key-${s.split}`)
        .attr("data-split", (s) => s.split)
        .each(function key(s) {
          const last = bySplit.get(s.split).at(-1);
          d3.select(this).selectAll("*").remove();
          d3.select(this).append("span").attr("class", "swatch").attr("aria-hidden", "true")
            .style("background", s.colour);
          d3.select(this).append("span").text(` ${s.label}: ${last ? `perplexity ${fmtPpl(last.perplexity)}` : "no points yet"}`);
        });
      const last = points.at(-1);
      svg.attr("aria-label", points.length
        ? `Learning curve, ${points.length} points; latest ${last.split} loss ${last.loss.toFixed(3)} at step ${last.step}`
        : "Learning curve: no points yet");
      root.dataset.ready = "true";
    },
    destroy() { root.replaceChildren(); },
  };
}
