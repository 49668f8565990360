// A project: its state sets, corpora and models (which editors and owners may
// delete), its saved hypotheses, its jobs with live progress (a training job shows
// its learning curve), its members (which owners manage), and the forms to upload,
// import, extract and train. The parts live in ../project/; this entry only wires
// them together around one loader of the project (GET boot.api.project).

import { get, isAbort } from "../core/api.js";
import { bootData } from "../core/format.js";
import { createExtractForm } from "../project/extract.js";
import { createHypothesesList } from "../project/hypotheses.js";
import { createJobsPanel } from "../project/jobs.js";
import { createProjectLists } from "../project/lists.js";
import { createMembersPanel } from "../project/members.js";
import { wireModelForm } from "../project/model-upload.js";
import { createTrainForm } from "../project/train.js";
import { wireCorpusForm, wireImportForm } from "../project/uploads.js";

const boot = bootData();
const { api } = boot;
const canWrite = boot.role === "owner" || boot.role === "editor";
const byId = (id) => document.getElementById(id);

const lists = createProjectLists(
  { statesets: byId("statesets"), corpora: byId("corpora"), models: byId("models") },
  { boot, canWrite, refresh: loadProject },
);
const jobs = createJobsPanel(byId("jobs"), {
  api, statesetBase: boot.statesetBase, canCancel: canWrite, onFinished: loadProject,
  badge: byId("jobs-active"),
});
// The forms whose selects follow the project's models and corpora.
const choices = [
  createExtractForm(byId("extract-form"), { api, jobs }),
  createTrainForm(byId("train-form"), { api, jobs }),
].filter(Boolean);

async function loadProject() {
  try {
    const p = await get(api.project, { key: "project" });
    byId("project-name").textContent = p.name;
    byId("project-description").textContent = p.description || "";
    lists.update(p);
    for (const form of choices) form.update(p);
  } catch (err) {
    if (!isAbort(err)) lists.fail(err.message);
  }
}

wireImportForm(byId("import-form"), { boot, jobs });
wireCorpusForm(byId("corpus-form"), { boot, jobs });
wireModelForm(byId("model-form"), { boot, jobs });

const members = createMembersPanel(byId("members"), {
  status: byId("members-status"), form: byId("member-form"), boot,
});

const hypotheses = createHypothesesList(byId("hypotheses"), { slug: boot.slug, statesetBase: boot.statesetBase });

loadProject();
hypotheses.load();
members.load();
jobs.start();
