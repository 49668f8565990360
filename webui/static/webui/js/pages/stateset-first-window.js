// The analysis page's first window, asked for before the page's modules have loaded.
// The server names it in the boot data (`firstWindow`: the window the page's URL
// asks for, with the page's defaults and limits) and the page's head preloads it,
// so its request starts while the HTML is parsed; this module, which imports only
// the API client, takes that answer over while the browser is still fetching the
// twenty-odd modules of pages/stateset.js. The page uses it only when its own
// first window is the same (`firstWindow(url)`).

import { getWindow } from "../core/api.js";

function start() {
  const el = document.getElementById("boot-data");
  const boot = el ? JSON.parse(el.textContent) : {};
  if (!boot.firstWindow) return null;
  const url = boot.firstWindow;
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
