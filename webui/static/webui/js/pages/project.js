// A project: its state sets and corpora, its jobs with live progress (polled about
// once a second while any job is queued or running), and the upload forms.

import { get, isAbort, post, postForm } from "../core/api.js";
import { bootData, fmtDate, fmtInt, h } from "../core/format.js";
import { ACTIVE, createJobList } from "../views/jobs.js";

const boot = bootData();
const POLL_MS = 1000;

const roots = {
  statesets: document.getElementById("statesets"),
  corpora: document.getElementById("corpora"),
  jobs: document.getElementById("jobs"),
};
const canWrite = boot.role === "owner" || boot.role === "editor";

let jobs = [];
let timer = null;

function ready(root) {
  root.dataset.ready = "true";
  root.removeAttribute("aria-busy");
}

function table(headers, rows) {
  return h("table", { class: "table" },
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows));
}

function renderProject(p) {
  document.getElementById("project-name").textContent = p.name;
  document.getElementById("project-description").textContent = p.description || "";
  roots.statesets.replaceChildren(p.statesets.length
    ? table(["Name", "Tokens", "Sources", "Origin", "Created"], p.statesets.map((s) => h("tr", {
      "data-id": s.id,
    },
    h("td", {}, h("a", { href: `${boot.statesetBase}${s.id}/` }, s.name)),
    h("td", { class: "num" }, fmtInt(s.length)),
    h("td", { class: "num" }, fmtInt(s.sources)),
    h("td", {}, s.origin || ""),
    h("td", {}, fmtDate(s.created_at)))))
    : h("p", { class: "muted empty" }, "No state sets yet. Import an LSTMVis project to add one."));
  ready(roots.statesets);
  roots.corpora.replaceChildren(p.corpora.length
    ? table(["Name", "Tokens", "Tokenisation", "Documents", "Created"], p.corpora.map((c) => h("tr", {
      "data-id": c.id,
    },
    h("td", {}, c.name),
    h("td", { class: "num" }, fmtInt(c.length)),
    h("td", {}, c.tokenization),
    h("td", { class: "num" }, fmtInt(c.documents)),
    h("td", {}, fmtDate(c.created_at)))))
    : h("p", { class: "muted empty" }, "No corpora yet. Upload a text file to add one."));
  ready(roots.corpora);
}

async function loadProject() {
  try {
    renderProject(await get(boot.api.project, { key: "project" }));
  } catch (err) {
    if (isAbort(err)) return;
    for (const r of [roots.statesets, roots.corpora]) {
      r.replaceChildren(h("p", { class: "alert alert-error", role: "alert" }, err.message));
      ready(r);
    }
  }
}

const jobList = createJobList(roots.jobs, {
  canCancel: canWrite,
  statesetBase: boot.statesetBase,
  async onCancel(job) {
    try {
      const updated = await post(`${boot.api.jobBase}${job.id}/cancel/`, {});
      mergeJobs([updated]);
    } catch (err) {
      showJobsError(err.message);
    }
    pollNow();
  },
});

function showJobsError(message) {
  let el = document.getElementById("jobs-error");
  if (!el) {
    el = h("p", { id: "jobs-error", class: "alert alert-error", role: "alert" });
    roots.jobs.before(el);
  }
  el.textContent = message;
}

function mergeJobs(incoming) {
  const byId = new Map(jobs.map((j) => [j.id, j]));
  let finished = false;
  for (const j of incoming) {
    const before = byId.get(j.id);
    if (before && ACTIVE.has(before.status) && j.status === "succeeded") finished = true;
    byId.set(j.id, j);
  }
  jobs = [...byId.values()].sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
  jobList.update(jobs);
  return finished;
}

async function poll() {
  timer = null;
  try {
    const fresh = await get(boot.api.jobs, { key: "jobs" });
    const known = new Map(jobs.map((j) => [j.id, j]));
    const finished = fresh.some((j) => {
      const before = known.get(j.id);
      return before && ACTIVE.has(before.status) && j.status === "succeeded";
    });
    jobs = fresh;
    jobList.update(jobs);
    document.getElementById("jobs-error")?.remove();
    if (finished) await loadProject();
  } catch (err) {
    if (isAbort(err)) return;
    showJobsError(`Job status could not be refreshed: ${err.message}`);
  }
  schedule();
}

function schedule() {
  if (timer !== null) return;
  if (jobs.some((j) => ACTIVE.has(j.status))) timer = setTimeout(poll, POLL_MS);
}

function pollNow() {
  if (timer !== null) clearTimeout(timer);
  timer = null;
  poll();
}

function wireUpload(form, url, build) {
  if (!form) return;
  const status = form.querySelector(".form-status");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = form.elements.file.files[0];
    if (!file) {
      status.className = "form-status error";
      status.textContent = "Choose a file first.";
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    status.className = "form-status";
    status.textContent = `Uploading ${file.name}…`;
    try {
      const answer = await postForm(url, build(form, file));
      mergeJobs([answer.job]);
      status.className = "form-status ok";
      status.textContent = `Uploaded ${file.name}; the job is listed under Jobs.`;
      form.reset();
      pollNow();
    } catch (err) {
      status.className = "form-status error";
      status.textContent = err.message;
    } finally {
      button.disabled = false;
    }
  });
}

wireUpload(document.getElementById("import-form"), boot.api.imports, (form, file) => {
  const fd = new FormData();
  fd.append("file", file);
  return fd;
});

wireUpload(document.getElementById("corpus-form"), boot.api.corpora, (form, file) => {
  const fd = new FormData();
  fd.append("file", file);
  fd.append("tokenization", form.elements.tokenization.value || "word");
  const name = form.elements.name.value.trim();
  if (name) fd.append("name", name);
  return fd;
});

loadProject();
poll();
