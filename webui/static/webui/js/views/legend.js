// A colour legend for the diverging palette plus a key to the line plot's marks.

import d3 from "../lib/d3.js";
import { diverging } from "../core/palettes.js";

let gradientSeq = 0;

export function createLegend(root) {
  const id = `legend-grad-${++gradientSeq}`;
  return {
    update({ extent = 1, threshold }) {
      const width = 220;
      const svg = d3.create("svg")
        .attr("class", "legend")
        .attr("width", width + 30)
        .attr("height", 40)
        .attr("role", "img")
        .attr("aria-label", `Colour scale from ${-extent} (blue) through 0 (white) to ${extent} (red)`);
      const grad = svg.append("defs").append("linearGradient").attr("id", id);
      for (let i = 0; i <= 10; i++) {
        grad.append("stop").attr("offset", `${i * 10}%`).attr("stop-color", diverging(i / 10));
      }
      const g = svg.append("g").attr("transform", "translate(12,4)");
      g.append("rect").attr("width", width).attr("height", 12).attr("fill", `url(#${id})`)
        .attr("stroke", "#888").attr("stroke-width", 0.5);
      const x = d3.scaleLinear().domain([-extent, extent]).range([0, width]);
      g.append("g").attr("transform", "translate(0,12)")
        .call(d3.axisBottom(x).ticks(5).tickSizeOuter(0))
        .call((a) => a.select(".domain").remove());

      const key = d3.create("div").attr("class", "legend-key");
      key.append("span").attr("class", "key-line key-all").text("all cells");
      key.append("span").attr("class", "key-line key-selected").text("selected cells");
      key.append("span").attr("class", "key-line key-threshold").text(`threshold ${threshold}`);
      root.replaceChildren(svg.node(), key.node());
      root.dataset.ready = "true";
    },
    destroy() { root.replaceChildren(); },
  };
}
