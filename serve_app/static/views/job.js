// The job page: what the document is, a timeline of its stages (durations, tries, errors),
// where its PDF came from, cancel and retry, and its events, followed live over SSE.

import { api, authHeaders } from "../api.js";
import { $, badge, clock, duration, el } from "../dom.js";
import { followEvents } from "../sse.js";

const TERMINAL = new Set(["completed", "failed", "cancelled"]);

/** One row per stage, in the order the job reached them, from the job's history. */
export function stageTimeline(history) {
  const stages = new Map();
  const get = (name) => {
    if (!stages.has(name)) {
      stages.set(name, { stage: name, state: "running", attempts: 0, started: null, ended: null,
        durationMs: null, errors: [] });
    }
    return stages.get(name);
  };
  for (const e of history) {
    const d = e.data || {};
    if (typeof d.completed === "string") {
      const s = get(d.completed);
      Object.assign(s, { state: "done", ended: e.at });
      if (typeof d.duration_ms === "number") s.durationMs = d.duration_ms;
    }
    if (e.to_status === "failed") {
      const s = get(d.failed_stage || e.error?.stage || e.stage || "?");
      Object.assign(s, { state: "failed", ended: e.at });
      if (e.error) s.errors.push(e.error);
    } else if (e.to_status === "cancelled") {
      for (const s of stages.values()) if (s.state === "running" || s.state === "retrying") s.state = "cancelled";
    } else if (e.to_status === "processing" && e.stage) {
      const s = get(e.stage);
      s.started = s.started || e.at;
      s.attempts = Math.max(s.attempts, e.attempts || 1);
      if (d.failed_attempt !== undefined) {
        s.state = "retrying";
        if (e.error) s.errors.push(e.error);
      } else if (s.state !== "done") {
        s.state = "running";
      }
    }
  }
  for (const s of stages.values()) {
    if (s.durationMs === null && s.started && s.ended) s.durationMs = Date.parse(s.ended) - Date.parse(s.started);
  }
  return [...stages.values()];
}

function eventNote(e) {
  if (e.error) return `${e.error.type}: ${e.error.message}`;
  const d = e.data || {};
  if (d.completed) return `${d.completed} done${d.duration_ms !== undefined ? ` in ${duration(d.duration_ms)}` : ""}`;
  if (d.retry_in_s !== undefined) return `retry in ${d.retry_in_s}s`;
  if (d.outcome) return d.outcome;
  return e.reason || "";
}

function eventItem(e) {
  const moved = e.kind === "stage" ? `stage → ${e.stage}`
    : `${e.from_status ? `${e.from_status} → ` : ""}${e.to_status}${e.stage ? ` @ ${e.stage}` : ""}`;
  return el("li", { class: `ev ${e.kind} ${e.to_status}`, "data-testid": "job-event",
    dataset: { seq: String(e.seq), kind: e.kind, status: e.to_status } },
  el("time", { datetime: e.at, text: clock(e.at) }),
  el("span", { class: "what", text: moved }),
  el("span", { class: "note muted", text: eventNote(e) }));
}

function stageRow(s) {
  const note = s.errors.length ? `${s.errors.at(-1).type}: ${s.errors.at(-1).message}` : "";
  return el("tr", { "data-testid": "stage-row", dataset: { stage: s.stage, state: s.state } },
    el("td", { class: "mono", text: s.stage }),
    el("td", {}, el("span", { class: `chip ${s.state}`, text: s.state })),
    el("td", { class: "num", "data-testid": "stage-attempts", text: String(s.attempts || 1) }),
    el("td", { class: "num", "data-testid": "stage-duration", text: duration(s.durationMs) }),
    el("td", { class: "muted", text: clock(s.started) }),
    el("td", { class: "note", "data-testid": "stage-error", text: note }));
}

