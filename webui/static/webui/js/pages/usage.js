// The usage dashboard: one read of GET /api/usage/ (whose usage and which days are in
// the URL: ?from=&to=&project=|user=), drawn as plots (active users, actions by kind,
// latency, jobs) and tables (jobs, the most used projects, users and hypotheses,
// storage), each with its CSV download (GET /api/usage/{table}/?format=csv).
// The page root's data-ready turns true once everything is drawn.

import { get, isAbort, withQuery } from "../core/api.js";
import { errorAlert, markBusy, markReady, table } from "../core/dom.js";
import { bootData, fmtInt, h } from "../core/format.js";
import { okabeIto } from "../core/palettes.js";
import {
  addDays, barChart, binDays, daysBetween, legend, lineChart,
} from "../usage/charts.js";

const boot = bootData();
const root = document.getElementById("usage");
const form = document.getElementById("usage-controls");
const scopeSelect = document.getElementById("usage-scope");
const fromInput = document.getElementById("usage-from");
const toInput = document.getElementById("usage-to");
const status = document.getElementById("usage-status");

// Research events grouped for the bars of "actions per day" (job outcomes have
// their own plot); colours from the colour-blind-safe Okabe-Ito set.
const GROUPS = [
  { key: "browse", name: "Opening and selecting", colour: okabeIto[1],
    kinds: ["project.opened", "stateset.viewed", "selection.made"] },
  { key: "match", name: "Matches", colour: okabeIto[4], kinds: ["match.run"] },
  { key: "hypotheses", name: "Hypotheses", colour: okabeIto[2],
    kinds: ["hypothesis.saved", "hypothesis.shared", "hypothesis.forked", "hypothesis.commented"] },
  { key: "analysis", name: "Statistics and rankings", colour: okabeIto[6],
    kinds: ["statistics.run", "ranking.run"] },
  { key: "uploads", name: "Uploads", colour: okabeIto[0],
    kinds: ["annotation.uploaded", "model.uploaded", "corpus.uploaded", "import.uploaded"] },
  { key: "compute", name: "Training and extraction", colour: okabeIto[5],
    kinds: ["training.started", "extraction.started"] },
  { key: "exports", name: "Exports", colour: okabeIto[7], kinds: ["export.downloaded"] },
];
const GROUP_OF = new Map(GROUPS.flatMap((g) => g.kinds.map((k) => [k, g.key])));
const JOB_KEYS = [
  { key: "finished", name: "Finished", colour: okabeIto[2] },
  { key: "failed", name: "Failed", colour: okabeIto[5] },
  { key: "cancelled", name: "Cancelled", colour: okabeIto[6] },
];
const MATCH = okabeIto[4];
const CONTEXT = okabeIto[5];
const TOP = 10;

// ---- formats -----------------------------------------------------------------

