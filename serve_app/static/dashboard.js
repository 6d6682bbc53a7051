// The dashboard: a live table of the tenant's jobs (polled every 2 s), queue depth and
// throughput at a glance, and a per-job timeline fed by the job's event stream.
// Plain ES modules, no framework, nothing fetched from outside the app.

import { ApiError, api, apiKey, authHeaders } from "./api.js";
import { followEvents } from "./sse.js";

const POLL_MS = 2000;
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const STATUSES = ["queued", "processing", "completed", "failed", "cancelled"];
const $ = (id) => document.getElementById(id);
const byTest = (id) => document.querySelector(`[data-testid="${id}"]`);

const state = {
  timer: null,
  rows: new Map(), // job_id -> <tr>
  jobs: new Map(), // job_id -> latest summary
  selected: null, // job_id on the timeline
  history: [], // events of the selected job
  stream: null, // AbortController of the timeline's event stream
  throughput: [], // recent throughput_per_min samples for the sparkline
};

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

function ago(iso) {
  if (!iso) return "";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return new Date(iso).toLocaleDateString();
}

const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour12: false });

// --- connection and errors --------------------------------------------------------------------

function setConn(text, kind) {
  $("conn").textContent = text;
  $("conn").dataset.state = kind;
}

function showError(message) {
  $("banner").textContent = message;
  $("banner").hidden = !message;
}

function handleError(error) {
  if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
    setConn(error.status === 401 ? "key refused" : "key lacks a scope", "error");
    if (error.status === 401) stopPolling(); // a refused key stays refused: ask for another
  } else {
    setConn("API unreachable", "error");
  }
  showError(error.message);
}

// --- polling: stats and the jobs table --------------------------------------------------------

async function refresh() {
  if (!apiKey.get()) return;
  try {
    const [page, stats] = await Promise.all([
      api.jobs({ limit: 50, status: $("status-filter").value }),
      api.stats(),
    ]);
    renderJobs(page.items);
    renderStats(stats);
    setConn("connected", "ok");
    showError("");
    $("updated").textContent = `updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
  } catch (error) {
    handleError(error);
  }
}

function startPolling() {
  stopPolling();
  refresh();
  state.timer = setInterval(refresh, POLL_MS);
}

function stopPolling() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
}

function renderStats(stats) {
  const counts = stats.counts || {};
  for (const status of STATUSES) byTest(`stat-${status}`).textContent = counts[status] ?? 0;
  byTest("stat-depth").textContent = (counts.queued ?? 0) + (counts.processing ?? 0);
  const rate = Number(stats.throughput_per_min || 0);
  byTest("stat-throughput").textContent = rate.toFixed(1);
  state.throughput = [...state.throughput, rate].slice(-40);
  drawSpark(state.throughput);
}

function drawSpark(values) {
  const top = Math.max(1, ...values);
  const step = values.length > 1 ? 120 / (values.length - 1) : 0;
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(26 - (v / top) * 24).toFixed(1)}`);
  document.querySelector(".spark polyline").setAttribute("points", points.join(" "));
}

function actionButtons(job) {
  const box = el("span", { class: "actions" });
  if (job.status === "queued" || job.status === "processing") {
    box.append(el("button", { class: "small danger", "data-testid": "job-cancel", text: "Cancel",
      onclick: (e) => { e.stopPropagation(); control("cancel", job.job_id); } }));
  } else if (job.status === "failed") {
    box.append(el("button", { class: "small", "data-testid": "job-retry", text: "Retry",
      onclick: (e) => { e.stopPropagation(); control("retry", job.job_id); } }));
  }
  return box;
}

const badge = (status, testid) =>
  el("span", { class: `badge ${status}`, "data-testid": testid, text: status });

