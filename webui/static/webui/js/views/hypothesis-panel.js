// The hypothesis panel of the analysis page: save what the view selects as a
// hypothesis (title, Markdown notes, tags), reopen it from its link, pick among its
// versions, save changes as a new version, share it, fork it, comment on it, test
// it against an annotation track (statistics) and rank cells against a track to
// make the best of them the selection.
//
// The open hypothesis lives in the URL next to the view's own keys: `h` (its id),
// `v` (a version other than the newest) and `link` (the token of a hypothesis
// shared by link). So the page's address after saving is the hypothesis link, and
// opening it applies the saved source, range, threshold, constraints and cells.
// The view is read and set only through ../pages/analysis-state.js.
//
//   import { mountHypothesisPanel } from "../views/hypothesis-panel.js";
//   mountHypothesisPanel(document.getElementById("hypothesis-panel"));

import { get, isAbort, post, request, withQuery } from "../core/api.js";
import { markBusy, markReady } from "../core/dom.js";
import { bootData, fmtDate, fmtInt, h } from "../core/format.js";
import { say } from "../core/forms.js";
import { renderMarkdown } from "../core/markdown.js";
import { applySpec, getSpec, getStateset, onSelectionChange, ready } from "../pages/analysis-state.js";
import { createRanking } from "./cell-ranking.js";
import { createComments } from "./hypothesis-comments.js";
import { createShareDialog, VISIBILITY } from "./hypothesis-share.js";
import { createStatistics } from "./hypothesis-stats.js";

const HYPOTHESES = "/api/hypotheses/";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const POSITIVE = /^[1-9]\d{0,8}$/;
const SPEC_KEYS = ["source", "start", "end", "threshold", "zero_left", "zero_right", "min_length", "max_length"];
const SPEC_NAMES = {
  source: "source", start: "range", end: "range", threshold: "threshold", zero_left: "off before",
  zero_right: "off after", min_length: "min length", max_length: "max length", cells: "cells",
  title: "title", notes: "notes", tags: "tags",
};

// ------------------------------------------------------------------ the URL keys

// On a hypothesis' own page (`/h/<id>/`, for a reader who may not open its state
// set) the page's boot data names it, and the page reads through its routes.
const READER = bootData().hypothesis || null;

/** {h, v, link} of the page's address (invalid values read as absent). */
export function hypothesisParams() {
  const p = new URLSearchParams(window.location.search);
  const id = p.get("h") || (READER ? READER.id : null);
  const v = p.get("v");
  return {
    h: id && UUID.test(id) ? id.toLowerCase() : null,
    v: v && POSITIVE.test(v) ? Number(v) : null,
    link: p.get("link") || null,
  };
}

/** Set (or, with null, drop) h, v and link, keeping every other key of the view. */
function writeParams(patch, { replace = false } = {}) {
  const p = new URLSearchParams(window.location.search);
  for (const [k, v] of Object.entries(patch)) {
    if (v === null || v === undefined) p.delete(k);
    else p.set(k, String(v));
  }
  const q = p.toString().replace(/%2C/g, ",");
  const url = `${window.location.pathname}${q ? `?${q}` : ""}${window.location.hash}`;
  if (url === `${window.location.pathname}${window.location.search}${window.location.hash}`) return;
  if (replace) window.history.replaceState(window.history.state, "", url);
  else window.history.pushState(null, "", url);
}

// ------------------------------------------------------------------ specs

/** The comparable part of a spec or a saved version. */
function specOf(x) {
  const out = {};
  for (const k of SPEC_KEYS) out[k] = x[k] ?? null;
  if (out.min_length === null) out.min_length = 2;
  out.cells = [...(x.cells || [])].sort((a, b) => a - b);
  return out;
}

function parseTags(raw) {
  const seen = new Set();
  for (const t of raw.split(",")) {
    const tag = t.trim().slice(0, 64);
    if (tag) seen.add(tag);
  }
  return [...seen];
}

