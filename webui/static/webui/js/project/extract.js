// The extraction form: a model and a corpus from the project, which values to keep
// (offered as the model's type allows), top-k, surprisal and how the values are
// stored (float32, or float16 for half the disk). It starts a job that
// shows in the form and under Jobs. In project/ as a part of the project page.

import { post } from "../core/api.js";
import { problem, putNumbers, putOptional, wireForm } from "../core/forms.js";
import { fillChoices } from "./choices.js";

/** Which values a model has: c only for an LSTM, gates for LSTM and GRU. */
function valuesOf(model) {
  if (!model || model.rnn_type === "LSTM") return ["h", "c", "gates"];
  return model.rnn_type === "GRU" ? ["h", "gates"] : ["h"];
}

/** Returns {update(project)}, or null without the form (a viewer's page). */
export function createExtractForm(form, { api, jobs }) {
  if (!form) return null;
  let models = [];

  function syncValueChoices() {
    const m = models.find((x) => x.id === form.elements.model.value);
    const allowed = valuesOf(m);
    for (const box of form.querySelectorAll('input[name="values"]')) {
      const ok = allowed.includes(box.value);
      box.disabled = !ok;
      if (!ok) box.checked = false;
    }
    // Predictions are tokens of the model's vocabulary: at most that many.
    const topk = form.elements.topk;
    const most = Math.min(100, m ? m.vocab_size : 100);
    topk.max = String(most);
    if (Number(topk.value) > most) topk.value = String(most);
  }

  form.elements.model.addEventListener("change", syncValueChoices);

  wireForm(form, async (f) => {
    const model = f.elements.model.value;
    const corpus = f.elements.corpus.value;
    if (!model || !corpus) throw problem("Choose a model and a corpus (upload them first).");
    const values = [...f.querySelectorAll('input[name="values"]:checked')].map((b) => b.value);
    if (!values.length) throw problem("Choose at least one kind of value to extract.");
    const body = { model, corpus, values, surprisal: f.elements.surprisal.checked };
    if (f.elements.dtype && f.elements.dtype.value !== "float32") body.dtype = f.elements.dtype.value;
    putNumbers(body, f, [["topk", "Top-k"]]);
    putOptional(body, f, ["name"]);
    jobs.track((await post(api.extractions, body)).job, f);
    return "Extraction started; its progress shows below.";
  });

  return {
    update(project) {
      models = project.models || [];
      fillChoices(form.elements.model, "model", models);
      fillChoices(form.elements.corpus, "corpus", project.corpora);
      syncValueChoices();
    },
  };
}
