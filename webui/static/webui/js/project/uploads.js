// The two file uploads that start a job: the LSTMVis import (a zip) and the text
// corpus. Both answer 202 with the job, which shows in the form and under Jobs. In project/ as a
// part of the project page's side column.

import { postForm } from "../core/api.js";
import { problem, putOptional, wireForm } from "../core/forms.js";

/** build(form, fd) adds the fields besides the file to the FormData. */
function wireUpload(form, url, jobs, build = () => {}) {
  wireForm(form, async (f, progress) => {
    const file = f.elements.file.files[0];
    if (!file) throw problem("Choose a file first.");
    const fd = new FormData();
    fd.append("file", file);
    build(f, fd);
    progress(`Uploading ${file.name}…`);
    const answer = await postForm(url, fd);
    jobs.track(answer.job, f);
    return `Uploaded ${file.name}; its progress shows below.`;
  }, { reset: true });
}

export function wireImportForm(form, { api, jobs }) {
  wireUpload(form, api.imports, jobs);
}

export function wireCorpusForm(form, { api, jobs }) {
  wireUpload(form, api.corpora, jobs, (f, fd) => {
    fd.append("tokenization", f.elements.tokenization.value || "word");
    putOptional(fd, f, ["name"]);
  });
}
