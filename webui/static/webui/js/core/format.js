// Small formatting helpers shared by the pages.

const numberFmt = new Intl.NumberFormat("en-US");

export const fmtInt = (n) => (n === null || n === undefined ? "–" : numberFmt.format(n));

export function fmtValue(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  return (v >= 0 ? "+" : "−") + Math.abs(v).toFixed(3);
}

export function fmtDate(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString("en-GB", {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  });
}

/** How a token is shown in the strip: whitespace made visible. */
export function showToken(tok) {
  if (tok === " ") return "␣";
  if (tok === "\n") return "↵";
  if (tok === "\t") return "⇥";
  if (tok === "") return "∅";
  return tok.replace(/\n/g, "↵").replace(/\t/g, "⇥");
}

/** Build an element: h("a", {href, class: "x"}, "text", child...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    // Through the CSSOM: the Content-Security-Policy (style-src 'self') refuses
    // style attributes, not styles set from a script.
    else if (k === "style") el.style.cssText = String(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function bootData() {
  const el = document.getElementById("boot-data");
  return el ? JSON.parse(el.textContent) : {};
}

/** A model's shape in one line: "2 × 650 · embedding 650 · tied". */
export function fmtModelSpec(m) {
  const sp = m.spec || {};
  const parts = [`${sp.layers ?? m.layers} × ${sp.hidden_size ?? m.hidden_size}`];
  if (sp.embedding_size !== undefined) parts.push(`embedding ${sp.embedding_size}`);
  if (sp.tied) parts.push("tied");
  return parts.join(" · ");
}

/** Bytes for a person, in units of 1024 as the server says them: "1.2 GB", "340 KB". */
export function fmtBytes(n) {
  const units = [["TB", 40], ["GB", 30], ["MB", 20], ["KB", 10]];
  for (const [unit, shift] of units) {
    const size = 2 ** shift;
    if (n >= size) return `${(n / size).toFixed(1)} ${unit}`;
  }
  return `${n} bytes`;
}