function pdfOrigin(job) {
  const pdf = job.outputs?.pdf_fetch;
  if (!pdf) return null;
  const tried = (pdf.attempts || []).map((a) => el("li", { text:
    `${a.source}: ${a.outcome}${a.url ? ` (${a.url})` : ""}${a.reason ? ` – ${a.reason}` : ""}` }));
  const found = pdf.pdf_source
    ? el("p", { "data-testid": "job-pdf-source", text: `PDF from ${pdf.pdf_source}${pdf.pdf_url ? `: ${pdf.pdf_url}` : ""}` })
    : el("p", { "data-testid": "job-pdf-source", text: "no PDF found" });
  return [found, tried.length ? el("ul", { class: "plain small" }, ...tried) : ""];
}

export function jobView({ onError, control }) {
  const state = { id: null, job: null, history: [], stream: null };

  function setStream(text) {
    $("job-stream").textContent = text;
    $("job-stream").dataset.state = text;
  }

  function facts(job) {
    const rows = [["document", job.document], ["doc key", job.doc_key], ["pipeline", job.pipeline],
      ["priority", job.priority], ["created", job.created_at], ["finished", job.finished_at || "–"]];
    return rows.flatMap(([k, v]) => [el("dt", { text: k }),
      el("dd", { "data-testid": `job-fact-${k.replace(" ", "-")}`, text: String(v) })]);
  }

  function render() {
    const job = state.job;
    $("job-title").textContent = job.title || job.document || job.doc_key;
    $("job-status-badge").replaceChildren(badge(job.status, "job-status"));
    $("job-facts").replaceChildren(...facts(job));
    const buttons = [];
    if (job.status === "queued" || job.status === "processing") {
      buttons.push(el("button", { class: "small danger", "data-testid": "job-cancel", text: "Cancel job",
        onclick: () => act("cancel") }));
    }
    if (job.status === "failed") {
      buttons.push(el("button", { class: "small", "data-testid": "job-retry", text: "Retry job",
        onclick: () => act("retry") }));
    }
    $("job-actions").replaceChildren(...buttons);
    $("job-error").hidden = !job.error;
    $("job-error").textContent = job.error ? `${job.error.type}: ${job.error.message}` : "";
    $("job-stages-body").replaceChildren(...stageTimeline(state.history).map(stageRow));
    const origin = pdfOrigin(job);
    $("job-pdf").hidden = !origin;
    $("job-pdf").replaceChildren(...(origin || []));
  }

  async function act(action) {
    const id = state.id;
    await control(action, id);
    if (id === state.id) open(id);
  }

  function onEvent(id, e) {
    if (id !== state.id) return;
    state.history.push(e);
    $("job-events").append(eventItem(e));
    Object.assign(state.job, { status: e.to_status, attempts: e.attempts, updated_at: e.at,
      stage: e.stage ?? state.job.stage, error: e.error ?? (e.to_status === "failed" ? state.job.error : null) });
    render();
    if (TERMINAL.has(e.to_status)) api.job(id).then((job) => { if (id === state.id) { state.job = job; render(); } });
  }

  async function open(id) {
    state.stream?.abort();
    state.id = id;
    $("job-events").replaceChildren();
    setStream("loading");
    let job;
    try {
      job = await api.job(id);
    } catch (error) {
      onError(error);
      setStream("error");
      return;
    }
    if (state.id !== id) return;
    state.job = job;
    state.history = [...job.history];
    state.history.forEach((e) => $("job-events").append(eventItem(e)));
    render();
    if (TERMINAL.has(job.status)) { setStream("finished"); return; }
    const controller = new AbortController();
    state.stream = controller;
    followEvents(api.eventsUrl(id), {
      after: state.history.reduce((m, e) => Math.max(m, e.seq), 0), headers: authHeaders,
      signal: controller.signal, onEvent: (e) => onEvent(id, e),
      onGap: (gap) => { if (id === state.id) Object.assign(state.job, gap.job); },
      onState: (s) => { if (state.id === id) setStream(s === "closed" ? "finished" : s); },
      isFinal: (e) => e.kind === "transition" && TERMINAL.has(e.to_status),
    }).catch((error) => { if (state.id === id) onError(error); });
  }

  return {
    show: (id) => open(id),
    hide() { state.stream?.abort(); state.id = null; },
  };
}
