// Members: everyone sees the list; owners get a role select and a remove button per
// row and the form to add a member. A name the owner cannot already see is invited
// (the API answers 202): owners see its row marked "invited", with a role select
// that changes the invitation and a button that withdraws it; the user joins on
// accepting it from their home page. A change to the caller's own role reloads the
// page, since what it offers depends on that role; leaving goes to the project list.
// In project/ because it drives this page's members endpoint.

import { del, get, isAbort, post } from "../core/api.js";
import { actionsHeader, errorAlert, markBusy, markReady, table } from "../core/dom.js";
import { fmtDate, h } from "../core/format.js";
import { problem, say, wireForm } from "../core/forms.js";

const ROLES = ["viewer", "editor", "owner"];

/** What an add or a role change did: a member's new role, or an invitation sent. */
function savedMessage({ status, body }) {
  return status === 202 || body.invited
    ? `Invited ${body.username} as ${body.role}; they join when they accept.`
    : `${body.username} is now ${body.role}.`;
}

/** POST username + role; {status, body}, since 201 (a member) and 202 (invited) differ. */
const saveMember = (url, username, role) => post(url, { username, role }, { withStatus: true });

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

  /** A row's action: call the API, say how it went above the list, redraw the list.
   * done: the message, or a function of the API's answer that makes it. */
  async function act(control, call, ownAfter, done) {
    control.disabled = true;
    say(status, "");
    markBusy(root);
    try {
      const answer = await call();
      if (ownAfter && ownChange(ownAfter)) return;
      say(status, typeof done === "function" ? done(answer) : done, "ok");
    } catch (err) {
      say(status, err.message, "error");
    }
    await load();
  }

  function row(m) {
    const invited = Boolean(m.invited);
    const you = !invited && m.username === boot.username;
    const role = isOwner
      ? h("select", {
        class: "role-select", "aria-label": `Role of ${m.username}`,
        onchange: (ev) => {
          const r = ev.currentTarget.value;
          act(ev.currentTarget, () => saveMember(url, m.username, r),
            you && { role: r }, savedMessage);
        },
      }, ROLES.map((r) => h("option", { value: r, selected: r === m.role }, r)))
      : m.role;
    // Withdrawing an invitation is the same DELETE as removing a member: by name.
    const remove = (ev) => {
      const question = invited
        ? `Withdraw the invitation of ${m.username}?`
        : you
          ? "Leave this project? You will no longer see it."
          : `Remove ${m.username} from this project?`;
      if (!window.confirm(question)) return;
      act(ev.currentTarget, () => del(url, { username: m.username }),
        you && { removed: true },
        invited ? `The invitation of ${m.username} was withdrawn.` : `${m.username} was removed.`);
    };
    const since = invited
      ? h("span", {
        class: "badge badge-invited", "data-testid": "invited",
        title: `Invited ${fmtDate(m.created_at)}; joins on accepting.`,
      }, "invited")
      : fmtDate(m.created_at);
    const button = invited
      ? h("button", {
        type: "button", class: "btn btn-small", "data-action": "withdraw",
        "aria-label": `Withdraw the invitation of ${m.username}`, onclick: remove,
      }, "Withdraw")
      : h("button", {
        type: "button", class: "btn btn-small btn-danger", "data-action": "remove",
        "aria-label": `Remove ${m.username}`, onclick: remove,
      }, "Remove");
    return h("tr", {
      class: invited ? "member-invited" : null,
      "data-username": m.username, "data-role": m.role, "data-invited": String(invited),
    },
    h("td", {}, m.username, you ? h("span", { class: "muted" }, " (you)") : null),
    h("td", {}, role),
    h("td", {}, since),
    isOwner ? h("td", { class: "actions" }, button) : null);
  }

  wireForm(form, async (f, progress) => {
    const username = f.elements.username.value.trim();
    if (!username) {
      f.elements.username.focus();
      throw problem("Enter a user name.");
    }
    progress(`Saving ${username}…`);
    const answer = await saveMember(url, username, f.elements.role.value);
    const saved = answer.body;
    if (!saved.invited && saved.username === boot.username && ownChange({ role: saved.role })) {
      return undefined;
    }
    markBusy(root);
    await load();
    return savedMessage(answer);
  }, { reset: true });

  return { load };
}
