// The one way the pages talk to /api/.
//
// - Writes carry Django's CSRF token (from the page's <meta>, else the cookie).
// - Reads made under a `key` cancel the previous read under the same key, so a
//   slow answer for an old view can never overwrite a newer one.
// - Failures throw ApiError whose message is the server's `error.message`.

export class ApiError extends Error {
  constructor(message, { status = 0, code = "error", details = {} } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export function isAbort(err) {
  return err != null && err.name === "AbortError";
}

export function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta && meta.content) return meta.content;
  const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

const inflight = new Map();

/** The ApiError a failed `response` stands for: the server's `error` (message, code,
 * details) when its body has one, else a sentence with the status. */
export async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const e = body && body.error;
  if (e && typeof e.message === "string") {
    return new ApiError(e.message, { status: response.status, code: e.code, details: e.details || {} });
  }
  const text = response.status === 413 ? "The file is too large for the server."
    : `The server answered ${response.status} ${response.statusText || ""}`.trim() + ".";
  return new ApiError(text, { status: response.status });
}

/**
 * request(url, {method, json, form, key, signal, withStatus, binary}) -> parsed JSON
 * (or null for 204); with `withStatus`, {status, body} for endpoints whose answer
 * depends on the status (201 with what was made, 202 with the job that makes it);
 * with `binary`, the body as an ArrayBuffer (errors still come as JSON).
 * `json` sends a JSON body; `form` sends a FormData (multipart) body.
 */
export async function request(url, {
  method = "GET", json, form, key, signal, withStatus = false, binary = false,
} = {}) {
  const headers = { Accept: binary ? "application/octet-stream, application/json;q=0.5" : "application/json" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  const safe = method === "GET" || method === "HEAD";
  if (!safe) headers["X-CSRFToken"] = csrfToken();

  let controller = null;
  if (key) {
    inflight.get(key)?.abort();
    controller = new AbortController();
    inflight.set(key, controller);
    if (signal) signal.addEventListener("abort", () => controller.abort(), { once: true });
  }
  try {
    let response;
    try {
      response = await fetch(url, {
        method, headers, body, credentials: "same-origin",
        signal: controller ? controller.signal : signal,
      });
    } catch (err) {
      if (isAbort(err)) throw err;
      throw new ApiError("The server could not be reached; check the connection and try again.");
    }
    if (!response.ok) throw await errorFrom(response);
    const answer = response.status === 204 ? null
      : binary ? await response.arrayBuffer() : await response.json();
    return withStatus ? { status: response.status, body: answer } : answer;
  } finally {
    if (key && inflight.get(key) === controller) inflight.delete(key);
  }
}

export const get = (url, opts = {}) => request(url, { ...opts, method: "GET" });
export const post = (url, json, opts = {}) => request(url, { ...opts, method: "POST", json });
export const postForm = (url, form, opts = {}) => request(url, { ...opts, method: "POST", form });
/** DELETE, with an optional JSON body (some endpoints name what to remove in it). */
export const del = (url, json, opts = {}) => request(url, { ...opts, method: "DELETE", json });

const utf8 = new TextDecoder();

/**
 * A context window read packed (`values=f32`, docs/api.md "Context windows"): the
 * same object as the JSON answer, with `values[i]` a Float32Array view per cell, so
 * a 200 x 650 window costs no JSON parse of 130,000 numbers.
 */
export async function getWindow(url, opts = {}) {
  const sep = url.includes("?") ? "&" : "?";
  const buf = await request(`${url}${sep}values=f32`, { ...opts, method: "GET", binary: true });
  const n = new DataView(buf).getUint32(0, true);
  const answer = JSON.parse(utf8.decode(new Uint8Array(buf, 4, n)));
  const [rows, cols] = answer.shape;
  const flat = new Float32Array(buf, 4 + n, rows * cols);
  answer.values = Array.from({ length: rows }, (_, i) => flat.subarray(i * cols, (i + 1) * cols));
  delete answer.shape;
  return answer;
}

/** A URL with query parameters; undefined and null values are left out. */
export function withQuery(url, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null) continue;
    q.set(k, Array.isArray(v) ? v.join(",") : String(v));
  }
  const s = q.toString();
  return s ? `${url}?${s}` : url;
}
