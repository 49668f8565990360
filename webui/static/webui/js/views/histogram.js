// Length histograms of a match: how many candidates of each length the whole
// corpus has (strict: every selected cell on throughout and off where the
// constraints say; fuzzy: at least half of them on). A bar is a button: it
// filters the hits to that length (pressed again, it clears the filter).
// Emits "lengthfilter" {length | null} on its root.

import d3 from "../lib/d3.js";
import { fmtInt } from "../core/format.js";

const MAX_BARS = 60;

function chart(title, pairs, lengths, selected, onPick) {
  const counts = new Map(pairs);
  const width = Math.max(220, Math.min(560, lengths.length * 14 + 50));
  const height = 120;
  const m = { top: 18, right: 6, bottom: 22, left: 42 };
  const x = d3.scaleBand().domain(lengths).range([m.left, width - m.right]).padding(0.15);
  const max = d3.max(lengths, (l) => counts.get(l) || 0) || 1;
  const y = d3.scaleSqrt().domain([0, max]).range([height - m.bottom, m.top]).nice();
  const svg = d3.create("svg").attr("class", "histogram").attr("width", width).attr("height", height)
    .attr("role", "group").attr("aria-label", `${title} length histogram`);
  svg.append("text").attr("class", "hist-title").attr("x", m.left).attr("y", 11).text(title);
  svg.append("g").attr("class", "axis").attr("transform", `translate(${m.left},0)`)
    .call(d3.axisLeft(y).ticks(3).tickFormat((v) => (v === 0 ? "0" : d3.format("~s")(v))));
  const every = Math.ceil(lengths.length / 15);
  svg.append("g").attr("class", "axis").attr("transform", `translate(0,${height - m.bottom})`)
    .call(d3.axisBottom(x).tickValues(lengths.filter((_, i) => i % every === 0)).tickSizeOuter(0));
  const bars = svg.append("g").selectAll("g").data(lengths).join("g")
    .attr("class", (l) => `bar${l === selected ? " is-selected" : ""}`)
    .attr("data-length", (l) => l)
    .attr("role", "button")
    .attr("tabindex", 0)
    .attr("aria-pressed", (l) => String(l === selected))
    .attr("aria-label", (l) => `Length ${l}: ${fmtInt(counts.get(l) || 0)} ${title.toLowerCase()}` +
      (l === selected ? " (filter on; press to clear)" : " (press to show only hits of this length)"))
    .on("click", (event, l) => onPick(l === selected ? null : l))
    .on("keydown", (event, l) => {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); onPick(l === selected ? null : l); }
    });
  bars.append("rect").attr("class", "bar-hit")
    .attr("x", (l) => x(l) - x.step() * x.padding() / 2).attr("width", x.step())
    .attr("y", m.top).attr("height", height - m.bottom - m.top);
  bars.append("rect").attr("class", "bar-fill")
    .attr("x", (l) => x(l)).attr("width", x.bandwidth())
    .attr("y", (l) => y(counts.get(l) || 0))
    .attr("height", (l) => (height - m.bottom) - y(counts.get(l) || 0));
  bars.append("title").text((l) => `length ${l}: ${fmtInt(counts.get(l) || 0)}`);
  return svg.node();
}

export function createHistograms(root) {
  root.classList.add("histograms");
  return {
    /** p: {strict [[len, count]], fuzzy [[len, count]], selected length | null, minLength, maxLength} */
    update(p) {
      const all = new Set([...p.strict.map((d) => d[0]), ...p.fuzzy.map((d) => d[0])]);
      if (p.selected !== null && p.selected !== undefined) all.add(p.selected);
      let lengths = [...all].sort((a, b) => a - b);
      let note = "";
      if (lengths.length > MAX_BARS) {
        const cut = lengths[MAX_BARS - 1];
        const rest = lengths.filter((l) => l > cut);
        lengths = lengths.slice(0, MAX_BARS);
        if (p.selected !== null && p.selected > cut) lengths.push(p.selected);
        note = `${rest.length} longer lengths (up to ${fmtInt(rest[rest.length - 1])}) are not drawn.`;
      }
      const pick = (length) => root.dispatchEvent(new CustomEvent("lengthfilter", { bubbles: true, detail: { length } }));
      const kids = [];
      if (!lengths.length) {
        kids.push(d3.create("p").attr("class", "muted").text("No candidates of any length.").node());
      } else {
        kids.push(chart("Strict", p.strict, lengths, p.selected, pick));
        kids.push(chart("Fuzzy", p.fuzzy, lengths, p.selected, pick));
      }
      if (note) kids.push(d3.create("p").attr("class", "hint").text(note).node());
      root.replaceChildren(...kids);
    },
  };
}
