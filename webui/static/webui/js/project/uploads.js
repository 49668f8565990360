// The two file uploads that start a job: the LSTMVis import (a zip) and the text
// corpus. Files go up resumably (core/tus.js) in pieces, with a progress bar by bytes;
// choosing the same file again after a reload or a lost connection continues where
// the server stopped. The finished upload's job shows in the form and under Jobs. In
// project/ as a part of the project page's side column.

import { fmtBytes, h } from "../core/format.js";
import { problem, wireForm } from "../core/forms.js";
import { pendingUpload, uploadResumable } from "../core/tus.js";

/** A progress bar by bytes in `form` (made on first use); returns update(sent, total). */
export function uploadProgress(form) {
  let box = form.querySelector(".upload-progress");
  if (!box) {
    box = h("div", { class: "upload-progress", "aria-live": "polite" },
      h("progress", { max: "1", value: "0", "aria-label": "Upload progress" }), h("span", { class: "muted" }));
    form.querySelector(".form-status").before(box);
  }
  const [bar, text] = box.children;
  return (sent, total, { resumed = false, name = "" } = {}) => {
    bar.max = total;
    bar.value = sent;
    box.dataset.sent = String(sent);
    box.dataset.total = String(total);
    const what = name ? `${name}: ` : "";
    text.textContent = `${what}${fmtBytes(sent)} of ${fmtBytes(total)}${resumed ? " (resumed)" : ""}`;
  };
}

/** Upload one file resumably into the page's project, showing its bytes in `form`. */
export function sendFile(form, { boot, kind, file, metadata = {} }) {
  const show = uploadProgress(form);
  return uploadResumable({
    createUrl: boot.api.uploads,
    project: boot.slug,
    kind,
    file,
    metadata,
    chunkSize: boot.uploadChunkBytes,
    onProgress: (sent, total, how) => show(sent, total, { ...how, name: file.name }),
  });
}

/** Say, when a file is chosen, that an earlier upload of it will be continued. */
function noteResumable(form, boot, kind, input) {
  input.addEventListener("change", () => {
    const file = input.files[0];
    const hint = form.querySelector(".form-status");
    if (file && pendingUpload(boot.slug, kind, file)) {
      hint.className = "form-status";
      hint.textContent = `${file.name} was partly uploaded before; it continues where it stopped.`;
    }
  });
}

/** extra(form) gives the metadata besides the file. */
function wireUpload(form, { boot, jobs }, kind, extra = () => ({})) {
  if (!form) return;
  noteResumable(form, boot, kind, form.elements.file);
  wireForm(form, async (f, progress) => {
    const file = f.elements.file.files[0];
    if (!file) throw problem("Choose a file first.");
    progress(`Uploading ${file.name}…`);
    const upload = await sendFile(f, { boot, kind, file, metadata: extra(f) });
    if (upload.job) jobs.track(upload.job, f);
    return `Uploaded ${file.name}; its progress shows below.`;
  }, { reset: true });
}

export function wireImportForm(form, { boot, jobs }) {
  wireUpload(form, { boot, jobs }, "import");
}

export function wireCorpusForm(form, { boot, jobs }) {
  wireUpload(form, { boot, jobs }, "corpus", (f) => ({
    tokenization: f.elements.tokenization.value || "word",
    name: f.elements.name.value.trim(),
  }));
}
