// Small DOM pieces shared by the pages' panels: the busy/ready marks that tests and
// assistive technology wait on, a plain table, and an error alert. Not tied to any
// page or endpoint, so they live in core/.

import { h } from "./format.js";

export function markReady(root) {
  root.dataset.ready = "true";
  root.removeAttribute("aria-busy");
}

export function markBusy(root) {
  root.dataset.ready = "false";
  root.setAttribute("aria-busy", "true");
}

/** headers: text or nodes (null ones are left out); rows: <tr> elements. */
export function table(headers, rows) {
  return h("table", { class: "table" },
    h("thead", {}, h("tr", {}, headers.filter(Boolean).map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows));
}

/** The header of a column of row buttons: named for screen readers only. */
export const actionsHeader = () => h("span", { class: "sr-only" }, "Actions");

export const errorAlert = (message) => h("p", { class: "alert alert-error", role: "alert" }, message);

/** An error shown above a list (id `<root id>-error`); it outlives the list being redrawn. */
export function showError(root, message) {
  const id = `${root.id}-error`;
  let el = document.getElementById(id);
  if (!el) {
    el = h("p", { id, class: "alert alert-error", role: "alert" });
    root.before(el);
  }
  el.textContent = message;
}

export function clearError(root) {
  document.getElementById(`${root.id}-error`)?.remove();
}
