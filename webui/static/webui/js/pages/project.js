// A project: its state sets, corpora and models (which editors and owners may
// delete), its jobs with live progress (polled about once a second while any job is
// queued or running; a training job shows its learning curve), its members (which
// owners manage), and the forms to upload, import, extract and train.

import { del, get, isAbort, post, postForm } from "../core/api.js";
import { bootData, fmtDate, fmtInt, h } from "../core/format.js";
import { ACTIVE, createJobList } from "../views/jobs.js";

const boot = bootData();
const POLL_MS = 1000;

const roots = {
  statesets: document.getElementById("statesets"),
  corpora: document.getElementById("corpora"),
  models: document.getElementById("models"),
  jobs: document.getElementById("jobs"),
  members: document.getElementById("members"),
};
const canWrite = boot.role === "owner" || boot.role === "editor";
const isOwner = boot.role === "owner";
const ROLES = ["viewer", "editor", "owner"];

let jobs = [];
let timer = null;
let project = null;

function ready(root) {
  root.dataset.ready = "true";
  root.removeAttribute("aria-busy");
}

function busy(root) {
  root.dataset.ready = "false";
  root.setAttribute("aria-busy", "true");
}

function table(headers, rows) {
  return h("table", { class: "table" },
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows));
}

/** A form-status line: kind is "", "ok" or "error"; an empty message hides it. */
function say(el, message, kind = "") {
  el.className = kind ? `form-status ${kind}` : "form-status";
  el.textContent = message;
}

/** An error shown above a list; it outlives the list being redrawn. */
function showError(root, message) {
  const id = `${root.id}-error`;
  let el = document.getElementById(id);
  if (!el) {
    el = h("p", { id, class: "alert alert-error", role: "alert" });
    root.before(el);
  }
  el.textContent = message;
}

function clearError(root) {
  document.getElementById(`${root.id}-error`)?.remove();
}

const actionsHeader = () => h("span", { class: "sr-only" }, "Actions");

function deleteCell(label, onClick) {
  return h("td", { class: "actions" }, h("button", {
    type: "button", class: "btn btn-small btn-danger", "data-action": "delete",
    "aria-label": label, onclick: onClick,
  }, "Delete"));
}

/** Ask, delete through the API, then redraw the project's lists. */
async function deleteItem(root, button, { url, what, name }) {
  if (!window.confirm(`Delete the ${what} "${name}"? This cannot be undone.`)) return;
  button.disabled = true;
  clearError(root);
  busy(root);
  try {
    await del(url);
  } catch (err) {
    showError(root, err.message);
  }
  await loadProject();
}

function renderProject(p) {
  document.getElementById("project-name").textContent = p.name;
  document.getElementById("project-description").textContent = p.description || "";
  roots.statesets.replaceChildren(p.statesets.length
    ? table([
      "Name", "Tokens", "Sources", "Origin", "Created", canWrite ? actionsHeader() : null,
    ].filter(Boolean), p.statesets.map((s) => h("tr", {
      "data-id": s.id,
    },
    h("td", {}, h("a", { href: `${boot.statesetBase}${s.id}/` }, s.name)),
    h("td", { class: "num" }, fmtInt(s.length)),
    h("td", { class: "num" }, fmtInt(s.sources)),
    h("td", {}, s.origin || ""),
    h("td", {}, fmtDate(s.created_at)),
    canWrite ? deleteCell(`Delete state set ${s.name}`, (ev) => deleteItem(roots.statesets,
      ev.currentTarget, { url: `${boot.api.statesetBase}${s.id}/`, what: "state set", name: s.name }))
      : null)))
    : h("p", { class: "muted empty" }, "No state sets yet. Import an LSTMVis project to add one."));
  ready(roots.statesets);
  roots.corpora.replaceChildren(p.corpora.length
    ? table([
      "Name", "Tokens", "Tokenisation", "Documents", "Created", canWrite ? actionsHeader() : null,
    ].filter(Boolean), p.corpora.map((c) => h("tr", {
      "data-id": c.id,
    },
    h("td", {}, c.name),
    h("td", { class: "num" }, fmtInt(c.length)),
    h("td", {}, c.tokenization),
    h("td", { class: "num" }, fmtInt(c.documents)),
    h("td", {}, fmtDate(c.created_at)),
    canWrite ? deleteCell(`Delete corpus ${c.name}`, (ev) => deleteItem(roots.corpora,
      ev.currentTarget, { url: `${boot.api.corpusBase}${c.id}/`, what: "corpus", name: c.name }))
      : null)))
    : h("p", { class: "muted empty" }, "No corpora yet. Upload a text file to add one."));
  ready(roots.corpora);
  renderModels(p.models || []);
  fillChoices(p);
}

