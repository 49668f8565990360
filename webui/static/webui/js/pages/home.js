// The project list (the caller's projects and the public ones, flagged) and the
// "new project" form (POST /api/projects/).

import { get, post } from "../core/api.js";
import { bootData, fmtDate, h } from "../core/format.js";

const boot = bootData();
const listRoot = document.getElementById("project-list");
const form = document.getElementById("new-project");
const status = form.querySelector(".form-status");

function render(projects) {
  if (!projects.length) {
    listRoot.replaceChildren(h("p", { class: "muted empty" },
      "You have no projects yet. Create one with the form to start importing or uploading data."));
  } else {
    listRoot.replaceChildren(h("ul", { class: "card-list" }, projects.map((p) => h("li", {
      class: "card project-card", "data-slug": p.slug,
    },
    h("h3", {}, h("a", { href: `${boot.pageUrl}${p.slug}/` }, p.name),
      p.public ? h("span", {
        class: "badge badge-public", "data-testid": "public",
        title: p.member ? "Every signed-in user can read this project." : "A public project: you can read it; its members edit it.",
      }, "public") : null),
    p.description ? h("p", {}, p.description) : null,
    h("p", { class: "meta" }, h("code", {}, p.slug), ` · ${p.role} · created ${fmtDate(p.created_at)}`)))));
  }
  listRoot.dataset.ready = "true";
  listRoot.removeAttribute("aria-busy");
}

async function load() {
  try {
    render(await get(boot.api.projects, { key: "projects" }));
  } catch (err) {
    if (err.name === "AbortError") return;
    listRoot.replaceChildren(h("p", { class: "alert alert-error", role: "alert" }, err.message));
    listRoot.dataset.ready = "true";
  }
}

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
    window.location.assign(`${boot.pageUrl}${project.slug}/`);
  } catch (err) {
    status.className = "form-status error";
    status.textContent = err.message;
    button.disabled = false;
  }
});

load();
