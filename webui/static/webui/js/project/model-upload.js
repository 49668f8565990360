// The model upload form. The vocabulary (and the config, when given) go up first,
// then the weights, each resumably (core/tus.js) with a progress bar by bytes; the
// weights name the other two, and once they have arrived the server starts the short
// job that checks the model on a worker. The job shows under Jobs (with the server's
// reason when it refuses the model) and the model list refreshes when it succeeds,
// like any job. In project/ as a part of the project page's side column.

import { problem, wireForm } from "../core/forms.js";
import { sendFile } from "./uploads.js";

export function wireModelForm(form, { boot, jobs }) {
  wireForm(form, async (f, progress) => {
    const weights = f.elements.weights.files[0];
    const vocab = f.elements.vocab.files[0];
    if (!weights || !vocab) throw problem("Choose the weights file and the vocabulary file.");
    const config = f.elements.config.files[0];
    progress(`Uploading ${weights.name}…`);
    const vocabUpload = await sendFile(f, { boot, kind: "model_vocab", file: vocab });
    const configUpload = config
      ? await sendFile(f, { boot, kind: "model_config", file: config }) : null;
    const upload = await sendFile(f, {
      boot,
      kind: "model",
      file: weights,
      metadata: {
        vocab: vocabUpload.id,
        config: configUpload ? configUpload.id : "",
        name: f.elements.name.value.trim(),
        rnn_type: f.elements.rnn_type.value,
      },
    });
    if (upload.job) jobs.track(upload.job, f);
    return `Uploaded ${weights.name}; the check runs below (and under Jobs).`;
  }, { reset: true });
}