function specText(m) {
  const sp = m.spec || {};
  const parts = [`${sp.layers ?? m.layers} × ${sp.hidden_size ?? m.hidden_size}`];
  if (sp.embedding_size !== undefined) parts.push(`embedding ${sp.embedding_size}`);
  if (sp.tied) parts.push("tied");
  return parts.join(" · ");
}

function renderModels(models) {
  roots.models.replaceChildren(models.length
    ? table([
      "Name", "Type", "Layers × cells", "Vocabulary", "Origin", "Created",
      canWrite ? actionsHeader() : null,
    ].filter(Boolean), models.map((m) => h("tr", {
      "data-id": m.id,
    },
    h("td", {}, m.name),
    h("td", {}, m.rnn_type),
    h("td", { class: "spec", title: JSON.stringify(m.spec || {}) }, specText(m)),
    h("td", { class: "num" }, fmtInt(m.vocab_size)),
    h("td", {}, m.origin === "training" ? "trained here" : "uploaded"),
    h("td", {}, fmtDate(m.created_at)),
    canWrite ? deleteCell(`Delete model ${m.name}`, (ev) => deleteItem(roots.models,
      ev.currentTarget, { url: `${boot.api.modelBase}${m.id}/`, what: "model", name: m.name }))
      : null)))
    : h("p", { class: "muted empty" }, "No models yet. Upload one or train one on a corpus."));
  ready(roots.models);
}

/** Keep the model and corpus selects of the extraction and training forms current. */
function fillChoices(p) {
  project = p;
  const fill = (select, items, label, empty) => {
    if (!select) return;
    const before = select.value;
    select.replaceChildren(...(items.length
      ? items.map((it) => h("option", { value: it.id, selected: it.id === before }, label(it)))
      : [h("option", { value: "" }, empty)]));
    select.disabled = !items.length;
  };
  const models = p.models || [];
  const corpusLabel = (c) => `${c.name} (${fmtInt(c.length)} tokens, ${c.tokenization})`;
  const ex = document.getElementById("extract-form");
  if (ex) {
    fill(ex.elements.model, models, (m) => `${m.name} (${m.rnn_type} ${specText(m)})`, "no models yet");
    fill(ex.elements.corpus, p.corpora, corpusLabel, "no corpora yet");
    syncValueChoices();
  }
  const tr = document.getElementById("train-form");
  if (tr) fill(tr.elements.corpus, p.corpora, corpusLabel, "no corpora yet");
}

/** Which values the chosen model has: c only for an LSTM, gates for LSTM and GRU. */
function syncValueChoices() {
  const ex = document.getElementById("extract-form");
  if (!ex || !project) return;
  const m = (project.models || []).find((x) => x.id === ex.elements.model.value);
  const allowed = !m ? ["h", "c", "gates"]
    : m.rnn_type === "LSTM" ? ["h", "c", "gates"] : m.rnn_type === "GRU" ? ["h", "gates"] : ["h"];
  for (const box of ex.querySelectorAll('input[name="values"]')) {
    const ok = allowed.includes(box.value);
    box.disabled = !ok;
    if (!ok) box.checked = false;
  }
  // Predictions are tokens of the model's vocabulary: at most that many.
  const topk = ex.elements.topk;
  const most = Math.min(100, m ? m.vocab_size : 100);
  topk.max = String(most);
  if (Number(topk.value) > most) topk.value = String(most);
}

