// The training form: a corpus from the project and the network's and the run's
// sizes. It starts a job whose learning curve shows in the form. In project/ as a
// part of the project page's side column.

import { post } from "../core/api.js";
import { problem, putNumbers, putOptional, wireForm } from "../core/forms.js";
import { fillChoices } from "./choices.js";

const NUMBERS = [
  ["layers", "Layers"], ["hidden_size", "Hidden size"], ["embedding_size", "Embedding size"],
  ["epochs", "Epochs"], ["seq_len", "Sequence length"], ["batch_size", "Batch size"],
  ["learning_rate", "Learning rate", { integer: false }],
];

/** Returns {update(project)}, or null without the form (a viewer's page). */
export function createTrainForm(form, { api, jobs }) {
  if (!form) return null;
  wireForm(form, async (f) => {
    const corpus = f.elements.corpus.value;
    if (!corpus) throw problem("Choose a corpus to train on (upload one first).");
    const body = { corpus, rnn_type: f.elements.rnn_type.value };
    putNumbers(body, f, NUMBERS);
    putOptional(body, f, ["name"]);
    jobs.track((await post(api.trainings, body)).job, f);
    return "Training started; its progress and learning curve show below.";
  });
  return {
    update(project) {
      fillChoices(form.elements.corpus, "corpus", project.corpora);
    },
  };
}
