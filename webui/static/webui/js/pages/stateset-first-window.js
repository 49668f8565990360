// The analysis page's first window, asked for before the page's modules have loaded:
// this module imports only the API client, so the browser runs it while it is still
// fetching the twenty-odd modules of pages/stateset.js, and the window's request
// overlaps that loading instead of starting after it. It reads the window from the
// URL with the same defaults and limits as the page's URL state (pos 0, w 100,
// clamped to 10..400 tokens and to the corpus; the first source); the page uses
// the answer only when its own window is the same (`firstWindow(url)`).

import { getWindow, withQuery } from "../core/api.js";

const W_MIN = 10;
const W_MAX = 400;

function intParam(params, name, fallback) {
  const raw = params.get(name);
  return raw !== null && /^-?\d+$/.test(raw) ? Number(raw) : fallback;
}

function start() {
  const el = document.getElementById("boot-data");
  const boot = el ? JSON.parse(el.textContent) : {};
  const info = boot.stateset;
  if (!info || !info.sources || !info.sources.length || !boot.api || !boot.api.context) return null;
  let search = window.location.search;
  if (!search && boot.guide && boot.guide.query) search = `?${boot.guide.query}`;
  const params = new URLSearchParams(search);
  const wanted = params.get("source");
  const source = info.sources.some((s) => s.id === wanted) ? wanted : info.sources[0].id;
  const w = Math.max(W_MIN, Math.min(W_MAX, intParam(params, "w", 100)));
  const pos = Math.max(0, Math.min(Math.max(0, info.length - w), intParam(params, "pos", 0)));
  const end = Math.min(info.length - 1, pos + w - 1);
  const url = withQuery(boot.api.context, { source, start: pos, end });
  const promise = getWindow(url);
  promise.catch(() => {}); // the page asks again by itself
  return { url, promise };
}

const first = start();

/** The window read ahead for `url`, once (a promise), or null. */
export function firstWindow(url) {
  if (!first || first.url !== url || first.taken) return null;
  first.taken = true;
  return first.promise;
}