async function loadProject() {
  try {
    renderProject(await get(boot.api.project, { key: "project" }));
  } catch (err) {
    if (isAbort(err)) return;
    for (const r of [roots.statesets, roots.corpora, roots.models]) {
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
  showError(roots.jobs, message);
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
    clearError(roots.jobs);
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

// Models: the upload answers at once (the server checks the files in the request);
// extraction and training start jobs that show under Jobs.

function wireForm(form, submit) {
  if (!form) return;
  const status = form.querySelector(".form-status");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    say(status, "Sending…");
    try {
      const message = await submit(form);
      say(status, message, "ok");
    } catch (err) {
      say(status, err.message, "error");
    } finally {
      button.disabled = false;
    }
  });
}

function problem(message) {
  const err = new Error(message);
  err.name = "FormProblem";
  return err;
}

/** A number field: undefined when empty, else a number (or a problem). */
function numberField(form, name, label, { integer = true } = {}) {
  const raw = form.elements[name].value.trim();
  if (!raw) return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw problem(`${label} must be ${integer ? "a whole number" : "a number"}.`);
  }
  return value;
}

wireForm(document.getElementById("model-form"), async (form) => {
  const weights = form.elements.weights.files[0];
  const vocab = form.elements.vocab.files[0];
  if (!weights || !vocab) throw problem("Choose the weights file and the vocabulary file.");
  const fd = new FormData();
  fd.append("weights", weights);
  fd.append("vocab", vocab);
  const config = form.elements.config.files[0];
  if (config) fd.append("config", config);
  const name = form.elements.name.value.trim();
  if (name) fd.append("name", name);
  if (form.elements.rnn_type.value) fd.append("rnn_type", form.elements.rnn_type.value);
  say(form.querySelector(".form-status"), `Uploading and checking ${weights.name}…`);
  const model = await postForm(boot.api.models, fd);
  form.reset();
  busy(roots.models);
  await loadProject();
  return `Stored ${model.name}: ${model.rnn_type} ${specText(model)}, vocabulary of ${fmtInt(model.vocab_size)}.`;
});

const extractForm = document.getElementById("extract-form");
extractForm?.elements.model.addEventListener("change", syncValueChoices);

wireForm(extractForm, async (form) => {
  const model = form.elements.model.value;
  const corpus = form.elements.corpus.value;
  if (!model || !corpus) throw problem("Choose a model and a corpus (upload them first).");
  const values = [...form.querySelectorAll('input[name="values"]:checked')].map((b) => b.value);
  if (!values.length) throw problem("Choose at least one kind of value to extract.");
  const body = { model, corpus, values, surprisal: form.elements.surprisal.checked };
  const topk = numberField(form, "topk", "Top-k");
  if (topk !== undefined) body.topk = topk;
  const name = form.elements.name.value.trim();
  if (name) body.name = name;
  const answer = await post(boot.api.extractions, body);
  mergeJobs([answer.job]);
  pollNow();
  return "Extraction started; it is listed under Jobs.";
});

wireForm(document.getElementById("train-form"), async (form) => {
  const corpus = form.elements.corpus.value;
  if (!corpus) throw problem("Choose a corpus to train on (upload one first).");
  const body = { corpus, rnn_type: form.elements.rnn_type.value };
  const fields = [
    ["layers", "Layers"], ["hidden_size", "Hidden size"], ["embedding_size", "Embedding size"],
    ["epochs", "Epochs"], ["seq_len", "Sequence length"], ["batch_size", "Batch size"],
  ];
  for (const [key, label] of fields) {
    const v = numberField(form, key, label);
    if (v !== undefined) body[key] = v;
  }
  const lr = numberField(form, "learning_rate", "Learning rate", { integer: false });
  if (lr !== undefined) body.learning_rate = lr;
  const name = form.elements.name.value.trim();
  if (name) body.name = name;
  const answer = await post(boot.api.trainings, body);
  mergeJobs([answer.job]);
  pollNow();
  return "Training started; its curve shows under Jobs.";
});

