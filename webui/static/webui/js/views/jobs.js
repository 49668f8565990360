// The job list of a project: status, a progress bar, the message, the error of a
// failed job, a link to what a finished job made, and a cancel button while it runs.
// A training job also shows its learning curve, kept across redraws so that it
// grows in place as the job list is polled.

import { fmtDate, h } from "../core/format.js";
import { createCurvePlot } from "./curve.js";

export const ACTIVE = new Set(["queued", "running"]);

const KIND_LABEL = {
  import_lstmvis: "LSTMVis import",
  import_lstmvis_dir: "LSTMVis import (server directory)",
  corpus_upload: "Corpus upload",
  model_upload: "Model upload",
  extract: "State extraction",
  train: "Training",
  match: "Match",
};

function resultLinks(job, statesetBase) {
  const r = job.result || {};
  const links = [];
  if (r.stateset) links.push(h("a", { href: `${statesetBase}${r.stateset}/` }, "open the state set"));
  if (r.corpus) links.push(h("a", { href: "#data" }, "see it under Corpora"));
  if (r.model) links.push(h("a", { href: "#data" }, "see it under Models"));
  return links;
}

/** `empty`: what an empty list says ("" for nothing, e.g. the job slot of a form). */
export function createJobList(root, {
  onCancel, statesetBase = "/statesets/", canCancel = true,
  empty = "No jobs yet. Uploads and imports show their progress here.",
} = {}) {
  const curves = new Map(); // job id -> {el, view}

  function curveFor(job) {
    if (job.kind !== "train") return null;
    let c = curves.get(job.id);
    if (!c) {
      const el = h("div", {
        class: "job-curve", "data-testid": "training-curve", "data-ready": "false",
      });
      c = { el, view: createCurvePlot(el) };
      curves.set(job.id, c);
    }
    c.view.update((job.detail && job.detail.curve) || []);
    return c.el;
  }

  function row(job) {
    const active = ACTIVE.has(job.status);
    const pct = Math.round(Math.max(0, Math.min(1, job.progress || 0)) * 100);
    const bar = h("div", {
      class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100",
      "aria-valuenow": String(pct), "aria-label": `Progress of ${KIND_LABEL[job.kind] || job.kind}`,
    }, h("div", { class: "progress-fill", style: `width: ${pct}%` }));
    const cancel = active && canCancel
      ? h("button", {
        type: "button", class: "btn btn-small", "data-action": "cancel",
        onclick: (ev) => { ev.currentTarget.disabled = true; onCancel?.(job); },
      }, "Cancel")
      : null;
    return h("li", {
      class: `job job-${job.status}`, "data-job-id": job.id, "data-status": job.status,
    },
    h("div", { class: "job-head" },
      h("span", { class: "job-kind" }, KIND_LABEL[job.kind] || job.kind),
      h("span", { class: `badge badge-${job.status}`, "data-testid": "job-status" }, job.status),
      h("span", { class: "muted job-when" }, fmtDate(job.created_at),
        job.created_by ? ` · ${job.created_by}` : ""),
      cancel),
    bar,
    h("div", { class: "job-message" }, job.message || "", " ", ...resultLinks(job, statesetBase)),
    curveFor(job),
    job.status === "failed" && job.error
      ? h("div", { class: "job-error", role: "note", "data-testid": "job-error" }, job.error)
      : null);
  }

  return {
    update(jobs) {
      const listed = new Set(jobs.map((j) => j.id));
      for (const id of [...curves.keys()]) if (!listed.has(id)) curves.delete(id);
      const content = jobs.length ? h("ol", { class: "job-list" }, jobs.map(row))
        : empty ? h("p", { class: "muted" }, empty) : null;
      root.replaceChildren(...(content ? [content] : []));
      root.dataset.ready = "true";
      root.removeAttribute("aria-busy");
    },
    destroy() { root.replaceChildren(); },
  };
}
