// Choosing an annotation track to test against: a select of the discrete and scalar
// tracks, then the label of a discrete track or, where asked for, the threshold at
// or above which a scalar track counts as positive.

import { h } from "../core/format.js";
import { problem } from "../core/forms.js";

const USABLE = new Set(["discrete", "scalar"]);

/** A middle value of a scalar track's range, rounded, as a first threshold. */
function middle(track) {
  const r = track.range;
  if (!Array.isArray(r) || r.length !== 2 || !r.every(Number.isFinite)) return "";
  return String(Math.round(((r[0] + r[1]) / 2) * 100) / 100);
}

/**
 * withThreshold: scalar tracks take a threshold (statistics) or nothing (rankings).
 * Returns {el, setTracks(annotations), value() -> {annotation, label?, threshold?}, usable()}.
 */
export function createTrackPicker({ withThreshold = false, thresholdLabel = "Positive at or above" } = {}) {
  let tracks = [];
  const annotation = h("select", { name: "annotation" });
  const label = h("select", { name: "label" });
  const threshold = h("input", {
    type: "number", name: "track-threshold", step: "any", inputmode: "decimal", class: "narrow",
  });
  const labelField = h("label", { class: "field-inline" }, h("span", {}, "Label"), label);
  const thresholdField = h("label", { class: "field-inline", hidden: true }, h("span", {}, thresholdLabel), threshold);
  const el = h("div", { class: "track-picker" },
    h("label", { class: "field-inline" }, h("span", {}, "Annotation"), annotation),
    labelField, withThreshold ? thresholdField : null);

  const current = () => tracks.find((t) => t.name === annotation.value) || null;

  function sync() {
    const t = current();
    const discrete = t?.kind === "discrete";
    labelField.hidden = !discrete;
    thresholdField.hidden = !(t && t.kind === "scalar");
    if (discrete) {
      const keep = label.value;
      label.replaceChildren(...(t.labels || []).map((l) => h("option", { value: l }, l)));
      if ((t.labels || []).includes(keep)) label.value = keep;
    }
    if (t && t.kind === "scalar" && !threshold.value) threshold.value = middle(t);
  }

  annotation.addEventListener("change", () => { threshold.value = ""; sync(); });

  return {
    el,
    setTracks(annotations) {
      tracks = (annotations || []).filter((a) => USABLE.has(a.kind));
      const keep = annotation.value;
      annotation.replaceChildren(...tracks.map((t) => h("option", { value: t.name }, `${t.name} (${t.kind})`)));
      if (tracks.some((t) => t.name === keep)) annotation.value = keep;
      sync();
    },
    usable: () => tracks.length > 0,
    value() {
      const t = current();
      if (!t) throw problem("Choose an annotation track.");
      if (t.kind === "discrete") {
        if (!label.value) throw problem(`Choose a label of ${t.name}.`);
        return { annotation: t.name, label: label.value };
      }
      if (!withThreshold) return { annotation: t.name };
      const raw = threshold.value.trim();
      const v = Number(raw);
      if (!raw || !Number.isFinite(v)) throw problem(`Give the value of ${t.name} at or above which a token counts.`);
      return { annotation: t.name, threshold: v };
    },
  };
}
