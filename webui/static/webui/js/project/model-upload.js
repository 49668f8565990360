// The model upload form. The server stores the files and answers 202 with the short
// job that checks the weights on a worker; the job shows under Jobs (with the
// server's reason when it refuses the model) and the model list refreshes when it
// succeeds, like any job. In project/ as a part of the project page's side column.

import { postForm } from "../core/api.js";
import { problem, putOptional, wireForm } from "../core/forms.js";

export function wireModelForm(form, { api, jobs }) {
  wireForm(form, async (f, progress) => {
    const weights = f.elements.weights.files[0];
    const vocab = f.elements.vocab.files[0];
    if (!weights || !vocab) throw problem("Choose the weights file and the vocabulary file.");
    const fd = new FormData();
    fd.append("weights", weights);
    fd.append("vocab", vocab);
    const config = f.elements.config.files[0];
    if (config) fd.append("config", config);
    putOptional(fd, f, ["name", "rnn_type"]);
    progress(`Uploading ${weights.name}…`);
    const { job } = await postForm(api.models, fd);
    jobs.track(job, f);
    return `Uploaded ${weights.name}; the check runs below (and under Jobs).`;
  }, { reset: true });
}
