// Hybrid search over the tenant's index: title, section and page, a snippet with the query's
// words marked, and a link to the job that indexed the document.

import { api } from "../api.js";
import { $, el } from "../dom.js";

function marked(snippet, query) {
  const words = [...new Set(query.toLowerCase().match(/[\p{L}\p{N}]{3,}/gu) || [])];
  if (!words.length) return [document.createTextNode(snippet)];
  const pattern = new RegExp(`(${words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})`, "giu");
  return snippet.split(pattern).map((part, i) => (i % 2 ? el("mark", { text: part }) : document.createTextNode(part)));
}

function hit(h, query) {
  const where = [h.section_path.join(" › "), h.page_start !== null ? `p. ${h.page_start}` : ""]
    .filter(Boolean).join(" · ");
  const title = h.job_id
    ? el("a", { href: `#/jobs/${h.job_id}`, "data-testid": "search-hit-title", text: h.document })
    : el("span", { "data-testid": "search-hit-title", text: h.document });
  return el("li", { class: "hit", "data-testid": "search-hit", dataset: { docKey: h.doc_key } },
    el("div", { class: "hit-head" }, title, el("span", { class: "muted small", "data-testid": "search-hit-where", text: where }),
      el("span", { class: "score muted small", text: h.score.toFixed(4) })),
    el("p", { class: "snippet", "data-testid": "search-hit-snippet" }, ...marked(h.snippet, query)));
}

export function searchView({ onError }) {
  $("search-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const q = String(new FormData(event.target).get("q") || "").trim();
    if (!q) return;
    try {
      const page = await api.search(q, 10);
      $("search-hits").replaceChildren(...page.hits.map((h) => hit(h, q)));
      $("search-empty").hidden = page.hits.length > 0;
    } catch (error) {
      onError(error);
    }
  });
  return { show() { $("search-form").elements.q.focus(); } };
}
