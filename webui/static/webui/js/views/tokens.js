// The token strip under the plot: one box per position, aligned with the plot's
// columns. Tokens are shaded by how many selected cells are on (value >= threshold);
// the cursor token is outlined. Narrow columns turn the labels vertical. A token
// where a stream starts (the state is zero there) gets a marked left edge.

import { h, showToken } from "../core/format.js";
import { sequential } from "../core/palettes.js";

export function countOn(data, cells, threshold) {
  const n = data.tokens.length;
  const counts = new Array(n).fill(0);
  for (const cell of cells) {
    const i = data.cells.indexOf(cell);
    if (i < 0) continue;
    const row = data.values[i];
    for (let t = 0; t < n; t++) if (row[t] >= threshold) counts[t] += 1;
  }
  return counts;
}

export function createTokenStrip(root) {
  root.classList.add("tokens");
  return {
    update(data, state, layout, cursor, streamStarts = []) {
      const starts = new Set(streamStarts);
      const counts = countOn(data, state.cells, state.threshold);
      const k = state.cells.length;
      const vertical = layout.colW < 34;
      const strip = h("ol", {
        class: `token-strip${vertical ? " vertical" : ""}`,
        style: `margin-left: ${layout.left}px; width: ${layout.width}px`,
        "aria-label": `Tokens ${data.start} to ${data.end}`,
      });
      data.tokens.forEach((tok, i) => {
        const pos = data.start + i;
        const on = counts[i];
        const style = [`width: ${layout.colW}px`];
        if (k && on) {
          style.push(`background: ${sequential(0.35 + 0.65 * (on / k))}`);
          style.push(on / k > 0.5 ? "color: #111" : "color: #fff");
        }
        const start = starts.has(pos);
        strip.append(h("li", {
          class: `token${cursor && cursor.t === i ? " is-cursor" : ""}${k && on ? " is-on" : ""}${start ? " is-stream-start" : ""}`,
          style: style.join("; "),
          title: `${pos}: ${JSON.stringify(tok)}${k ? ` · ${on} of ${k} selected cells on` : ""}` +
            (start ? " · stream start: state is zero here" : ""),
          "data-pos": String(pos),
          "data-token": tok,
          "data-on": String(on),
        }, h("span", {}, showToken(tok))));
      });
      root.replaceChildren(strip);
      root.dataset.ready = "true";
    },
    destroy() { root.replaceChildren(); },
  };
}
