// The project's state sets, corpora and models: one table each, a Delete button per
// row for editors and owners, an empty-list hint. One list factory, three column sets.
// In project/ (not views/) because the rows link to and delete through this page's
// endpoints.

import { post } from "../core/api.js";
import { actionsHeader, errorAlert, markReady, showError, table } from "../core/dom.js";
import { fmtDate, fmtInt, fmtModelSpec, h } from "../core/format.js";
import { deleteCell } from "./delete.js";

/** The corpus of a state set: its name, or for an imported state set without one (and
 * a user who may write) a button that makes a corpus of its text, to train on and to
 * extract from like an uploaded corpus. */
function corpusCell(s, { boot, project, canWrite, refresh, root }) {
  const corpus = s.corpus && (project.corpora || []).find((c) => c.id === s.corpus);
  if (corpus) return h("a", { href: "#data", title: "listed under Corpora" }, corpus.name);
  if (s.corpus) return h("span", { class: "muted" }, "deleted");
  if (!canWrite) return h("span", { class: "muted" }, "none");
  return h("button", {
    type: "button", class: "btn btn-small", "data-action": "make-corpus",
    title: "Make a corpus of this state set's tokens, to train on and extract from",
    "aria-label": `Use the text of ${s.name} as a corpus`,
    onclick: async (ev) => {
      ev.currentTarget.disabled = true;
      try {
        await post(`${boot.api.statesetBase}${s.id}/corpus/`, {});
        await refresh();
      } catch (err) {
        showError(root, err.message);
        ev.currentTarget.disabled = false;
      }
    },
  }, "Use as corpus");
}

const num = (value) => ({ class: "num", value: fmtInt(value) });

const KINDS = {
  statesets: {
    what: "state set", api: "statesetBase",
    empty: "No state sets yet. Import an LSTMVis project to add one.",
    columns: {
      Name: (s, { boot }) => h("a", { href: `${boot.statesetBase}${s.id}/` }, s.name),
      Tokens: (s) => num(s.length),
      Sources: (s) => num(s.sources),
      Origin: (s) => (s.origin === "lstmvis" ? "LSTMVis import" : s.origin || ""),
      Corpus: corpusCell,
      Created: (s) => fmtDate(s.created_at),
    },
  },
  corpora: {
    what: "corpus", api: "corpusBase",
    empty: "No corpora yet. Upload a text file to add one.",
    columns: {
      Name: (c) => c.name,
      Tokens: (c) => num(c.length),
      Tokenisation: (c) => c.tokenization,
      Documents: (c) => num(c.documents),
      Created: (c) => fmtDate(c.created_at),
    },
  },
  models: {
    what: "model", api: "modelBase",
    empty: "No models yet. Upload one or train one on a corpus.",
    columns: {
      Name: (m) => m.name,
      Type: (m) => m.rnn_type,
      "Layers × cells": (m) => ({ class: "spec", title: JSON.stringify(m.spec || {}), value: fmtModelSpec(m) }),
      Vocabulary: (m) => num(m.vocab_size),
      Origin: (m) => (m.origin === "training" ? "trained here" : "uploaded"),
      Created: (m) => fmtDate(m.created_at),
    },
  },
};

/** A cell: plain content, or {value, ...attributes of the <td>}. */
function cell(content) {
  if (content instanceof Node || typeof content !== "object" || content === null) {
    return h("td", {}, content);
  }
  const { value, ...attrs } = content;
  return h("td", attrs, value);
}

function createItemList(root, kind, { boot, canWrite, refresh }) {
  const { what, api, empty, columns } = KINDS[kind];
  let project = {};
  const row = (item) => h("tr", { "data-id": item.id },
    Object.values(columns).map((col) => cell(col(item, { boot, project, canWrite, refresh, root }))),
    canWrite ? deleteCell({
      root, url: `${boot.api[api]}${item.id}/`, what, name: item.name, refresh,
    }) : null);
  return {
    update(items, whole = {}) {
      project = whole;
      root.replaceChildren(items.length
        ? table([...Object.keys(columns), canWrite ? actionsHeader() : null], items.map(row))
        : h("p", { class: "muted empty" }, empty));
      markReady(root);
    },
    fail(message) {
      root.replaceChildren(errorAlert(message));
      markReady(root);
    },
  };
}

/** roots: {statesets, corpora, models}; update(project) redraws all three. */
export function createProjectLists(roots, options) {
  const lists = Object.keys(KINDS).map((kind) => [kind, createItemList(roots[kind], kind, options)]);
  return {
    update(project) {
      for (const [kind, list] of lists) list.update(project[kind] || [], project);
    },
    fail(message) {
      for (const [, list] of lists) list.fail(message);
    },
  };
}