function rowCells(job) {
  return [
    el("td", { class: "mono", title: job.job_id, text: job.job_id.slice(-10) }),
    el("td", { class: "doc", title: job.doc_key, text: job.doc_key }),
    el("td", { text: job.pipeline }),
    el("td", {}, badge(job.status, "job-status")),
    el("td", { "data-testid": "job-stage", text: job.stage || "–" }),
    el("td", { class: "num", text: String(job.priority) }),
    el("td", { class: "num", text: String(job.attempts) }),
    el("td", { class: "muted", title: job.created_at, text: ago(job.created_at) }),
    el("td", {}, actionButtons(job)),
  ];
}

function upsertRow(job) {
  let row = state.rows.get(job.job_id);
  const signature = [job.status, job.stage, job.attempts, job.updated_at].join("|");
  if (!row) {
    row = el("tr", { "data-testid": "job-row", dataset: { jobId: job.job_id },
      onclick: () => select(job.job_id) });
    state.rows.set(job.job_id, row);
  }
  if (row.dataset.signature !== signature || row.dataset.tick !== String(Date.now() >> 14)) {
    row.replaceChildren(...rowCells(job));
    row.dataset.signature = signature;
    row.dataset.tick = String(Date.now() >> 14); // refresh "ago" now and then
  }
  row.dataset.status = job.status;
  row.classList.toggle("selected", job.job_id === state.selected);
  return row;
}

function renderJobs(items) {
  const seen = new Set();
  const body = $("jobs-body");
  items.forEach((job, index) => {
    seen.add(job.job_id);
    state.jobs.set(job.job_id, job);
    const row = upsertRow(job);
    if (body.children[index] !== row) body.insertBefore(row, body.children[index] || null);
  });
  for (const [id, row] of state.rows) {
    if (!seen.has(id)) { row.remove(); state.rows.delete(id); }
  }
  $("jobs-empty").hidden = items.length > 0;
  $("jobs-empty").textContent = "No jobs yet for this tenant.";
}

async function control(action, jobId) {
  try {
    const reply = await (action === "cancel" ? api.cancel(jobId) : api.retry(jobId));
    upsertRow(reply.job);
    if (jobId === state.selected) {
      renderSummary(reply.job);
      if (action === "retry" && reply.changed) select(jobId);
    }
    showError("");
  } catch (error) {
    showError(`${action} ${jobId}: ${error.message}`);
  }
  refresh();
}

// --- the timeline -----------------------------------------------------------------------------

function stageChips(history) {
  const stages = new Map();
  for (const e of history) {
    if (typeof e.data?.completed === "string") stages.set(e.data.completed, "done");
    if (e.to_status === "failed") stages.set(e.data?.failed_stage || e.error?.stage || e.stage || "?", "failed");
    else if (e.to_status === "processing" && e.stage && stages.get(e.stage) !== "done") {
      stages.set(e.stage, e.data?.failed_attempt ? "retrying" : "running");
    } else if (e.to_status === "cancelled") {
      for (const [name, s] of stages) if (s === "running" || s === "retrying") stages.set(name, "cancelled");
    }
  }
  return el("div", { class: "chips", "data-testid": "timeline-stages" },
    ...[...stages].map(([name, s]) => el("span", { class: `chip ${s}`, dataset: { stage: name, state: s },
      text: name })));
}

function renderSummary(job) {
  const history = state.history || [];
  const buttons = el("div", { class: "tl-actions" });
  if (job.status === "queued" || job.status === "processing") {
    buttons.append(el("button", { class: "small danger", "data-testid": "timeline-cancel",
      text: "Cancel job", onclick: () => control("cancel", job.job_id) }));
  }
  if (job.status === "failed") {
    buttons.append(el("button", { class: "small", "data-testid": "timeline-retry",
      text: "Retry job", onclick: () => control("retry", job.job_id) }));
  }
  $("tl-summary").replaceChildren(
    el("div", { class: "tl-title" },
      el("span", { class: "mono", "data-testid": "timeline-job-id", text: job.job_id }),
      badge(job.status, "timeline-status")),
    el("div", { class: "doc muted", title: job.doc_key, text: `${job.doc_key} · ${job.pipeline}` }),
    stageChips(history),
    job.error ? el("div", { class: "tl-error", "data-testid": "timeline-error",
      text: `${job.error.type}: ${job.error.message}` }) : "",
    buttons,
  );
}

