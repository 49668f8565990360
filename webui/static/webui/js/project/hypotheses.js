// The project's saved hypotheses: title (opening its state set with the hypothesis
// applied), owner, newest version, visibility, tags and when it last changed.
// Lists what the caller may open (GET /api/hypotheses/?project=<slug>).

import { get, isAbort, withQuery } from "../core/api.js";
import { errorAlert, markBusy, markReady, table } from "../core/dom.js";
import { fmtDate, h } from "../core/format.js";

const HYPOTHESES = "/api/hypotheses/";
const VISIBILITY = { private: "private", project: "project", link: "by link", public: "public" };

export function createHypothesesList(root, { slug, statesetBase = "/statesets/" }) {
  function row(x) {
    const href = `${statesetBase}${x.stateset}/?${new URLSearchParams({ h: x.id })}`;
    return h("tr", { "data-id": x.id },
      h("td", {}, h("a", { href }, x.title),
        x.forked_from ? h("span", { class: "muted" }, " (fork)") : null),
      h("td", {}, x.owner || ""),
      h("td", {}, String(x.version)),
      h("td", {}, VISIBILITY[x.visibility] || x.visibility),
      h("td", {}, (x.tags || []).join(", ")),
      h("td", {}, h("time", { datetime: x.created_at }, fmtDate(x.created_at))));
  }

  return {
    async load() {
      markBusy(root);
      try {
        const items = await get(withQuery(HYPOTHESES, { project: slug }), { key: "project-hypotheses" });
        root.replaceChildren(items.length
          ? table(["Title", "Owner", "Version", "Visibility", "Tags", "Updated"], items.map(row))
          : h("p", { class: "muted empty" },
            "No hypotheses yet. Open a state set, select cells and press “Save hypothesis”."));
      } catch (err) {
        if (isAbort(err)) return;
        root.replaceChildren(errorAlert(err.message));
      }
      markReady(root);
    },
  };
}