const fmtMs = (v) => (v == null ? "–" : `${v < 10 ? v.toFixed(1) : fmtInt(Math.round(v))} ms`);
const fmtS = (v) => (v == null ? "–" : v < 60 ? `${v.toFixed(1)} s` : `${(v / 60).toFixed(1)} min`);
const fmtPct = (v) => (v == null ? "–" : `${(100 * v).toFixed(1)} %`);
function fmtBytes(n) {
  if (n == null) return "–";
  const units = ["bytes", "KB", "MB", "GB", "TB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return i === 0 ? `${fmtInt(v)} bytes` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

// ---- state: whose usage and which days, in the URL ------------------------------

function readUrl() {
  const q = new URLSearchParams(window.location.search);
  return {
    from: q.get("from") || "",
    to: q.get("to") || "",
    project: q.get("project") || "",
    user: q.get("user") || "",
  };
}

let state = readUrl();
let today = null;

function query(extra = {}) {
  const q = { from: state.from || undefined, to: state.to || undefined, ...extra };
  if (state.project) q.project = state.project;
  else if (state.user) q.user = state.user;
  return q;
}

function scopeOptions() {
  const options = [];
  if (boot.staff) options.push(["", "The whole lab"], [`user:${boot.username}`, "My usage"]);
  else options.push(["", "My usage"]);
  for (const p of boot.projects) options.push([`project:${p.slug}`, `Project ${p.name}`]);
  const current = state.project ? `project:${state.project}` : state.user ? `user:${state.user}` : "";
  if (current && !options.some(([v]) => v === current)) {
    options.push([current, state.project ? `Project ${state.project}` : `User ${state.user}`]);
  }
  scopeSelect.replaceChildren(...options.map(([value, label]) => h("option", { value }, label)));
  scopeSelect.value = current === `user:${boot.username}` && !boot.staff ? "" : current;
}

function fromScope(value) {
  if (value.startsWith("project:")) return { project: value.slice(8), user: "" };
  if (value.startsWith("user:")) return { project: "", user: value.slice(5) };
  return { project: "", user: "" };
}

function say(text) {
  status.textContent = text;
  status.className = text ? "form-status usage-status error" : "form-status usage-status";
  status.hidden = !text;
}

function apply(next, { push = true } = {}) {
  state = { ...state, ...next };
  if (push) {
    const url = withQuery(window.location.pathname, {
      from: state.from || undefined,
      to: state.to || undefined,
      project: state.project || undefined,
      user: state.project ? undefined : state.user || undefined,
    });
    window.history.pushState(null, "", url);
  }
  load();
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const from = fromInput.value;
  const to = toInput.value;
  if (!from || !to) { say("Give both days of the range."); return; }
  if (from > to) { say("The first day must not be after the last."); return; }
  apply({ from, to, ...fromScope(scopeSelect.value) });
});

for (const button of form.querySelectorAll("[data-days]")) {
  button.addEventListener("click", () => {
    const to = today || toInput.value;
    if (!to) return;
    apply({ from: addDays(to, -(Number(button.dataset.days) - 1)), to, ...fromScope(scopeSelect.value) });
  });
}

window.addEventListener("popstate", () => { state = readUrl(); scopeOptions(); load(); });

// ---- drawing ---------------------------------------------------------------------

function csvLink(name, label = "CSV") {
  const href = withQuery(`${boot.api.tableBase}${name}/`, query({ format: "csv" }));
  return h("a", { class: "csv-link", href, download: "", "data-table": name }, `${label} (${name}.csv)`);
}

function section(id, title, ...children) {
  return h("section", { class: "panel usage-section", id: `usage-${id}`, "aria-labelledby": `usage-${id}-h` },
    h("h2", { id: `usage-${id}-h` }, title), ...children);
}

function figure(label, draw) {
  const holder = h("div", { class: "usage-chart" });
  holder.dataset.label = label;
  holder.draw = draw;
  return holder;
}

function dataTable(columns, rows, { limit = null, empty = "Nothing in this range." } = {}) {
  if (!rows.length) return h("p", { class: "muted empty" }, empty);
  const shown = limit ? rows.slice(0, limit) : rows;
  const body = shown.map((row) => h("tr", {}, columns.map((c) => {
    const value = c.value(row);
    return h("td", { class: c.num ? "num" : null }, value instanceof Node ? value : String(value));
  })));
  const note = limit && rows.length > limit
    ? h("p", { class: "hint" }, `The first ${limit} of ${fmtInt(rows.length)}; the CSV has them all.`) : null;
  return h("div", { class: "usage-table" }, table(columns.map((c) => c.title), body), note);
}

function summary(answer) {
  const t = answer.totals;
  const kinds = t.by_kind;
  const ended = (kinds["job.finished"] || 0) + (kinds["job.failed"] || 0);
  const storage = answer.tables.storage_projects.reduce((n, r) => n + r.total, 0);
  const lat = t.latency || {};
  const items = [
    ["Actions", fmtInt(t.actions)],
    ["Active users", fmtInt(t.active_users)],
    ["Matches", fmtInt(kinds["match.run"] || 0)],
    ["Match p50 / p95", lat.match ? `${fmtMs(lat.match.p50_ms)} / ${fmtMs(lat.match.p95_ms)}` : "–"],
    ["Context p50 / p95", lat.context ? `${fmtMs(lat.context.p50_ms)} / ${fmtMs(lat.context.p95_ms)}` : "–"],
    ["Jobs ended", fmtInt(ended)],
    ["Jobs failed", ended ? fmtPct((kinds["job.failed"] || 0) / ended) : "–"],
    ["Stored now", fmtBytes(storage)],
  ];
  return section("summary", `Usage of ${answer.scope.label}`,
    h("p", { class: "meta" }, `${answer.range.from} to ${answer.range.to} (UTC) · `
      + `${fmtInt(t.days_from_rollups)} days from daily rollups, ${fmtInt(t.days_from_events)} from raw events`),
    h("dl", { class: "usage-figures", "data-testid": "usage-figures" },
      items.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v)))));
}

