// The home page: the invitations to join projects that wait for the caller
// (GET /api/invitations/, accepted or declined here), the project list (the caller's
// projects and the public ones, flagged) and the "new project" form
// (POST /api/projects/).

import { del, get, isAbort, post } from "../core/api.js";
import { errorAlert, markBusy, markReady } from "../core/dom.js";
import { bootData, fmtDate, h } from "../core/format.js";
import { say } from "../core/forms.js";

const boot = bootData();
const listRoot = document.getElementById("project-list");
const invitePanel = document.getElementById("invitations-panel");
const inviteRoot = document.getElementById("invitations");
const inviteStatus = document.getElementById("invitations-status");
const form = document.getElementById("new-project");
const status = form.querySelector(".form-status");

const projectUrl = (slug) => `${boot.pageUrl}${encodeURIComponent(slug)}/`;
const invitationUrl = (id) => `${boot.api.invitations}${encodeURIComponent(id)}/`;

// ---- projects --------------------------------------------------------------

function render(projects) {
  if (!projects.length) {
    listRoot.replaceChildren(h("p", { class: "muted empty" },
      "You have no projects yet. Create one with the form to start importing or uploading data."));
  } else {
    listRoot.replaceChildren(h("ul", { class: "card-list" }, projects.map((p) => h("li", {
      class: "card project-card", "data-slug": p.slug,
    },
    h("h3", {}, h("a", { href: projectUrl(p.slug) }, p.name),
      p.public ? h("span", {
        class: "badge badge-public", "data-testid": "public",
        title: p.member ? "Every signed-in user can read this project." : "A public project: you can read it; its members edit it.",
      }, "public") : null),
    p.description ? h("p", {}, p.description) : null,
    h("p", { class: "meta" }, h("code", {}, p.slug), ` · ${p.role} · created ${fmtDate(p.created_at)}`)))));
  }
  markReady(listRoot);
}

async function loadProjects() {
  try {
    render(await get(boot.api.projects, { key: "projects" }));
  } catch (err) {
    if (isAbort(err)) return;
    listRoot.replaceChildren(errorAlert(err.message));
    markReady(listRoot);
  }
}

// ---- invitations -----------------------------------------------------------

/** The section shows while invitations wait, and after one was answered, so that
 * what came of it stays in view; a caller with none never sees it. */
function showInvitations(count) {
  invitePanel.hidden = count === 0 && !inviteStatus.textContent;
}

function invitationItem(inv) {
  const name = inv.project_name;
  return h("li", { class: "invitation", "data-id": inv.id, "data-project": inv.project },
    h("div", { class: "invitation-text" },
      h("strong", { class: "invitation-project" }, name), " ", h("code", {}, inv.project),
      h("p", { class: "meta" },
        `as ${inv.role}`,
        inv.invited_by ? ` · invited by ${inv.invited_by}` : "",
        ` · ${fmtDate(inv.created_at)}`)),
    h("div", { class: "invitation-actions" },
      h("button", {
        type: "button", class: "btn btn-small btn-primary", "data-action": "accept",
        "aria-label": `Accept the invitation to ${name}`, onclick: (ev) => accept(ev.currentTarget, inv),
      }, "Accept"),
      h("button", {
        type: "button", class: "btn btn-small", "data-action": "decline",
        "aria-label": `Decline the invitation to ${name}`, onclick: (ev) => decline(ev.currentTarget, inv),
      }, "Decline")));
}

async function loadInvitations() {
  try {
    const invitations = await get(boot.api.invitations, { key: "invitations" });
    inviteRoot.replaceChildren(invitations.length
      ? h("ul", { class: "invitation-list", "aria-label": "Invitations" }, invitations.map(invitationItem))
      : h("p", { class: "muted empty" }, "No invitations are waiting for you."));
    showInvitations(invitations.length);
  } catch (err) {
    if (isAbort(err)) return;
    inviteRoot.replaceChildren(errorAlert(err.message));
    invitePanel.hidden = false;
  }
  markReady(inviteRoot);
}

/** Answer an invitation: call the API, say how it went, redraw what changed.
 * done(answer) gives the message: text, or nodes (a link to the project joined). */
async function respond(control, call, done, { joined = false } = {}) {
  control.disabled = true;
  say(inviteStatus, "");
  markBusy(inviteRoot);
  if (joined) markBusy(listRoot);
  try {
    const message = done(await call());
    inviteStatus.className = "form-status ok";
    inviteStatus.replaceChildren(...[message].flat());
  } catch (err) {
    say(inviteStatus, err.message, "error");
  }
  await Promise.all([loadInvitations(), joined ? loadProjects() : null]);
}

function accept(control, inv) {
  respond(control, () => post(`${invitationUrl(inv.id)}accept/`),
    (project) => ["You joined ", h("a", { href: projectUrl(project.slug) }, project.name),
      ` as ${project.role}.`],
    { joined: true });
}

function decline(control, inv) {
  const question = `Decline the invitation to ${inv.project_name}? `
    + "Its owners would have to invite you again.";
  if (!window.confirm(question)) return;
  respond(control, () => del(invitationUrl(inv.id)),
    () => `You declined the invitation to ${inv.project_name}.`);
}

// ---- new project -----------------------------------------------------------

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(form);
  const name = String(data.get("name") || "").trim();
  if (!name) {
    status.className = "form-status error";
    status.textContent = "Give the project a name.";
    return;
  }
  const body = { name, description: String(data.get("description") || "") };
  const slug = String(data.get("slug") || "").trim();
  if (slug) body.slug = slug;
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  status.className = "form-status";
  status.textContent = "Creating…";
  try {
    const project = await post(boot.api.projects, body);
    status.textContent = `Created ${project.name}.`;
    window.location.assign(projectUrl(project.slug));
  } catch (err) {
    status.className = "form-status error";
    status.textContent = err.message;
    button.disabled = false;
  }
});

loadInvitations();
loadProjects();
