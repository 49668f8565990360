// Following a job started by a POST that answered 202: poll GET /api/jobs/{id}/
// until it is finished, reporting its progress on the way.

import { ApiError, get, post } from "./api.js";
import { h } from "./format.js";

export const JOB_BASE = "/api/jobs/";
const ACTIVE = new Set(["queued", "running"]);

function abortError() {
  return new DOMException("The job is no longer followed.", "AbortError");
}

function pause(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) { reject(abortError()); return; }
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); reject(abortError()); }, { once: true });
  });
}

/**
 * Wait for `job` ({id, status, progress, …}) to finish. onProgress(job) hears every
 * state seen; `signal` stops following (the promise rejects with an AbortError).
 * Resolves with the succeeded job; a failed or cancelled one throws an ApiError
 * with the job's error.
 */
export async function waitForJob(job, { onProgress, signal, interval = 400, base = JOB_BASE, key } = {}) {
  let current = job;
  onProgress?.(current);
  while (ACTIVE.has(current.status)) {
    await pause(interval, signal);
    current = await get(`${base}${current.id}/`, { key, signal });
    if (signal?.aborted) throw abortError();
    onProgress?.(current);
  }
  if (current.status !== "succeeded") {
    throw new ApiError(current.error || `The job was ${current.status}.`, { code: current.status });
  }
  return current;
}

/**
 * POST `body` to `url` and get what it makes: the answer of a 200, or, when the
 * server answers 202 with a job, that job followed to its end (onProgress, signal)
 * and then GET resultUrl(job). Reads run under `${key}-job` and `${key}-detail`.
 */
export async function postFollowed(url, body, { resultUrl, onProgress, signal, key }) {
  const answer = await post(url, body, { withStatus: true });
  if (answer.status !== 202) return answer.body;
  const job = await waitForJob(answer.body.job, { onProgress, signal, key: `${key}-job` });
  return get(resultUrl(job), { key: `${key}-detail` });
}

/** The progress bar of a job: {el, set(job or null)}; hidden while there is none. */
export function progressBar(label) {
  // Widths go through the CSSOM: the Content-Security-Policy blocks style attributes.
  const fill = h("div", { class: "progress-fill" });
  fill.style.width = "0%";
  const bar = h("div", {
    class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100",
    "aria-valuenow": "0", "aria-label": label,
  }, fill);
  const text = h("span", { class: "meta" });
  const el = h("div", { class: "job-progress", hidden: true }, bar, text);
  return {
    el,
    set(job) {
      el.hidden = !job;
      if (!job) return;
      const pct = Math.round(Math.max(0, Math.min(1, job.progress || 0)) * 100);
      fill.style.width = `${pct}%`;
      bar.setAttribute("aria-valuenow", String(pct));
      text.textContent = job.message || job.status || "";
    },
  };
}
