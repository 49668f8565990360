// Members: everyone sees the list; owners get a role select and a remove button per
// row and the form to add a member. A change to the caller's own role reloads the
// page, since what it offers depends on that role; leaving goes to the project list.
// In project/ because it drives this page's members endpoint.

import { del, get, isAbort, post } from "../core/api.js";
import { actionsHeader, errorAlert, markBusy, markReady, table } from "../core/dom.js";
import { fmtDate, h } from "../core/format.js";
import { problem, say, wireForm } from "../core/forms.js";

const ROLES = ["viewer", "editor", "owner"];

/** root: the list; status: the line above it; form: the owner's form (or null). */
export function createMembersPanel(root, { status, form, boot }) {
  const isOwner = boot.role === "owner";
  const url = boot.api.members;

  /** After the caller's own membership changed: reload, or leave if access is gone. */
  function ownChange({ removed = false, role = null }) {
    if (removed) window.location.assign(boot.homeUrl);
    else if (role !== boot.role) window.location.reload();
    else return false;
    return true;
  }

  async function load() {
    try {
      const members = await get(url, { key: "members" });
      root.replaceChildren(table(
        ["User", "Role", "Member since", isOwner ? actionsHeader() : null], members.map(row)));
    } catch (err) {
      if (isAbort(err)) return;
      root.replaceChildren(errorAlert(err.message));
    }
    markReady(root);
  }

  /** A row's action: call the API, say how it went above the list, redraw the list. */
  async function act(control, call, ownAfter, done) {
    control.disabled = true;
    say(status, "");
    markBusy(root);
    try {
      await call();
      if (ownAfter && ownChange(ownAfter)) return;
      say(status, done, "ok");
    } catch (err) {
      say(status, err.message, "error");
    }
    await load();
  }

  function row(m) {
    const you = m.username === boot.username;
    const role = isOwner
      ? h("select", {
        class: "role-select", "aria-label": `Role of ${m.username}`,
        onchange: (ev) => {
          const r = ev.currentTarget.value;
          act(ev.currentTarget, () => post(url, { username: m.username, role: r }),
            you && { role: r }, `${m.username} is now ${r}.`);
        },
      }, ROLES.map((r) => h("option", { value: r, selected: r === m.role }, r)))
      : m.role;
    const remove = (ev) => {
      const question = you
        ? "Leave this project? You will no longer see it."
        : `Remove ${m.username} from this project?`;
      if (!window.confirm(question)) return;
      act(ev.currentTarget, () => del(url, { username: m.username }),
        you && { removed: true }, `${m.username} was removed.`);
    };
    return h("tr", { "data-username": m.username, "data-role": m.role },
      h("td", {}, m.username, you ? h("span", { class: "muted" }, " (you)") : null),
      h("td", {}, role),
      h("td", {}, fmtDate(m.created_at)),
      isOwner
        ? h("td", { class: "actions" }, h("button", {
          type: "button", class: "btn btn-small btn-danger", "data-action": "remove",
          "aria-label": `Remove ${m.username}`, onclick: remove,
        }, "Remove"))
        : null);
  }

  wireForm(form, async (f, progress) => {
    const username = f.elements.username.value.trim();
    if (!username) {
      f.elements.username.focus();
      throw problem("Enter a user name.");
    }
    progress(`Saving ${username}…`);
    const saved = await post(url, { username, role: f.elements.role.value });
    if (saved.username === boot.username && ownChange({ role: saved.role })) return undefined;
    markBusy(root);
    await load();
    return `${saved.username} is now ${saved.role}.`;
  }, { reset: true });

  return { load };
}
