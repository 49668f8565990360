// View state in the URL: one schema of keys, each with a strict codec and a default.
//
// Defaults are left out of the URL; a value that does not parse exactly falls back to
// the default (and is dropped from the URL), never to a guess: "007" is not 7.
// A finished change is pushState, a change while dragging is replaceState, and
// popstate re-renders through the subscribers, so reloading a URL gives the same view.

const INT = /^(0|-?[1-9]\d*)$/;
const FLOAT = /^-?(0|[1-9]\d*)(\.\d+)?$/;

export const codecs = {
  int: {
    parse: (s) => (INT.test(s) && Number.isSafeInteger(Number(s)) ? Number(s) : undefined),
    format: (v) => String(v),
    equal: (a, b) => a === b,
  },
  float: {
    parse: (s) => (FLOAT.test(s) ? Number(s) : undefined),
    format: (v) => String(v),
    equal: (a, b) => a === b,
  },
  str: {
    parse: (s) => (s === "" ? undefined : s),
    format: (v) => v,
    equal: (a, b) => a === b,
  },
  intList: {
    parse: (s) => {
      if (s === "") return [];
      const parts = s.split(",");
      if (!parts.every((p) => INT.test(p))) return undefined;
      return parts.map(Number);
    },
    format: (v) => v.join(","),
    equal: (a, b) => a.length === b.length && a.every((x, i) => x === b[i]),
  },
};

/**
 * schema: {key: {codec, default, clamp?(value, state) -> value}}
 * Returns {get(), set(patch, {replace}), subscribe(fn) -> unsubscribe}.
 */
export function createUrlState(schema) {
  const listeners = new Set();

  function read() {
    const params = new URLSearchParams(window.location.search);
    const state = {};
    for (const [key, spec] of Object.entries(schema)) {
      const raw = params.get(key);
      const parsed = raw === null ? undefined : spec.codec.parse(raw);
      state[key] = parsed === undefined ? spec.default : parsed;
    }
    for (const [key, spec] of Object.entries(schema)) {
      if (spec.clamp) state[key] = spec.clamp(state[key], state);
    }
    return state;
  }

  function urlFor(state) {
    const params = new URLSearchParams(window.location.search);
    for (const [key, spec] of Object.entries(schema)) {
      const v = state[key];
      if (v === undefined || v === null || spec.codec.equal(v, spec.default)) params.delete(key);
      else params.set(key, spec.codec.format(v));
    }
    const q = params.toString().replace(/%2C/g, ",");
    return `${window.location.pathname}${q ? `?${q}` : ""}${window.location.hash}`;
  }

  let current = read();

  function notify() {
    for (const fn of listeners) fn(current);
  }

  window.addEventListener("popstate", () => {
    current = read();
    notify();
  });

  return {
    get: () => ({ ...current }),
    set(patch, { replace = false } = {}) {
      const next = { ...current, ...patch };
      for (const [key, spec] of Object.entries(schema)) {
        if (spec.clamp) next[key] = spec.clamp(next[key], next);
      }
      const url = urlFor(next);
      const changed = Object.keys(schema).some((k) => !schema[k].codec.equal(next[k], current[k]));
      current = next;
      if (url !== `${window.location.pathname}${window.location.search}${window.location.hash}`) {
        if (replace) window.history.replaceState(null, "", url);
        else window.history.pushState(null, "", url);
      }
      if (changed) notify();
    },
    /** Rewrite the URL to the canonical form of the current state without a new entry. */
    normalize() {
      window.history.replaceState(null, "", urlFor(current));
    },
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    urlFor,
  };
}
