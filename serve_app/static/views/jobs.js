// The jobs view: filters (status, stage, pipeline, document), cursor pages, live refresh.

import { api } from "../api.js";
import { $, ago, badge, el } from "../dom.js";

const PAGE = 20;
const state = {
  cursors: [null], // cursors[i] opens page i (null: the newest)
  page: 0,
  next: null,
  rows: new Map(),
  seq: 0, // the newest load wins: an answer to an older one is dropped
};

function filters() {
  const form = new FormData($("job-filters"));
  const out = {};
  for (const name of ["status", "stage", "pipeline", "q"]) {
    const value = String(form.get(name) || "").trim();
    if (value) out[name] = value;
  }
  return out;
}

function actions(job, control) {
  const box = el("span", { class: "actions" });
  if (job.status === "queued" || job.status === "processing") {
    box.append(el("button", { class: "small danger", "data-testid": "job-row-cancel", text: "Cancel",
      onclick: (e) => { e.stopPropagation(); control("cancel", job.job_id); } }));
  } else if (job.status === "failed") {
    box.append(el("button", { class: "small", "data-testid": "job-row-retry", text: "Retry",
      onclick: (e) => { e.stopPropagation(); control("retry", job.job_id); } }));
  }
  return box;
}

function cells(job, control) {
  const link = el("a", { href: `#/jobs/${job.job_id}`, "data-testid": "job-link",
    title: job.doc_key, text: job.document || job.doc_key });
  return [
    el("td", { class: "mono", title: job.job_id, text: job.job_id.slice(-10) }),
    el("td", { class: "doc" }, link),
    el("td", { text: job.pipeline }),
    el("td", {}, badge(job.status, "job-status")),
    el("td", { "data-testid": "job-stage", text: job.stage || "–" }),
    el("td", { class: "num", text: String(job.priority) }),
    el("td", { class: "num", text: String(job.attempts) }),
    el("td", { class: "muted", title: job.created_at, text: ago(job.created_at) }),
    el("td", {}, actions(job, control)),
  ];
}

function render(items, control) {
  const body = $("jobs-body");
  const seen = new Set();
  items.forEach((job, index) => {
    seen.add(job.job_id);
    let row = state.rows.get(job.job_id);
    const signature = [job.status, job.stage, job.attempts, job.document, Date.now() >> 14].join("|");
    if (!row) {
      row = el("tr", { "data-testid": "job-row", dataset: { jobId: job.job_id },
        onclick: () => { location.hash = `#/jobs/${job.job_id}`; } });
      state.rows.set(job.job_id, row);
    }
    if (row.dataset.signature !== signature) {
      row.replaceChildren(...cells(job, control));
      row.dataset.signature = signature;
    }
    row.dataset.status = job.status;
    if (body.children[index] !== row) body.insertBefore(row, body.children[index] || null);
  });
  for (const [id, row] of state.rows) if (!seen.has(id)) { row.remove(); state.rows.delete(id); }
  $("jobs-empty").hidden = items.length > 0;
  $("jobs-empty").textContent = Object.keys(filters()).length
    ? "No jobs match these filters." : "No jobs yet for this tenant.";
  $("page-newer").disabled = state.page === 0;
  $("page-older").disabled = !state.next;
  $("page-info").textContent = `page ${state.page + 1}`;
}

export function jobsView({ onError, control }) {
  async function load() {
    const seq = ++state.seq;
    try {
      const page = await api.jobs({ ...filters(), limit: PAGE, cursor: state.cursors[state.page] });
      if (seq !== state.seq) return;
      state.next = page.next_cursor;
      render(page.items, control);
      $("jobs-updated").textContent = `updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
    } catch (error) {
      if (seq === state.seq) onError(error);
    }
  }
  function restart() {
    state.cursors = [null];
    state.page = 0;
    load();
  }
  let typing;
  $("job-filters").addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(restart, 300); });
  $("job-filters").addEventListener("submit", (e) => { e.preventDefault(); restart(); });
  $("page-older").addEventListener("click", () => {
    if (!state.next) return;
    state.cursors[state.page + 1] = state.next;
    state.page += 1;
    load();
  });
  $("page-newer").addEventListener("click", () => {
    if (state.page === 0) return;
    state.page -= 1;
    load();
  });
  return {
    show: load,
    tick: load,
    reset() {
      state.rows.clear();
      state.cursors = [null];
      state.page = 0;
      $("jobs-body").replaceChildren();
      $("jobs-empty").hidden = false;
      $("jobs-empty").textContent = "Connect with an API key to see jobs.";
    },
  };
}
