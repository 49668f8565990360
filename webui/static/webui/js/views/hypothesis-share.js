// The "Share" dialog of a hypothesis: who may open it (private, project, link,
// public, each explained), the link with a Copy button when it travels by link,
// and the people it is shared with by name, as viewer or editor. A modal <dialog>:
// focus stays inside, Escape closes it. Only the owner (or the project's owner)
// changes any of it; everyone else sees how it is shared. The API's refusals show
// in the dialog.

import { del, get, isAbort, post, request } from "../core/api.js";
import { h } from "../core/format.js";
import { say } from "../core/forms.js";

const HYPOTHESES = "/api/hypotheses/";

export const VISIBILITY = [
  ["private", "Private", "Only you and the people named below."],
  ["project", "Project", "Also everyone who can read the project."],
  ["link", "Anyone with the link", "Also anyone signed in who has the link."],
  ["public", "Public", "Every signed-in user of this installation."],
];

/** The address that opens a hypothesis for anyone given its link token: its own
 * page, which leads a reader of the state set on to the analysis page and shows
 * anyone else the hypothesis through its routes. */
export function linkUrl(hyp) {
  const u = new URL(`/h/${hyp.id}/`, window.location.origin);
  u.searchParams.set("link", hyp.link);
  return u.href;
}

/** onChange(hyp): the hypothesis as the API answered after a change of visibility. */
export function createShareDialog({ onChange }) {
  let hyp = null;
  let owner = false;

  const title = h("h2", { id: "share-title" }, "Share");
  const status = h("div", { class: "form-status", role: "alert", "aria-live": "assertive" });
  const radios = VISIBILITY.map(([value, label, text]) => h("label", { class: "radio-row" },
    h("input", { type: "radio", name: "visibility", value }),
    h("span", {}, h("strong", {}, label), h("span", { class: "hint" }, text))));
  const visibility = h("fieldset", { class: "field visibility" },
    h("legend", {}, "Who can open it"), radios);
  const linkInput = h("input", { type: "text", readonly: true, "aria-label": "Link", class: "link-input" });
  const copy = h("button", { type: "button", class: "btn" }, "Copy");
  const rotate = h("button", { type: "button", class: "btn btn-quiet" }, "Make a new link");
  const linkRow = h("div", { class: "share-link", hidden: true },
    h("div", { class: "link-row" }, linkInput, copy), rotate,
    h("p", { class: "hint" }, "A new link stops the old one from working."));
  const people = h("ul", { class: "share-people", "aria-label": "People it is shared with" });
  const username = h("input", { type: "text", name: "username", maxlength: "150", autocomplete: "off" });
  const role = h("select", { name: "role" }, h("option", { value: "viewer" }, "viewer"), h("option", { value: "editor" }, "editor"));
  const addButton = h("button", { type: "submit", class: "btn btn-primary" }, "Add");
  const addForm = h("form", { class: "form-row share-add", novalidate: true },
    h("label", { class: "field" }, h("span", {}, "User name"), username),
    h("label", { class: "field" }, h("span", {}, "Role"), role),
    addButton);
  const peopleSection = h("section", { class: "share-section", "aria-labelledby": "share-people-h" },
    h("h3", { id: "share-people-h" }, "People"),
    h("p", { class: "hint" }, "Viewers read, fork and comment; editors also save new versions."),
    people, addForm);
  const readOnly = h("p", { class: "alert alert-info", hidden: true });
  const close = h("button", { type: "button", class: "btn" }, "Close");
  const dialog = h("dialog", { class: "share-dialog", "aria-labelledby": "share-title" },
    h("div", { class: "stack" }, title, readOnly, status, visibility, linkRow, peopleSection,
      h("div", { class: "dialog-actions" }, close)));
  document.body.append(dialog);

  close.addEventListener("click", () => dialog.close());
  // A click on the backdrop (outside the dialog's box) closes it too.
  dialog.addEventListener("click", (event) => {
    if (event.target !== dialog) return;
    const r = dialog.getBoundingClientRect();
    const inside = event.clientX >= r.left && event.clientX <= r.right && event.clientY >= r.top && event.clientY <= r.bottom;
    if (!inside) dialog.close();
  });

  function showVisibility() {
    for (const label of radios) {
      const input = label.querySelector("input");
      input.checked = input.value === hyp.visibility;
      input.disabled = !owner;
    }
    const hasLink = hyp.visibility === "link" && Boolean(hyp.link);
    linkRow.hidden = !hasLink;
    if (hasLink) linkInput.value = linkUrl(hyp);
  }

  function person(share) {
    const select = h("select", { "aria-label": `Role of ${share.username}` },
      ["viewer", "editor"].map((r) => h("option", { value: r, selected: r === share.role }, r)));
    select.addEventListener("change", () => act(
      () => post(`${HYPOTHESES}${hyp.id}/shares/`, { username: share.username, role: select.value }),
      `${share.username} is now ${select.value === "editor" ? "an editor" : "a viewer"}.`));
    return h("li", { "data-username": share.username },
      h("span", { class: "share-name" }, share.username), select,
      h("button", {
        type: "button", class: "btn btn-small btn-danger", "aria-label": `Remove ${share.username}`,
        onclick: () => act(() => del(`${HYPOTHESES}${hyp.id}/shares/`, { username: share.username }),
          `${share.username} no longer has it shared.`),
      }, "Remove"));
  }

  async function loadPeople() {
    if (!owner) return;
    const shares = await get(`${HYPOTHESES}${hyp.id}/shares/`, { key: "shares" });
    people.replaceChildren(...(shares.length ? shares.map(person)
      : [h("li", { class: "muted" }, "Not shared with anyone by name.")]));
  }

  /** Run a change, say how it went, redraw the people. */
  async function act(call, done) {
    dialog.setAttribute("aria-busy", "true");
    try {
      await call();
      say(status, done, "ok");
    } catch (err) {
      if (!isAbort(err)) say(status, err.message, "error");
    }
    try {
      await loadPeople();
    } catch (err) {
      if (!isAbort(err)) say(status, err.message, "error");
    }
    dialog.removeAttribute("aria-busy");
  }

  async function patch(body, done) {
    dialog.setAttribute("aria-busy", "true");
    try {
      const answer = await request(`${HYPOTHESES}${hyp.id}/`, { method: "PATCH", json: body });
      hyp = { ...hyp, visibility: answer.visibility, link: answer.link };
      onChange?.(answer);
      say(status, done, "ok");
    } catch (err) {
      if (!isAbort(err)) say(status, err.message, "error");
    }
    showVisibility();
    dialog.removeAttribute("aria-busy");
  }

  for (const label of radios) {
    const input = label.querySelector("input");
    input.addEventListener("change", () => {
      if (!input.checked) return;
      const [, name] = VISIBILITY.find(([v]) => v === input.value);
      patch({ visibility: input.value }, `Visibility: ${name.toLowerCase()}.`);
    });
  }
  rotate.addEventListener("click", () => patch({ rotate_link: true }, "A new link is made; the old one no longer opens it."));
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(linkInput.value);
      say(status, "The link is copied.", "ok");
    } catch {
      linkInput.select();
      const copied = document.execCommand && document.execCommand("copy");
      say(status, copied ? "The link is copied." : "Select the link and copy it (Ctrl+C).", copied ? "ok" : "");
    }
  });
  addForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = username.value.trim();
    if (!name) { say(status, "Give the user name of whom to share it with.", "error"); return; }
    addButton.disabled = true;
    act(async () => {
      await post(`${HYPOTHESES}${hyp.id}/shares/`, { username: name, role: role.value });
      username.value = "";
    }, `Shared with ${name} as ${role.value}.`).finally(() => { addButton.disabled = false; });
  });

  return {
    /** Open the dialog for a hypothesis version answer. */
    async open(version) {
      hyp = version;
      owner = version.role === "owner";
      title.textContent = `Share “${version.title}”`;
      say(status, "");
      readOnly.hidden = owner;
      readOnly.textContent = owner ? ""
        : `You are ${version.role === "editor" ? "an editor" : "a viewer"} of it: only its owner (or the project's owner) changes who can open it.`;
      peopleSection.hidden = !owner;
      people.replaceChildren();
      showVisibility();
      dialog.showModal();
      const checked = radios.map((l) => l.querySelector("input")).find((i) => i.checked);
      (owner && checked ? checked : close).focus();
      try {
        await loadPeople();
      } catch (err) {
        if (!isAbort(err)) say(status, err.message, "error");
      }
    },
    close: () => dialog.close(),
    element: dialog,
  };
}
