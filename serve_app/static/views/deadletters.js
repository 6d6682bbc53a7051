// The tenant's dead letters (a bounded window of the topic) with replay; a replayed letter is
// marked and cannot be replayed twice.

import { api } from "../api.js";
import { $, el, showError } from "../dom.js";

function origin(x) {
  return x.origin_topic ? `${x.origin_topic}[${x.origin_partition}]@${x.origin_offset}` : "–";
}

export function deadLettersView({ onError }) {
  async function replay(x, button) {
    button.disabled = true;
    try {
      const reply = await api.replay(x.partition, x.offset);
      button.textContent = reply.outcome === "replayed" ? "replayed" : "replayed before";
      button.closest("tr").dataset.replayed = "true";
      showError("");
    } catch (error) {
      button.disabled = false;
      onError(error);
    }
  }

  function row(x) {
    const button = el("button", { class: "small", "data-testid": "dlq-replay",
      text: x.replayed ? "replayed" : "Replay", disabled: x.replayed });
    button.addEventListener("click", (e) => { e.stopPropagation(); replay(x, button); });
    const doc = x.job_id
      ? el("a", { href: `#/jobs/${x.job_id}`, text: x.document || x.doc_key || x.job_id, title: x.doc_key || x.job_id })
      : el("span", { text: x.doc_key || "–" });
    return el("tr", { "data-testid": "dlq-row", dataset: { eventId: x.event_id, kind: x.kind,
      replayed: String(x.replayed), letter: x.letter }, onclick: () => {
      $("dlq-value").hidden = false;
      $("dlq-value").textContent = `${x.letter} · ${x.value_bytes} bytes${x.truncated ? ` (kept part of ${x.truncated})` : ""}\n\n${x.value_preview}`;
    } },
    el("td", { class: "muted", text: x.at.replace("T", " ").slice(0, 19) }),
    el("td", {}, el("span", { class: `chip ${x.kind}`, text: x.kind })),
    el("td", { class: "reason", title: x.reason, text: `${x.error_type}: ${x.reason}` }),
    el("td", { class: "mono small", text: origin(x) }),
    el("td", { class: "doc" }, doc),
    el("td", {}, button));
  }

  async function load() {
    try {
      const page = await api.deadLetters({ last: $("dlq-last").value });
      $("dlq-body").replaceChildren(...page.items.slice().reverse().map(row));
      $("dlq-empty").hidden = page.items.length > 0;
      $("dlq-updated").textContent = `${page.items.length} letter(s)`;
    } catch (error) {
      onError(error);
    }
  }
  $("dlq-last").addEventListener("change", load);
  return { show: load };
}
