// The statistics of the open hypothesis version against an annotation track:
// choose the track (a label, or a threshold for a scalar track), compute (a job,
// followed with its progress), and see agreement, enrichment and robustness drawn,
// with the CSV. The statistics already computed for the version are listed.

import { get, isAbort, withQuery } from "../core/api.js";
import { markBusy, markReady } from "../core/dom.js";
import { fmtDate, fmtInt, h } from "../core/format.js";
import { say } from "../core/forms.js";
import { postFollowed, progressBar } from "../core/jobs.js";
import { agreementFigure, enrichmentFigure, fmtNum, robustnessFigure } from "./stat-charts.js";
import { createTrackPicker } from "./track-picker.js";

const HYPOTHESES = "/api/hypotheses/";
const STATISTICS = "/api/statistics/";

function describe(s) {
  return s.label !== null && s.label !== undefined ? `${s.annotation} = ${s.label}` : `${s.annotation} ≥ ${s.threshold}`;
}

/** root: an empty <section>; it gets its heading, form, list and result. */
export function createStatistics(root) {
  let hyp = null;
  let link = null;
  let shownId = null;
  let follow = null; // AbortController of the job being followed

  const picker = createTrackPicker({ withThreshold: true });
  const compute = h("button", { type: "submit", class: "btn btn-primary" }, "Compute statistics");
  const form = h("form", { class: "stats-form", novalidate: true }, picker.el, compute);
  const progress = progressBar("Progress of the statistics");
  const status = h("div", { class: "form-status", role: "status", "aria-live": "polite" });
  const hint = h("p", { class: "hint" });
  const earlier = h("ul", { class: "stats-list", "aria-label": "Computed statistics" });
  const result = h("div", { class: "stats-result", "data-testid": "statistics-result" });

  root.replaceChildren(
    h("h3", { id: "hyp-stats-h" }, "Statistics"),
    hint, form, progress.el, status, earlier, result);
  root.setAttribute("aria-labelledby", "hyp-stats-h");
  markBusy(root); // until the panel says which version (if any) is open

  const q = (url, params = {}) => withQuery(url, { ...params, link });

  function showResult(stats) {
    shownId = stats.id;
    const r = stats.robustness || {};
    result.replaceChildren(
      h("div", { class: "stats-head" },
        h("strong", {}, describe(stats)),
        h("span", { class: "meta" },
          ` · version ${stats.version} · ${fmtInt(stats.ranges)} matched range${stats.ranges === 1 ? "" : "s"}, ${fmtInt(stats.inside_tokens)} tokens inside`),
        h("a", { class: "btn btn-small", href: q(`${STATISTICS}${stats.id}/export/`, { format: "csv" }), download: "" }, "Download CSV")),
      h("div", { class: "stats-blocks" },
        h("figure", { class: "stats-block" },
          h("h4", {}, "Agreement"),
          h("figcaption", { class: "hint" }, "Tokens where every cell is on (runs of the minimum length) against the track."),
          agreementFigure(stats)),
        h("figure", { class: "stats-block" },
          h("h4", {}, "Enrichment"),
          h("figcaption", { class: "hint" }, "Lift of each label inside the matched ranges; q is Benjamini–Hochberg."),
          enrichmentFigure(stats)),
        h("figure", { class: "stats-block" },
          h("h4", {}, "Robustness"),
          h("figcaption", { class: "hint" },
            `Jaccard of the positions of the top ${r.top_k ?? ""} hits with the threshold moved ±${r.delta ?? ""} and with each cell left out; lowest ${fmtNum(r.min_jaccard)}.`),
          robustnessFigure(stats))));
    for (const li of earlier.children) li.classList.toggle("is-current", li.dataset.id === stats.id);
  }

  async function open(id) {
    markBusy(root);
    try {
      showResult(await get(q(`${STATISTICS}${id}/`), { key: "stats-detail" }));
      say(status, "");
    } catch (err) {
      if (!isAbort(err)) say(status, err.message, "error");
    }
    markReady(root);
  }

  async function list({ show = false } = {}) {
    if (!hyp) return;
    const rows = await get(q(`${HYPOTHESES}${hyp.id}/statistics/`, { version: hyp.version }), { key: "stats-list" });
    earlier.replaceChildren(...rows.map((s) => h("li", { "data-id": s.id, class: s.id === shownId ? "is-current" : "" },
      h("button", { type: "button", class: "btn btn-small btn-quiet", onclick: () => open(s.id) }, describe(s)),
      h("span", { class: "meta" }, ` ${fmtDate(s.created_at)}${s.created_by ? ` · ${s.created_by}` : ""}`))));
    earlier.hidden = rows.length === 0;
    if (show && rows.length && !shownId) showResult(rows[0]);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!hyp) return;
    let body;
    try {
      body = { ...picker.value(), version: hyp.version };
    } catch (err) {
      say(status, err.message, "error");
      return;
    }
    follow?.abort();
    const mine = new AbortController();
    follow = mine;
    compute.disabled = true;
    markBusy(root);
    say(status, "Computing…");
    try {
      const stats = await postFollowed(q(`${HYPOTHESES}${hyp.id}/statistics/`), body, {
        resultUrl: (job) => q(`${STATISTICS}${job.result.statistics}/`),
        onProgress: progress.set, signal: mine.signal, key: "stats",
      });
      if (follow !== mine) return;
      showResult(stats);
      say(status, "");
      await list();
    } catch (err) {
      if (!isAbort(err) && follow === mine) say(status, err.message, "error");
    } finally {
      if (follow === mine) {
        follow = null;
        progress.set(null);
        compute.disabled = false;
        markReady(root);
      }
    }
  });

  return {
    /** The version the statistics are of (null: none saved yet). */
    async setVersion(version, linkToken = null) {
      const same = hyp && version && hyp.id === version.id && hyp.version === version.version;
      hyp = version;
      link = linkToken;
      if (same) return;
      follow?.abort();
      follow = null;
      progress.set(null);
      compute.disabled = false;
      shownId = null;
      result.replaceChildren();
      earlier.replaceChildren();
      earlier.hidden = true;
      say(status, "");
      picker.setTracks(version ? version.stateset_info?.annotations : []);
      form.hidden = !version || !picker.usable();
      hint.textContent = !version
        ? "Save the hypothesis to test it against an annotation track."
        : picker.usable()
          ? `How version ${version.version} agrees with a track over the whole corpus.`
          : "This state set has no discrete or scalar annotation track to test against.";
      if (!version) { markReady(root); return; }
      markBusy(root);
      try {
        await list({ show: true });
      } catch (err) {
        if (!isAbort(err)) say(status, err.message, "error");
      }
      markReady(root);
    },
  };
}
