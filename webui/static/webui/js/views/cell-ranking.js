// Cell ranking on the analysis page: rank every cell of the current source against
// an annotation track (AUROC for a label, Pearson for a scalar), see the best 20,
// and make the top N cells that rise with the track the selection in one click
// (like a hypothesis of a ranking's "top" cells: no range, only those cells).

import { isAbort } from "../core/api.js";
import { markBusy, markReady } from "../core/dom.js";
import { h } from "../core/format.js";
import { say } from "../core/forms.js";
import { postFollowed, progressBar } from "../core/jobs.js";
import { rankingFigure } from "./stat-charts.js";
import { createTrackPicker } from "./track-picker.js";

const RANKINGS = "/api/rankings/";
const SHOWN = 20;

/** The cells of a ranking that rise with its track, best first. */
export function risingCells(ranking) {
  const m = ranking.measure;
  const rises = (v) => v !== null && v !== undefined && (m === "auroc" ? v > 0.5 : v > 0);
  return (ranking.cells || []).filter((c) => rises(c[m])).map((c) => c.cell);
}

/**
 * root: an empty <section>. analysis: {stateset() -> info, spec() -> the current
 * spec, applySpec(spec) -> Promise}.
 */
export function createRanking(root, analysis) {
  let ranking = null;
  let follow = null;
  let tracksSet = false;

  const picker = createTrackPicker({ withThreshold: false });
  const source = h("span", { class: "meta ranking-source" });
  const rank = h("button", { type: "submit", class: "btn btn-primary" }, "Rank cells");
  const form = h("form", { class: "ranking-form", novalidate: true },
    h("p", { class: "hint" }, "Source: ", source), picker.el, rank);
  const progress = progressBar("Progress of the ranking");
  const status = h("div", { class: "form-status", role: "status", "aria-live": "polite" });
  const chart = h("div", { class: "ranking-result" });
  const topN = h("input", {
    type: "number", name: "top", min: "1", max: "1000", step: "1", value: "5", inputmode: "numeric", class: "narrow",
  });
  const use = h("button", { type: "button", class: "btn" }, "Use top 5 as selection");
  const useRow = h("div", { class: "use-top", hidden: true },
    h("label", { class: "field-inline" }, h("span", {}, "Top N"), topN), use);
  const hint = h("p", { class: "hint" });

  root.replaceChildren(h("h3", { id: "hyp-rank-h" }, "Cell ranking"), hint, form, progress.el, status, chart, useRow);
  root.setAttribute("aria-labelledby", "hyp-rank-h");
  markBusy(root); // until the page's state set is known

  const n = () => {
    const v = Number(topN.value);
    return Number.isInteger(v) && v >= 1 ? v : null;
  };
  topN.addEventListener("input", () => { use.textContent = `Use top ${n() ?? "N"} as selection`; });

  function sourceName(id) {
    const s = (analysis.stateset()?.sources || []).find((x) => x.id === id);
    return s ? `${s.name && s.name !== s.id ? s.name : `layer ${s.layer} ${s.kind}`} (${s.id}, ${s.cells} cells)` : id;
  }

  function show(r) {
    ranking = r;
    const what = r.label ? `${r.annotation} = ${r.label}` : r.annotation;
    chart.replaceChildren(
      h("p", { class: "meta" }, `${r.measure === "auroc" ? "AUROC" : "Pearson"} of each cell of ${r.source} with ${what} over ${r.n} tokens; the best ${Math.min(SHOWN, (r.cells || []).length)}:`),
      rankingFigure(r, { top: SHOWN }));
    useRow.hidden = false;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const spec = analysis.spec();
    const info = analysis.stateset();
    let body;
    try {
      body = { source: spec.source, ...picker.value() };
    } catch (err) {
      say(status, err.message, "error");
      return;
    }
    follow?.abort();
    const mine = new AbortController();
    follow = mine;
    rank.disabled = true;
    markBusy(root);
    say(status, "Ranking…");
    try {
      const r = await postFollowed(`/api/statesets/${info.id}/rankings/`, body, {
        resultUrl: (job) => `${RANKINGS}${job.result.ranking}/`,
        onProgress: progress.set, signal: mine.signal, key: "ranking",
      });
      if (follow !== mine) return;
      show(r);
      say(status, "");
    } catch (err) {
      if (!isAbort(err) && follow === mine) say(status, err.message, "error");
    } finally {
      if (follow === mine) {
        follow = null;
        progress.set(null);
        rank.disabled = false;
        markReady(root);
      }
    }
  });

  use.addEventListener("click", async () => {
    if (!ranking) return;
    const k = n();
    if (!k) { say(status, "Top N must be a whole number of at least 1.", "error"); return; }
    const cells = risingCells(ranking).slice(0, k);
    const what = ranking.label ? `${ranking.annotation} = ${ranking.label}` : ranking.annotation;
    if (!cells.length) { say(status, `No cell rises with ${what}.`, "error"); return; }
    use.disabled = true;
    markBusy(root);
    try {
      await analysis.applySpec({ source: ranking.source, start: null, end: null, cells });
      say(status, `Selected ${cells.length === 1 ? "cell" : "cells"} ${cells.join(", ")}: the top ${cells.length} that rise with ${what} (no range).`, "ok");
    } catch (err) {
      say(status, err.message, "error");
    } finally {
      use.disabled = false;
      markReady(root);
    }
  });

  return {
    /** The page's state set and current source changed (or were first known). */
    update(spec) {
      const info = analysis.stateset();
      if (!info) return;
      source.textContent = `${sourceName(spec.source)}, the one shown`;
      if (tracksSet) return;
      tracksSet = true;
      picker.setTracks(info.annotations || []);
      form.hidden = !picker.usable();
      hint.textContent = picker.usable()
        ? "Which cells follow an annotation track? Each cell is ranked over the whole corpus."
        : "This state set has no discrete or scalar annotation track to rank cells against.";
      markReady(root);
    },
  };
}
