// The project's state sets, corpora and models: one table each, a Delete button per
// row for editors and owners, an empty-list hint. One list factory, three column sets.
// In project/ (not views/) because the rows link to and delete through this page's
// endpoints.

import { actionsHeader, errorAlert, markReady, table } from "../core/dom.js";
import { fmtDate, fmtInt, fmtModelSpec, h } from "../core/format.js";
import { deleteCell } from "./delete.js";

const num = (value) => ({ class: "num", value: fmtInt(value) });

const KINDS = {
  statesets: {
    what: "state set", api: "statesetBase",
    empty: "No state sets yet. Import an LSTMVis project to add one.",
    columns: {
      Name: (s, boot) => h("a", { href: `${boot.statesetBase}${s.id}/` }, s.name),
      Tokens: (s) => num(s.length),
      Sources: (s) => num(s.sources),
      Origin: (s) => s.origin || "",
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
  const row = (item) => h("tr", { "data-id": item.id },
    Object.values(columns).map((col) => cell(col(item, boot))),
    canWrite ? deleteCell({
      root, url: `${boot.api[api]}${item.id}/`, what, name: item.name, refresh,
    }) : null);
  return {
    update(items) {
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
      for (const [kind, list] of lists) list.update(project[kind] || []);
    },
    fail(message) {
      for (const [, list] of lists) list.fail(message);
    },
  };
}