function sameList(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** What the view and the form change against a version: a list of names. */
function differences(version, spec, form) {
  const a = specOf(version);
  const b = specOf(spec);
  const out = new Set();
  for (const k of SPEC_KEYS) if (a[k] !== b[k]) out.add(SPEC_NAMES[k]);
  if (!sameList(a.cells, b.cells)) out.add("cells");
  if (form.title !== version.title) out.add("title");
  if (form.notes !== (version.notes || "")) out.add("notes");
  if (!sameList(form.tags, version.tags || [])) out.add("tags");
  return [...out];
}

function describeSpec(spec) {
  if (!spec) return "";
  const parts = [spec.source];
  parts.push(spec.start === null ? "no range" : `tokens ${fmtInt(spec.start)}–${fmtInt(spec.end)}`);
  parts.push(`threshold ${spec.threshold}`);
  if (spec.start !== null) parts.push(`off ${spec.zero_left} before, ${spec.zero_right} after`);
  if ((spec.min_length ?? 2) !== 2 || spec.max_length !== null) {
    parts.push(`hits of ${spec.min_length ?? 2}${spec.max_length !== null ? `–${spec.max_length}` : " or more"} tokens`);
  }
  const n = spec.cells.length;
  const list = spec.cells.slice(0, 12).join(", ") + (n > 12 ? ", …" : "");
  parts.push(n ? `${n} cell${n === 1 ? "" : "s"} (${list})` : "no cells");
  return parts.join(" · ");
}

// ------------------------------------------------------------------ the panel

export function mountHypothesisPanel(root) {
  const me = document.querySelector('[data-testid="username"]')?.textContent.trim() || "";
  let open = null; // the open version, as the API answered it
  let versions = [];
  let link = null;
  let ticket = 0; // the newest load; older answers are dropped

  // The parts.
  const heading = h("h2", { id: "hyp-h" }, "Hypothesis");
  const meta = h("span", { class: "meta hyp-meta" });
  const shareButton = h("button", { type: "button", class: "btn", hidden: true }, "Share");
  const forkButton = h("button", { type: "button", class: "btn", hidden: true }, "Fork");
  const newButton = h("button", { type: "button", class: "btn btn-quiet", hidden: true }, "New hypothesis");
  const lineage = h("p", { class: "meta hyp-lineage", hidden: true });
  const status = h("div", { class: "form-status", role: "status", "aria-live": "polite" });

  const title = h("input", { type: "text", name: "title", maxlength: "200", required: true, autocomplete: "off" });
  const notes = h("textarea", { id: "hyp-notes", name: "notes", rows: "4", maxlength: "100000",
    "aria-describedby": "hyp-notes-hint",
    placeholder: "What the cells seem to track, and why: **bold**, *emphasis*, `code`, - lists, [links](https://…)" });
  const preview = h("div", { class: "notes-preview prose", "aria-label": "Preview", role: "region" });
  const tags = h("input", { type: "text", name: "tags", autocomplete: "off", placeholder: "comma-separated" });
  const specLine = h("p", { class: "hyp-spec" });
  const versionSelect = h("select", { name: "version", id: "hyp-version" });
  const versionOf = h("span", { class: "meta" });
  const versionRow = h("div", { class: "version-row", hidden: true },
    h("span", { class: "field-inline" }, h("label", { for: "hyp-version" }, "Version"), versionSelect), versionOf);
  const save = h("button", { type: "submit", class: "btn btn-primary" }, "Save hypothesis");
  const saveHint = h("p", { class: "hint save-hint" });
  const form = h("form", { class: "hyp-form stack", novalidate: true },
    h("label", { class: "field" }, h("span", {}, "Title"), title),
    h("div", { class: "field" },
      h("div", { class: "label-row" }, h("label", { for: "hyp-notes" }, "Notes"),
        h("small", { class: "muted", id: "hyp-notes-hint" }, "Markdown; shown below as it will read")),
      notes, preview),
    h("label", { class: "field" }, h("span", {}, "Tags"), tags),
    h("div", { class: "field" }, h("span", { class: "field-title" }, "Selection"), specLine),
    versionRow,
    h("div", { class: "save-row" }, save, saveHint));

  const commentsRoot = h("section", { class: "hyp-comments", id: "hyp-comments", hidden: true });
  const statsRoot = h("section", { class: "hyp-stats", id: "hyp-stats" });
  const rankingRoot = h("section", { class: "hyp-ranking", id: "hyp-ranking" });

  root.classList.add("hyp-panel");
  root.setAttribute("aria-labelledby", "hyp-h");
  root.replaceChildren(
    h("div", { class: "hyp-head" }, heading, meta,
      h("div", { class: "hyp-actions" }, shareButton, forkButton, newButton)),
    lineage, status,
    h("div", { class: "hyp-grid" },
      h("div", { class: "hyp-main" }, form, commentsRoot),
      rankingRoot),
    statsRoot);
  root.hidden = false;
  markBusy(root);

  const comments = createComments(commentsRoot, { me });
  const stats = createStatistics(statsRoot);
  const ranking = createRanking(rankingRoot, { stateset: getStateset, spec: getSpec, applySpec });
  // A reader through the hypothesis may not rank the state set's cells or start a
  // hypothesis of it.
  rankingRoot.hidden = Boolean(READER);
  const share = createShareDialog({
    onChange(answer) {
      if (!open || answer.id !== open.id) return;
      open = { ...open, visibility: answer.visibility, link: answer.link };
      showMeta();
    },
  });

  // ---------------------------------------------------------------- drawing

  function formValues() {
    return { title: title.value.trim(), notes: notes.value, tags: parseTags(tags.value) };
  }

  function showPreview() {
    preview.replaceChildren(notes.value.trim() ? renderMarkdown(notes.value) : h("p", { class: "muted" }, "The notes show here as they will read."));
  }

  function canEdit() {
    return open && (open.role === "owner" || open.role === "editor");
  }

  function showMeta() {
    if (!open) {
      heading.textContent = "Hypothesis";
      meta.textContent = "not saved yet";
      return;
    }
    heading.textContent = "Hypothesis";
    const vis = VISIBILITY.find(([v]) => v === open.visibility);
    const hits = open.match_result && open.match_result.status === "succeeded" && open.match_result.total !== null
      ? ` · ${fmtInt(open.match_result.total)} hit${open.match_result.total === 1 ? "" : "s"} pinned` : "";
    meta.textContent = `by ${open.owner ?? "a former user"} · ${vis ? vis[1].toLowerCase() : open.visibility}` +
      ` · version ${open.version} of ${open.latest_version}${hits} · you are ${open.role === "owner" ? "its owner" : `a ${open.role}`}`;
  }

  /** Save button and hint from how the view differs from the open version. */
  function refresh() {
    const spec = getSpec();
    specLine.textContent = describeSpec(spec);
    if (!open) {
      save.hidden = false;
      save.textContent = "Save hypothesis";
      const empty = !spec || spec.cells.length === 0;
      save.disabled = empty;
      saveHint.textContent = empty ? "Select cells first: set a range or add cells." : "Saved privately; share it afterwards.";
      return;
    }
    const diff = spec ? differences(open, spec, formValues()) : [];
    save.textContent = "Save as new version";
    if (!canEdit()) {
      save.hidden = true;
      saveHint.textContent = diff.length
        ? `The view differs from version ${open.version} (${diff.join(", ")}); fork it to keep your changes.`
        : `You may read this hypothesis; fork it to change it.`;
      return;
    }
    save.hidden = diff.length === 0;
    save.disabled = !spec || spec.cells.length === 0 || !formValues().title;
    saveHint.textContent = diff.length
      ? `Changed from version ${open.version}: ${diff.join(", ")}.`
      : `The view shows version ${open.version} as saved.`;
  }

  function showVersions() {
    versionRow.hidden = !open;
    if (!open) return;
    const known = versions.length ? versions : [{ version: open.version, created_at: open.created_at, created_by: open.created_by }];
    versionSelect.replaceChildren(...known.map((v) => h("option", { value: String(v.version) },
      `${v.version} · ${fmtDate(v.created_at)}${v.created_by ? ` · ${v.created_by}` : ""}`)));
    versionSelect.value = String(open.version);
    versionOf.textContent = `of ${open.latest_version}${open.version === open.latest_version ? " (the newest)" : ""}`;
  }

  function showLineage() {
    lineage.hidden = !(open && open.forked_from);
    if (lineage.hidden) return;
    // The original's link: its analysis page for whoever may read the state set.
    const href = `/h/${open.forked_from}/?${new URLSearchParams({ v: String(open.forked_version) })}`;
    lineage.replaceChildren("Forked from ", h("a", { href }, `version ${open.forked_version} of the original`), ".");
  }

  function fillForm(version) {
    title.value = version ? version.title : "";
    notes.value = version ? version.notes || "" : "";
    tags.value = version ? (version.tags || []).join(", ") : "";
    const readonly = Boolean(version) && !canEdit();
    for (const el of [title, notes, tags]) el.readOnly = readonly;
    showPreview();
  }

  function showOpen() {
    const isOpen = Boolean(open);
    shareButton.hidden = !isOpen;
    forkButton.hidden = !isOpen;
    newButton.hidden = !isOpen || Boolean(READER);
    showMeta();
    showVersions();
    showLineage();
    refresh();
    stats.setVersion(open, link);
    comments.setVersion(open, link);
  }

  // ---------------------------------------------------------------- loading

  const q = (url) => withQuery(url, { link });

  /** Show a version answer; apply its spec to the view unless told not to. */
  async function show(version, { apply = true, reloadVersions = true } = {}) {
    const info = getStateset();
    if (info && version.stateset !== info.id) {
      // A hypothesis of another state set: its own page shows it.
      window.location.assign(`/statesets/${version.stateset}/${window.location.search}`);
      return;
    }
    const sameHyp = open && open.id === version.id;
    open = version;
    if (reloadVersions || !sameHyp) {
      try {
        versions = await get(q(`${HYPOTHESES}${version.id}/versions/`), { key: "hyp-versions" });
      } catch (err) {
        if (isAbort(err)) return;
        versions = [];
      }
    }
    fillForm(version);
    if (apply && differences(version, getSpec(), formValues()).length) {
      await applySpec({
        source: version.source, start: version.start, end: version.end, threshold: version.threshold,
        zero_left: version.zero_left, zero_right: version.zero_right,
        min_length: version.min_length, max_length: version.max_length, cells: [...version.cells],
      });
    }
    showOpen();
  }

  /** Open hypothesis `id` (version `v`, or the newest) as the URL names it. */
  async function load({ h: id, v, link: token }, { apply = true } = {}) {
    const mine = ++ticket;
    markBusy(root);
    link = token;
    try {
      const url = v ? `${HYPOTHESES}${id}/versions/${v}/` : `${HYPOTHESES}${id}/`;
      const version = await get(q(url), { key: "hyp-open" });
      if (mine !== ticket) return;
      await show(version, { apply });
      say(status, "");
    } catch (err) {
      if (isAbort(err) || mine !== ticket) return;
      open = null;
      versions = [];
      fillForm(null);
      showOpen();
      say(status, `${err.message} The link may be wrong, or the hypothesis not shared with you.`, "error");
    } finally {
      if (mine === ticket) markReady(root);
    }
  }

  function startNew() {
    ticket++;
    open = null;
    versions = [];
    link = null;
    fillForm(null);
    showOpen();
  }

  // ---------------------------------------------------------------- actions

  /** Run an action with the panel busy; its message (or error) in the status line. */
  async function busy(button, action) {
    const mine = ++ticket;
    button.disabled = true;
    markBusy(root);
    try {
      const message = await action();
      if (message !== undefined) say(status, message, "ok");
    } catch (err) {
      if (!isAbort(err)) say(status, err.message, "error");
    } finally {
      button.disabled = false;
      if (mine === ticket) markReady(root);
      refresh();
    }
  }

  function specBody(spec) {
    const body = {};
    for (const k of SPEC_KEYS) body[k] = spec[k];
    body.cells_added = spec.cells_added;
    body.cells_excluded = spec.cells_excluded;
    return body;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const spec = getSpec();
    const values = formValues();
    if (!values.title) {
      say(status, "Give the hypothesis a title.", "error");
      title.focus();
      return;
    }
    if (!spec || !spec.cells.length) {
      say(status, "Select cells first: set a range or add cells.", "error");
      return;
    }
    if (!open) {
      busy(save, async () => {
        const saved = await post(HYPOTHESES, { stateset: getStateset().id, ...specBody(spec), ...values });
        writeParams({ h: saved.id, v: null, link: null });
        link = null;
        await show(saved, { apply: true });
        return `Saved as “${saved.title}”, version 1; this page's address is its link.`;
      });
      return;
    }
    if (!canEdit()) return;
    const id = open.id;
    busy(save, async () => {
      const saved = await request(`${HYPOTHESES}${id}/`, { method: "PATCH", json: { ...specBody(spec), ...values } });
      writeParams({ v: null });
      await show(saved, { apply: true });
      return `Saved as version ${saved.version}.`;
    });
  });

  versionSelect.addEventListener("change", () => {
    if (!open) return;
    const n = Number(versionSelect.value);
    const id = open.id;
    busy(versionSelect, async () => {
      const version = await get(q(`${HYPOTHESES}${id}/versions/${n}/`), { key: "hyp-open" });
      const before = window.location.href;
      await show(version, { apply: true, reloadVersions: false });
      const v = version.version === version.latest_version ? null : version.version;
      // Applying the version pushed a history entry already when it changed the view.
      writeParams({ v }, { replace: window.location.href !== before });
      return undefined;
    });
  });

  for (const el of [title, notes, tags]) el.addEventListener("input", () => {
    if (el === notes) showPreview();
    refresh();
  });

  shareButton.addEventListener("click", () => { if (open) share.open(open); });

  forkButton.addEventListener("click", () => {
    if (!open) return;
    const from = open;
    busy(forkButton, async () => {
      const fork = await post(q(`${HYPOTHESES}${from.id}/fork/`), { version: from.version });
      if (READER) {
        // The fork is the reader's own: its page reads through its routes.
        window.location.assign(`/h/${fork.id}/`);
        return "Forked: opening your copy.";
      }
      writeParams({ h: fork.id, v: null, link: null });
      link = null;
      await show(fork, { apply: true });
      return `Forked version ${from.version}: this copy is yours (private) to change.`;
    });
  });

  newButton.addEventListener("click", () => {
    writeParams({ h: null, v: null, link: null });
    startNew();
    say(status, "A new hypothesis of the view as it is; the saved one is unchanged.");
    title.focus();
  });

  onSelectionChange((spec) => {
    ranking.update(spec);
    refresh();
  });

  window.addEventListener("popstate", () => {
    const p = hypothesisParams();
    if (!p.h) {
      if (open) startNew();
      return;
    }
    const version = p.v ?? (open && open.id === p.h ? open.latest_version : null);
    if (open && open.id === p.h && open.version === version) { refresh(); return; }
    // The view's own keys came back with the history entry; only the panel follows.
    load(p, { apply: false });
  });

  // ---------------------------------------------------------------- start

  ready.then(async () => {
    ranking.update(getSpec());
    const p = hypothesisParams();
    if (p.h) {
      await load(p, { apply: true });
    } else {
      startNew();
      markReady(root);
    }
  });
}
