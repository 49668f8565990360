// The figure's legend: the colour scale of the heatmap (diverging, or sequential
// for a non-negative source such as a gate), a key to the line
// plot's marks (all cells, selected cells, threshold, range, off positions), and
// the shading of the tokens by how many selected cells are on.

import d3 from "../lib/d3.js";
import { rampOf } from "../core/palettes.js";
import { countShade } from "./tokens.js";

let gradientSeq = 0;

export function createLegend(root) {
  const id = `legend-grad-${++gradientSeq}`;
  let lastKey = null;
  return {
    update({ domain = [-1, 1], threshold, k = 0, selectedColour = "#E69F00" }) {
      const ramp = rampOf(domain);
      const key = `${ramp.lo}|${ramp.hi}|${threshold}|${k}|${selectedColour}`;
      if (key === lastKey) return;
      lastKey = key;
      const width = 200;
      const svg = d3.create("svg")
        .attr("class", "legend")
        .attr("width", width + 30)
        .attr("height", 40)
        .attr("role", "img")
        .attr("aria-label", `Heatmap colours ${ramp.describe(ramp.lo, ramp.hi)}`);
      const grad = svg.append("defs").append("linearGradient").attr("id", id);
      for (let i = 0; i <= 10; i++) {
        grad.append("stop").attr("offset", `${i * 10}%`).attr("stop-color", ramp.colour(i / 10));
      }
      const g = svg.append("g").attr("transform", "translate(12,4)");
      g.append("rect").attr("width", width).attr("height", 12).attr("fill", `url(#${id})`)
        .attr("stroke", "#888").attr("stroke-width", 0.5);
      const x = d3.scaleLinear().domain([ramp.lo, ramp.hi]).range([0, width]);
      g.append("g").attr("transform", "translate(0,12)")
        .call(d3.axisBottom(x).ticks(5).tickSizeOuter(0))
        .call((a) => a.select(".domain").remove());

      const keyEl = d3.create("div").attr("class", "legend-key");
      keyEl.append("span").attr("class", "key-line key-all").text("all cells");
      keyEl.append("span").attr("class", "key-line key-selected").style("--sel", selectedColour).text("selected cells");
      keyEl.append("span").attr("class", "key-line key-threshold").text(`threshold ${threshold}`);
      keyEl.append("span").attr("class", "key-box key-range").text("range");
      keyEl.append("span").attr("class", "key-box key-off").text("must be off");

      const counts = d3.create("div").attr("class", "legend-counts")
        .attr("aria-label", k ? `Tokens shaded by how many of the ${k} selected cells are on` : "Tokens are shaded once cells are selected");
      counts.append("span").attr("class", "muted").text("tokens: cells on");
      if (k) {
        const steps = Math.min(k, 6);
        const values = [...new Set(Array.from({ length: steps + 1 }, (_, i) => Math.round((i * k) / steps)))];
        for (const v of values) {
          const shade = countShade(v, k);
          counts.append("span").attr("class", "count-box")
            .style("background", shade ? shade.background : "#fff")
            .style("color", shade ? shade.color : "inherit")
            .text(v);
        }
        counts.append("span").attr("class", "muted").text(`of ${k}`);
      } else {
        counts.append("span").attr("class", "muted").text("(none selected)");
      }
      root.replaceChildren(svg.node(), keyEl.node(), counts.node());
      root.dataset.ready = "true";
    },
    destroy() { root.replaceChildren(); },
  };
}
