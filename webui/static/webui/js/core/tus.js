// Resumable uploads: a small tus 1.0 client (docs/api.md, "Resumable uploads") over
// fetch. A file goes up in pieces of `chunkSize` bytes; its upload URL is kept in
// localStorage under the project, kind, file name, size and modification time, so
// that picking the same file again after a reload (or a dropped connection) asks the
// server how far it got (HEAD) and sends only the rest. In core/ beside the API
// client whose errors and CSRF token it shares.

import { ApiError, csrfToken, errorFrom } from "./api.js";

const TUS_VERSION = "1.0.0";
const KEY_PREFIX = "statelab.upload:";
const BUSY_RETRIES = 20; // 423: the server still finishes a request of the page before
const BUSY_WAIT_MS = 500;

/** The localStorage key of an upload of `file` as `kind` into `project`. */
export function uploadKey(project, kind, file) {
  return `${KEY_PREFIX}${project}:${kind}:${file.name}:${file.size}:${file.lastModified}`;
}

/** The upload URL kept for this file, if an earlier page started it. */
export function pendingUpload(project, kind, file) {
  try {
    return localStorage.getItem(uploadKey(project, kind, file));
  } catch {
    return null; // storage refused (private mode): uploads still work, without resuming
  }
}

function remember(key, url) {
  try {
    if (url) localStorage.setItem(key, url);
    else localStorage.removeItem(key);
  } catch {
    // see pendingUpload
  }
}

function base64(text) {
  let bin = "";
  for (const b of new TextEncoder().encode(text)) bin += String.fromCharCode(b);
  return btoa(bin);
}

function encodeMetadata(pairs) {
  return Object.entries(pairs)
    .filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => `${k} ${base64(String(v))}`)
    .join(",");
}

async function send(url, method, headers = {}, body = undefined) {
  const h = { "Tus-Resumable": TUS_VERSION, Accept: "application/json", ...headers };
  if (method !== "HEAD" && method !== "GET") h["X-CSRFToken"] = csrfToken();
  try {
    return await fetch(url, { method, headers: h, body, credentials: "same-origin" });
  } catch {
    throw new ApiError("The connection was lost; choose the same file again to continue the upload.");
  }
}

const wait = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

/** The stored offset of `url` (HEAD), or null when the server no longer has it. */
async function offsetOf(url) {
  for (let i = 0; ; i += 1) {
    const r = await send(url, "HEAD");
    if (r.status === 423 && i < BUSY_RETRIES) {
      await wait(BUSY_WAIT_MS);
      continue;
    }
    if (!r.ok) return null;
    return Number(r.headers.get("Upload-Offset"));
  }
}

/**
 * Upload `file` as `kind` (with `metadata`) into the project whose creation URL is
 * `createUrl`, resuming an earlier upload of the same file. onProgress(sent, total,
 * {resumed}) follows the bytes the server holds. Resolves with the finished upload
 * as GET /api/uploads/{id}/ describes it (`job` is the job it started, if any).
 */
export async function uploadResumable({
  createUrl, project, kind, file, metadata = {}, chunkSize = 8 << 20, onProgress = () => {},
}) {
  const key = uploadKey(project, kind, file);
  let url = pendingUpload(project, kind, file);
  let offset = url ? await offsetOf(url) : null;
  const resumed = offset !== null;
  if (!resumed) {
    const r = await send(createUrl, "POST", {
      "Upload-Length": String(file.size),
      "Upload-Metadata": encodeMetadata({ kind, filename: file.name, ...metadata }),
    });
    if (r.status !== 201) throw await errorFrom(r);
    url = r.headers.get("Location");
    offset = 0;
    remember(key, url);
  }
  onProgress(offset, file.size, { resumed });
  let busy = 0;
  while (offset < file.size) {
    const end = Math.min(offset + chunkSize, file.size);
    const r = await send(url, "PATCH", {
      "Content-Type": "application/offset+octet-stream",
      "Upload-Offset": String(offset),
    }, file.slice(offset, end));
    if ((r.status === 409 || r.status === 423) && busy < BUSY_RETRIES) {
      // Another tab, or the end of a request the page made before: ask where it stands.
      busy += 1;
      if (r.status === 423) await wait(BUSY_WAIT_MS);
      const now = await offsetOf(url);
      if (now === null) break;
      offset = now;
      continue;
    }
    if (!r.ok) {
      if (r.status >= 400 && r.status < 500 && r.status !== 408) remember(key, null);
      throw await errorFrom(r);
    }
    offset = Number(r.headers.get("Upload-Offset"));
    onProgress(offset, file.size, { resumed });
  }
  remember(key, null);
  const r = await send(url, "GET");
  if (!r.ok) throw await errorFrom(r);
  const upload = await r.json();
  if (upload.state === "failed") throw new ApiError(upload.error || "The upload was refused.");
  if (upload.state !== "done") {
    throw new ApiError("The upload did not finish; choose the same file again to continue.");
  }
  return upload;
}
