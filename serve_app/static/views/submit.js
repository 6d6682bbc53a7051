// The submit view: a DOI, an OpenAlex id or a PDF URL as JSON; a PDF as an upload (the cap is
// shown, and a larger file is refused before it is sent).

import { api } from "../api.js";
import { $, bytes, el } from "../dom.js";

export function submitView({ onError, info }) {
  function submitted(rows, label) {
    for (const row of rows) {
      const link = el("a", { href: `#/jobs/${row.job_id}`, "data-testid": "submitted-job",
        dataset: { jobId: row.job_id }, text: `${label} → ${row.job_id}` });
      $("submitted").prepend(el("li", {}, link,
        el("span", { class: "muted small", text: ` ${row.created ? "created" : "already there"} · ${row.status}` })));
    }
  }

  $("submit-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const item = {
      source: { kind: form.get("kind"), value: String(form.get("value")).trim() },
      priority: Number(form.get("priority") || 5),
    };
    if (form.get("pipeline")) item.pipeline = form.get("pipeline");
    try {
      submitted((await api.submit(item)).jobs, item.source.value);
      event.target.reset();
    } catch (error) {
      onError(error);
    }
  });

  $("upload-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = event.target.elements.file.files[0];
    const cap = info().max_upload_bytes;
    if (!file) return;
    if (cap && file.size > cap) {
      onError(new Error(`${file.name} is ${bytes(file.size)}; the largest upload is ${bytes(cap)}`));
      return;
    }
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("priority", String(Number(event.target.elements.priority.value || 5)));
    try {
      submitted((await api.upload(form)).jobs, file.name);
      event.target.reset();
    } catch (error) {
      onError(error);
    }
  });

  return {
    show() {
      const cap = info().max_upload_bytes;
      $("upload-cap").textContent = cap ? bytes(cap) : "…";
    },
  };
}
