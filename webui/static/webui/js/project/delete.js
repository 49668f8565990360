// The Delete button of a project list's row (state sets, corpora, models): confirm,
// DELETE through the API, show the server's error above the list, then refresh.
// project/ holds the project page's parts: they know its endpoints and texts, so
// they are neither generic views/ nor a page entry of their own.

import { del } from "../core/api.js";
import { clearError, markBusy, showError } from "../core/dom.js";
import { h } from "../core/format.js";

/** A <td> with the button; `root` is the list the row is in, refresh() redraws it. */
export function deleteCell({ root, url, what, name, refresh }) {
  return h("td", { class: "actions" }, h("button", {
    type: "button", class: "btn btn-small btn-danger", "data-action": "delete",
    "aria-label": `Delete ${what} ${name}`,
    onclick: async (ev) => {
      if (!window.confirm(`Delete the ${what} "${name}"? This cannot be undone.`)) return;
      ev.currentTarget.disabled = true;
      clearError(root);
      markBusy(root);
      try {
        await del(url);
      } catch (err) {
        showError(root, err.message);
      }
      await refresh();
    },
  }, "Delete"));
}
