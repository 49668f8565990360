// The comments on a hypothesis: author, time and version of each (its body shown as
// safe Markdown), a form to add one, and Edit / Delete on one's own.

import { del, get, isAbort, post, request, withQuery } from "../core/api.js";
import { markBusy, markReady } from "../core/dom.js";
import { fmtDate, h } from "../core/format.js";
import { say } from "../core/forms.js";
import { renderMarkdown } from "../core/markdown.js";

const HYPOTHESES = "/api/hypotheses/";

/** root: an empty <section>; me: the signed-in user's name. */
export function createComments(root, { me }) {
  let hyp = null;
  let link = null;

  const list = h("ol", { class: "comment-list", "aria-label": "Comments" });
  const body = h("textarea", { name: "body", rows: "2", maxlength: "20000", placeholder: "Markdown: **bold**, `code`, [links](https://…)" });
  const add = h("button", { type: "submit", class: "btn" }, "Add comment");
  const status = h("div", { class: "form-status", role: "status", "aria-live": "polite" });
  const form = h("form", { class: "comment-form stack", novalidate: true },
    h("label", { class: "field" }, h("span", {}, "Comment"), body), h("div", {}, add));
  root.replaceChildren(h("h3", { id: "hyp-comments-h" }, "Comments"), list, status, form);
  root.setAttribute("aria-labelledby", "hyp-comments-h");
  markBusy(root);

  const url = (path = "", params = {}) => withQuery(`${HYPOTHESES}${hyp.id}/comments/${path}`, { ...params, link });

  function item(c) {
    const mine = c.author === me;
    const text = h("div", { class: "comment-body prose" });
    text.append(renderMarkdown(c.body));
    const actions = mine ? h("span", { class: "comment-actions" },
      h("button", { type: "button", class: "btn btn-small btn-quiet", "aria-label": `Edit comment of ${fmtDate(c.created_at)}`, onclick: () => edit(c, li) }, "Edit"),
      h("button", { type: "button", class: "btn btn-small btn-quiet btn-danger", "aria-label": `Delete comment of ${fmtDate(c.created_at)}`, onclick: () => remove(c) }, "Delete"))
      : null;
    const li = h("li", { class: "comment", "data-id": c.id },
      h("div", { class: "comment-head" },
        h("strong", {}, c.author || "a former user"),
        h("time", { class: "meta", datetime: c.created_at }, fmtDate(c.created_at)),
        c.edited_at ? h("span", { class: "meta", title: `edited ${fmtDate(c.edited_at)}` }, "(edited)") : null,
        c.version ? h("span", { class: "comment-version", title: `on version ${c.version}` }, `v${c.version}`) : null,
        actions),
      text);
    return li;
  }

  function edit(c, li) {
    const area = h("textarea", { rows: "3", maxlength: "20000", "aria-label": "Edit the comment" }, c.body);
    const save = h("button", { type: "submit", class: "btn btn-small btn-primary" }, "Save");
    const cancel = h("button", { type: "button", class: "btn btn-small", onclick: () => load() }, "Cancel");
    const f = h("form", { class: "comment-edit stack", novalidate: true }, area, h("div", { class: "btn-row" }, save, cancel));
    f.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!area.value.trim()) { say(status, "A comment needs some text.", "error"); return; }
      save.disabled = true;
      try {
        await request(url(`${c.id}/`), { method: "PATCH", json: { body: area.value } });
        say(status, "");
        await load();
      } catch (err) {
        say(status, err.message, "error");
        save.disabled = false;
      }
    });
    li.querySelector(".comment-body").replaceWith(f);
    area.focus();
  }

  async function remove(c) {
    markBusy(root);
    try {
      await del(url(`${c.id}/`));
      say(status, "Comment deleted.", "ok");
    } catch (err) {
      say(status, err.message, "error");
    }
    await load();
  }

  async function load() {
    if (!hyp) return;
    markBusy(root);
    try {
      const comments = await get(url(), { key: "comments" });
      list.replaceChildren(...(comments.length ? comments.map(item) : [h("li", { class: "muted empty" }, "No comments yet.")]));
    } catch (err) {
      if (isAbort(err)) return;
      say(status, err.message, "error");
    }
    markReady(root);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!hyp) return;
    if (!body.value.trim()) { say(status, "A comment needs some text.", "error"); return; }
    add.disabled = true;
    try {
      await post(url(), { body: body.value, version: hyp.version });
      body.value = "";
      say(status, "");
      await load();
    } catch (err) {
      say(status, err.message, "error");
    } finally {
      add.disabled = false;
    }
  });

  return {
    /** The open hypothesis version (null: none, the section hides). */
    async setVersion(version, linkToken = null) {
      const sameHyp = hyp && version && hyp.id === version.id;
      hyp = version;
      link = linkToken;
      root.hidden = !version;
      if (!version) { list.replaceChildren(); markReady(root); return; }
      if (!sameHyp) { say(status, ""); await load(); }
    },
  };
}
