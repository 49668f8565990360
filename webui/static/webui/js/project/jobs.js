// The project's jobs: drawn by views/jobs.js, kept current here. The list is polled
// about once a second while any job is queued or running; a job that a form started
// is shown at once (track), both under Jobs and in the form that started it (its
// progress, message, curve and result where the user is looking); when a job
// succeeds, onFinished() refreshes what it made. `badge` counts the running jobs.
// In project/ because it drives this page's job endpoints; the drawing stays in views/.

import { get, isAbort, post } from "../core/api.js";
import { clearError, showError } from "../core/dom.js";
import { ACTIVE, createJobList } from "../views/jobs.js";

const POLL_MS = 1000;

const newest = (a, b) => (a.created_at < b.created_at ? 1 : -1);

export function createJobsPanel(root, { api, statesetBase, canCancel, onFinished, badge = null }) {
  let jobs = [];
  let timer = null;
  const followers = new Map(); // job id -> the job view in the form that started it

  async function onCancel(job) {
    try {
      merge([await post(`${api.jobBase}${job.id}/cancel/`, {})]);
    } catch (err) {
      showError(root, err.message);
    }
    pollNow();
  }
  const view = createJobList(root, { canCancel, statesetBase, onCancel });

  /** Whether a job went from queued or running to succeeded between two looks. */
  function anySucceeded(before, after) {
    const known = new Map(before.map((j) => [j.id, j]));
    return after.some((j) => {
      const was = known.get(j.id);
      return was && ACTIVE.has(was.status) && j.status === "succeeded";
    });
  }

  function show(list) {
    jobs = list;
    view.update(jobs);
    for (const [id, follower] of followers) {
      const job = jobs.find((j) => j.id === id);
      if (job) follower.update([job]);
    }
    if (badge) {
      const n = jobs.filter((j) => ACTIVE.has(j.status)).length;
      badge.hidden = n === 0;
      badge.textContent = n ? `${n} running` : "";
    }
  }

  function merge(incoming) {
    const byId = new Map(jobs.map((j) => [j.id, j]));
    for (const j of incoming) byId.set(j.id, j);
    show([...byId.values()].sort(newest));
  }

  async function poll() {
    timer = null;
    try {
      const fresh = await get(api.jobs, { key: "jobs" });
      const finished = anySucceeded(jobs, fresh);
      show(fresh);
      clearError(root);
      if (finished) await onFinished();
    } catch (err) {
      if (isAbort(err)) return;
      showError(root, `Job status could not be refreshed: ${err.message}`);
    }
    if (timer === null && jobs.some((j) => ACTIVE.has(j.status))) timer = setTimeout(poll, POLL_MS);
  }

  function pollNow() {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    poll();
  }

  return {
    start: poll,
    /** A job a form just started: list it, follow it in the form, and look again now. */
    track(job, form = null) {
      const seen = jobs.some((j) => j.id === job.id);
      if (form) {
        let slot = form.querySelector(".form-job");
        if (!slot) {
          slot = document.createElement("div");
          slot.className = "form-job";
          slot.setAttribute("aria-live", "polite");
          form.append(slot);
        }
        for (const [id, f] of followers) if (f.slot === slot) followers.delete(id);
        const follower = createJobList(slot, { canCancel, statesetBase, onCancel, empty: "" });
        follower.slot = slot;
        followers.set(job.id, follower);
      }
      merge([job]);
      // Already done by the time the answer came: nothing will see it finish.
      if (!seen && job.status === "succeeded") onFinished();
      pollNow();
    },
  };
}