function activeSection(answer, first, last) {
  const dau = answer.tables.daily_active.map((r) => [r.day, r.users]);
  const wau = answer.tables.weekly_active.map((r) => [r.week, r.users]);
  const series = [
    { name: "Daily active users", colour: MATCH, points: dau },
    { name: "Weekly active users", colour: okabeIto[0], points: wau, step: 7 },
  ];
  return section("active", "Active users",
    legend(series),
    figure("Active users per day and per week", (el) => lineChart(el, {
      label: "Active users per day and per week", first, last, series,
    })),
    h("p", { class: "csv-links" }, csvLink("daily_active"), csvLink("weekly_active")));
}

function actionsSection(answer, first, last) {
  const perDay = new Map();
  for (const r of answer.tables.actions) {
    const group = GROUP_OF.get(r.kind);
    if (!group) continue;
    const row = perDay.get(r.day) || { day: r.day, values: {} };
    row.values[group] = (row.values[group] || 0) + r.count;
    perDay.set(r.day, row);
  }
  const step = binDays(daysBetween(first, last));
  const title = step === 1 ? "Actions per day" : `Actions per ${step} days`;
  const byKind = Object.entries(answer.totals.by_kind)
    .filter(([k]) => GROUP_OF.has(k)).sort((a, b) => b[1] - a[1]);
  const described = new Map(answer.kinds.map((k) => [k.kind, k.description]));
  return section("actions", title,
    legend(GROUPS),
    figure(`${title}, by kind`, (el) => barChart(el, {
      label: `${title}, by kind of action`, first, last, keys: GROUPS, rows: [...perDay.values()],
    })),
    dataTable([
      { title: "Kind", value: (r) => h("span", { title: described.get(r[0]) || "" }, r[0]) },
      { title: "Events", num: true, value: (r) => fmtInt(r[1]) },
    ], byKind),
    h("p", { class: "csv-links" }, csvLink("actions")));
}

function latencySection(answer, first, last) {
  const pick = (metric, key) => answer.tables.latency
    .filter((r) => r.metric === metric).map((r) => [r.day, r[key]]);
  const series = [
    { name: "Match p50", colour: MATCH, points: pick("match", "p50_ms") },
    { name: "Match p95", colour: MATCH, dashed: true, points: pick("match", "p95_ms") },
    { name: "Context window p50", colour: CONTEXT, points: pick("context", "p50_ms") },
    { name: "Context window p95", colour: CONTEXT, dashed: true, points: pick("context", "p95_ms") },
  ];
  const m = answer.tables.matches.reduce((acc, r) => {
    acc.cached += r.cached; acc.computed += r.computed; acc.pending += r.pending; return acc;
  }, { cached: 0, computed: 0, pending: 0 });
  const asked = m.cached + m.computed + m.pending;
  return section("latency", "Latency",
    legend(series),
    figure("Latency per day", (el) => lineChart(el, {
      label: "Time to the answer of matches and context windows per day, median and 95th percentile",
      first, last, series, yFormat: fmtMs,
    })),
    h("p", { class: "meta" }, asked
      ? `${fmtInt(asked)} match requests: ${fmtInt(m.cached)} answered from the store `
        + `(${fmtPct(m.cached / asked)}), ${fmtInt(m.computed)} computed, `
        + `${fmtInt(m.pending)} still running when answered.`
      : "No match requests in this range."),
    h("p", { class: "csv-links" }, csvLink("latency"), csvLink("matches")));
}

function jobsSection(answer, first, last) {
  const perDay = new Map();
  for (const r of answer.tables.jobs_daily) {
    const row = perDay.get(r.day) || { day: r.day, values: {} };
    for (const k of JOB_KEYS) row.values[k.key] = (row.values[k.key] || 0) + r[k.key];
    perDay.set(r.day, row);
  }
  return section("jobs", "Jobs",
    legend(JOB_KEYS),
    figure("Jobs ended per day", (el) => barChart(el, {
      label: "Jobs that ended per day: finished, failed, cancelled", first, last, keys: JOB_KEYS,
      rows: [...perDay.values()],
    })),
    dataTable([
      { title: "Kind", value: (r) => r.job_kind },
      { title: "Finished", num: true, value: (r) => fmtInt(r.finished) },
      { title: "Failed", num: true, value: (r) => fmtInt(r.failed) },
      { title: "Cancelled", num: true, value: (r) => fmtInt(r.cancelled) },
      { title: "Failure rate", num: true, value: (r) => fmtPct(r.failure_rate) },
      { title: "Mean", num: true, value: (r) => fmtS(r.mean_s) },
      { title: "p50", num: true, value: (r) => fmtS(r.p50_s) },
      { title: "p95", num: true, value: (r) => fmtS(r.p95_s) },
    ], answer.tables.jobs),
    h("p", { class: "csv-links" }, csvLink("jobs_daily"), csvLink("jobs")));
}

