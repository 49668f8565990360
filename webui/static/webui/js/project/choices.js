// The model and corpus selects of the extraction and training forms, kept in step
// with the project's lists. In project/ because the labels describe this page's data.

import { fmtInt, fmtModelSpec, h } from "../core/format.js";

const LABELS = {
  model: { label: (m) => `${m.name} (${m.rnn_type} ${fmtModelSpec(m)})`, empty: "no models yet" },
  corpus: { label: (c) => `${c.name} (${fmtInt(c.length)} tokens, ${c.tokenization})`, empty: "no corpora yet" },
};

/** Refill a select with the items, keeping the choice; disabled while there are none. */
export function fillChoices(select, kind, items) {
  if (!select) return;
  const { label, empty } = LABELS[kind];
  const before = select.value;
  select.replaceChildren(...(items.length
    ? items.map((it) => h("option", { value: it.id, selected: it.id === before }, label(it)))
    : [h("option", { value: "" }, empty)]));
  select.disabled = !items.length;
}
