// A small, safe Markdown renderer for notes and comments.
//
// The text is never parsed as HTML: every piece becomes a DOM node built here
// (text nodes for text), so "<script>" in a note shows as those characters.
// Supported: paragraphs, headings (#..###, shown one level below the panel's own),
// bullet and numbered lists, block quotes, fenced code blocks, inline `code`,
// **strong**, *emphasis* (and the underscore forms), [links](https://…) and
// backslash escapes. Links keep to http(s), mailto and same-site paths, open in a
// new tab with rel="noopener noreferrer"; any other target stays plain text.

import { h } from "./format.js";

const INLINE = new RegExp([
  String.raw`\\([\\\x60*_\[\]()#+\-.!>])`, // 1: an escaped character
  String.raw`(\x60+)([^\x60][\s\S]*?)\2(?!\x60)`, // 2, 3: code
  String.raw`\[([^\]\n]+)\]\(([^()\s]+)\)`, // 4, 5: link
  String.raw`\*\*(?=\S)([\s\S]*?\S)\*\*`, // 6: strong
  String.raw`(?<![\w])__(?=\S)([\s\S]*?\S)__(?![\w])`, // 7: strong
  String.raw`\*(?=[^\s*])([\s\S]*?[^\s*])\*`, // 8: emphasis
  String.raw`(?<![\w])_(?=[^\s_])([\s\S]*?[^\s_])_(?![\w])`, // 9: emphasis
].join("|"));

/** The href a link may have, or null: http(s), mailto, or a path on this site. */
export function safeHref(raw) {
  const url = raw.trim();
  if (/^(https?:\/\/|mailto:)/i.test(url)) return url;
  if (/^(\/(?!\/)|#|\?|\.\.?\/)/.test(url)) return url;
  return null;
}

/** Inline Markdown to a list of nodes. */
export function inline(text) {
  const out = [];
  let rest = text;
  while (rest) {
    const m = INLINE.exec(rest);
    if (!m) { out.push(document.createTextNode(rest)); break; }
    if (m.index > 0) out.push(document.createTextNode(rest.slice(0, m.index)));
    if (m[1] !== undefined) {
      out.push(document.createTextNode(m[1]));
    } else if (m[3] !== undefined) {
      out.push(h("code", {}, m[3].replace(/^ (.*) $/, "$1")));
    } else if (m[4] !== undefined) {
      const href = safeHref(m[5]);
      out.push(href
        ? h("a", { href, rel: "noopener noreferrer", target: "_blank" }, ...inline(m[4]))
        : document.createTextNode(m[0]));
    } else if (m[6] !== undefined || m[7] !== undefined) {
      out.push(h("strong", {}, ...inline(m[6] ?? m[7])));
    } else {
      out.push(h("em", {}, ...inline(m[8] ?? m[9])));
    }
    rest = rest.slice(m.index + m[0].length);
  }
  return out;
}

const FENCE = /^\s{0,3}(```|~~~)/;
const HEADING = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const BULLET = /^\s{0,3}[-*+]\s+(.*)$/;
const NUMBERED = /^\s{0,3}(\d{1,9})[.)]\s+(.*)$/;
const QUOTE = /^\s{0,3}>\s?(.*)$/;
const RULE = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;

/**
 * Markdown text to a DocumentFragment. `headingBase` is the level a "#" heading
 * gets (default 4, under the panel's h2 and h3); deeper ones stop at h6.
 */
export function renderMarkdown(text, { headingBase = 4 } = {}) {
  const frag = document.createDocumentFragment();
  const lines = String(text ?? "").replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  const blank = (s) => /^\s*$/.test(s);
  const startsBlock = (s) => FENCE.test(s) || HEADING.test(s) || BULLET.test(s) || NUMBERED.test(s)
    || QUOTE.test(s) || RULE.test(s);
  while (i < lines.length) {
    const line = lines[i];
    if (blank(line)) { i++; continue; }
    let m;
    if ((m = FENCE.exec(line))) {
      const fence = m[1];
      const body = [];
      i++;
      while (i < lines.length && !lines[i].trimStart().startsWith(fence)) body.push(lines[i++]);
      i++; // the closing fence (or the end)
      frag.append(h("pre", {}, h("code", {}, body.join("\n"))));
    } else if (RULE.test(line)) {
      frag.append(h("hr"));
      i++;
    } else if ((m = HEADING.exec(line))) {
      const level = Math.min(6, headingBase + m[1].length - 1);
      frag.append(h(`h${level}`, {}, ...inline(m[2])));
      i++;
    } else if (BULLET.test(line) || NUMBERED.test(line)) {
      const ordered = !BULLET.test(line);
      const pattern = ordered ? NUMBERED : BULLET;
      const first = ordered ? Number(NUMBERED.exec(line)[1]) : 1;
      const items = [];
      while (i < lines.length && !blank(lines[i])) {
        const item = pattern.exec(lines[i]);
        if (item) items.push(ordered ? item[2] : item[1]);
        else if (startsBlock(lines[i]) || !items.length) break;
        else items[items.length - 1] += ` ${lines[i].trim()}`; // a continued item
        i++;
      }
      frag.append(h(ordered ? "ol" : "ul", ordered && first !== 1 ? { start: first } : {},
        items.map((t) => h("li", {}, ...inline(t)))));
    } else if (QUOTE.test(line)) {
      const body = [];
      while (i < lines.length && (m = QUOTE.exec(lines[i]))) { body.push(m[1]); i++; }
      const quote = h("blockquote");
      quote.append(renderMarkdown(body.join("\n"), { headingBase }));
      frag.append(quote);
    } else {
      const para = [];
      while (i < lines.length && !blank(lines[i]) && (para.length === 0 || !startsBlock(lines[i]))) {
        para.push(lines[i].trim());
        i++;
      }
      frag.append(h("p", {}, ...inline(para.join("\n"))));
    }
  }
  return frag;
}