function eventNote(e) {
  if (e.error) return `${e.error.type}: ${e.error.message}`;
  const d = e.data || {};
  if (d.completed) return `${d.completed} done${d.duration_ms !== undefined ? ` in ${d.duration_ms} ms` : ""}`;
  if (d.retry_in_s !== undefined) return `retry in ${d.retry_in_s}s`;
  return e.reason || "";
}

function appendEvent(e) {
  const moved = e.kind === "stage" ? `stage → ${e.stage}`
    : `${e.from_status ? `${e.from_status} → ` : ""}${e.to_status}${e.stage ? ` @ ${e.stage}` : ""}`;
  $("tl-events").append(el("li", { class: `ev ${e.kind} ${e.to_status}`, "data-testid": "timeline-event",
    dataset: { seq: String(e.seq), kind: e.kind, status: e.to_status } },
  el("time", { datetime: e.at, text: clock(e.at) }),
  el("span", { class: "what", text: moved }),
  el("span", { class: "note muted", text: eventNote(e) })));
}

function onLiveEvent(jobId, e) {
  if (jobId !== state.selected) return;
  state.history.push(e);
  appendEvent(e);
  const job = { ...state.jobs.get(jobId), status: e.to_status, attempts: e.attempts,
    stage: e.stage ?? state.jobs.get(jobId)?.stage, error: e.error ?? null, updated_at: e.at };
  state.jobs.set(jobId, job);
  renderSummary(job);
  if (state.rows.has(jobId)) upsertRow(job);
}

function setStream(text) {
  $("tl-stream").textContent = text;
  $("tl-stream").dataset.state = text;
}

async function select(jobId) {
  state.stream?.abort();
  state.selected = jobId;
  for (const [id, row] of state.rows) row.classList.toggle("selected", id === jobId);
  $("tl-events").replaceChildren();
  setStream("loading");
  let job;
  try {
    job = await api.job(jobId);
  } catch (error) {
    showError(error.message);
    return;
  }
  if (state.selected !== jobId) return;
  state.history = [...(job.history || [])];
  state.history.forEach(appendEvent);
  state.jobs.set(jobId, job);
  renderSummary(job);
  if (TERMINAL.has(job.status)) { setStream("finished"); return; }
  const controller = new AbortController();
  state.stream = controller;
  const after = state.history.reduce((m, e) => Math.max(m, e.seq), 0);
  followEvents(api.eventsUrl(jobId), {
    after, headers: authHeaders, signal: controller.signal,
    onEvent: (e) => onLiveEvent(jobId, e),
    onState: (s) => { if (state.selected === jobId) setStream(s === "closed" ? "finished" : s); },
    isFinal: (e) => e.kind === "transition" && TERMINAL.has(e.to_status),
  }).catch((error) => { if (state.selected === jobId) showError(error.message); });
}

// --- start ------------------------------------------------------------------------------------

function connect(key) {
  apiKey.set(key);
  setConn("connecting…", "busy");
  startPolling();
}

function init() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (key) connect(key);
  });
  $("key-clear").addEventListener("click", () => {
    apiKey.clear();
    stopPolling();
    state.stream?.abort();
    $("api-key").value = "";
    state.selected = null;
    state.rows.clear();
    $("jobs-body").replaceChildren();
    $("tl-events").replaceChildren();
    setConn("not connected", "idle");
  });
  $("status-filter").addEventListener("change", refresh);
  if (apiKey.get()) {
    $("api-key").value = apiKey.get();
    connect(apiKey.get());
  }
}

init();