// Members: everyone sees the list; owners get a role select and a remove button per
// row and the form to add a member. A change to the caller's own role reloads the
// page, since what it offers depends on that role.

const memberStatus = document.getElementById("members-status");

function memberRow(m) {
  const you = m.username === boot.username;
  const role = isOwner
    ? h("select", {
      class: "role-select", "aria-label": `Role of ${m.username}`,
      onchange: (ev) => changeRole(m, ev.currentTarget),
    }, ROLES.map((r) => h("option", { value: r, selected: r === m.role }, r)))
    : m.role;
  return h("tr", { "data-username": m.username, "data-role": m.role },
    h("td", {}, m.username, you ? h("span", { class: "muted" }, " (you)") : null),
    h("td", {}, role),
    h("td", {}, fmtDate(m.created_at)),
    isOwner
      ? h("td", { class: "actions" }, h("button", {
        type: "button", class: "btn btn-small btn-danger", "data-action": "remove",
        "aria-label": `Remove ${m.username}`, onclick: (ev) => removeMember(m, ev.currentTarget),
      }, "Remove"))
      : null);
}

async function loadMembers() {
  try {
    const members = await get(boot.api.members, { key: "members" });
    roots.members.replaceChildren(table(
      ["User", "Role", "Member since", isOwner ? actionsHeader() : null].filter(Boolean),
      members.map(memberRow),
    ));
  } catch (err) {
    if (isAbort(err)) return;
    roots.members.replaceChildren(h("p", { class: "alert alert-error", role: "alert" }, err.message));
  }
  ready(roots.members);
}

/** After the caller's own membership changed: reload, or leave if access is gone. */
function ownChange({ removed = false, role = null } = {}) {
  if (removed) {
    window.location.assign(boot.homeUrl);
    return true;
  }
  if (role !== boot.role) {
    window.location.reload();
    return true;
  }
  return false;
}

async function changeRole(m, select) {
  const role = select.value;
  select.disabled = true;
  say(memberStatus, "");
  busy(roots.members);
  try {
    await post(boot.api.members, { username: m.username, role });
    if (m.username === boot.username && ownChange({ role })) return;
    say(memberStatus, `${m.username} is now ${role}.`, "ok");
  } catch (err) {
    say(memberStatus, err.message, "error");
  }
  await loadMembers();
}

async function removeMember(m, button) {
  const you = m.username === boot.username;
  const question = you
    ? "Leave this project? You will no longer see it."
    : `Remove ${m.username} from this project?`;
  if (!window.confirm(question)) return;
  button.disabled = true;
  say(memberStatus, "");
  busy(roots.members);
  try {
    await del(boot.api.members, { username: m.username });
    if (you && ownChange({ removed: true })) return;
    say(memberStatus, `${m.username} was removed.`, "ok");
  } catch (err) {
    say(memberStatus, err.message, "error");
  }
  await loadMembers();
}

const memberForm = document.getElementById("member-form");
if (memberForm) {
  const status = memberForm.querySelector(".form-status");
  memberForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const username = memberForm.elements.username.value.trim();
    const role = memberForm.elements.role.value;
    if (!username) {
      say(status, "Enter a user name.", "error");
      memberForm.elements.username.focus();
      return;
    }
    const button = memberForm.querySelector("button[type=submit]");
    button.disabled = true;
    say(status, `Saving ${username}…`);
    try {
      const saved = await post(boot.api.members, { username, role });
      if (saved.username === boot.username && ownChange({ role: saved.role })) return;
      say(status, `${saved.username} is now ${saved.role}.`, "ok");
      memberForm.reset();
      busy(roots.members);
      await loadMembers();
    } catch (err) {
      say(status, err.message, "error");
    } finally {
      button.disabled = false;
    }
  });
}

loadProject();
loadMembers();
poll();