function mostUsedSection(answer) {
  const t = answer.tables;
  const projectLink = (slug) => (boot.projects.some((p) => p.slug === slug) || boot.staff
    ? h("a", { href: `/p/${encodeURIComponent(slug)}/` }, slug) : slug);
  return section("most-used", "Most used",
    h("div", { class: "usage-grid" },
      h("div", {}, h("h3", {}, "Projects"),
        dataTable([
          { title: "Project", value: (r) => projectLink(r.project) },
          { title: "Actions", num: true, value: (r) => fmtInt(r.actions) },
          { title: "Users", num: true, value: (r) => fmtInt(r.users) },
        ], t.projects, { limit: TOP }),
        h("p", { class: "csv-links" }, csvLink("projects"))),
      h("div", {}, h("h3", {}, "Users"),
        dataTable([
          { title: "User", value: (r) => r.user },
          { title: "Actions", num: true, value: (r) => fmtInt(r.actions) },
          { title: "Active days", num: true, value: (r) => (r.active_days == null ? "–" : fmtInt(r.active_days)) },
        ], t.users, { limit: TOP }),
        h("p", { class: "csv-links" }, csvLink("users"))),
      h("div", {}, h("h3", {}, "Hypotheses"),
        dataTable([
          { title: "Hypothesis", value: (r) => (r.title
            ? h("a", { href: `/h/${encodeURIComponent(r.hypothesis)}/` }, r.title)
            : h("code", {}, r.hypothesis.slice(0, 8))) },
          { title: "Project", value: (r) => r.project || "–" },
          { title: "Events", num: true, value: (r) => fmtInt(r.events) },
        ], t.hypotheses, { limit: TOP }),
        h("p", { class: "csv-links" }, csvLink("hypotheses")))));
}

function storageSection(answer) {
  const columns = (first, key) => [
    { title: first, value: (r) => r[key] },
    { title: "State sets", num: true, value: (r) => fmtBytes(r.statesets) },
    { title: "Corpora", num: true, value: (r) => fmtBytes(r.corpora) },
    { title: "Models", num: true, value: (r) => fmtBytes(r.models) },
    { title: "Uploads", num: true, value: (r) => fmtBytes(r.uploads) },
    { title: "Total", num: true, value: (r) => fmtBytes(r.total) },
  ];
  return section("storage", "Storage now",
    h("div", { class: "usage-grid two" },
      h("div", {}, h("h3", {}, "Per project"),
        dataTable(columns("Project", "project"), answer.tables.storage_projects, { empty: "Nothing stored." }),
        h("p", { class: "csv-links" }, csvLink("storage_projects"))),
      h("div", {}, h("h3", {}, "Per user"),
        dataTable(columns("User", "user"), answer.tables.storage_users, { empty: "Nothing stored." }),
        h("p", { class: "csv-links" }, csvLink("storage_users")))));
}

let last = null;

function drawFigures() {
  for (const holder of root.querySelectorAll(".usage-chart")) {
    holder.replaceChildren(holder.draw(holder));
  }
}

function render(answer) {
  const first = answer.range.from;
  const lastDay = answer.range.to < answer.today ? answer.range.to : answer.today;
  const shownLast = first > lastDay ? first : lastDay;
  root.replaceChildren(
    summary(answer),
    activeSection(answer, first, shownLast),
    actionsSection(answer, first, shownLast),
    latencySection(answer, first, shownLast),
    jobsSection(answer, first, shownLast),
    mostUsedSection(answer),
    storageSection(answer),
  );
  drawFigures();
}

async function load() {
  markBusy(root);
  say("");
  try {
    const answer = await get(withQuery(boot.api.usage, query()), { key: "usage" });
    today = answer.today;
    state = { ...state, from: answer.range.from, to: answer.range.to };
    fromInput.value = answer.range.from;
    toInput.value = answer.range.to;
    last = answer;
    render(answer);
  } catch (err) {
    if (isAbort(err)) return;
    say(err.message);
    root.replaceChildren(errorAlert(err.message));
  }
  markReady(root);
}

let resizeTimer = null;
window.addEventListener("resize", () => {
  window.clearTimeout(resizeTimer);
  resizeTimer = window.setTimeout(() => { if (last) drawFigures(); }, 150);
});

scopeOptions();
load();
