// The dashboard: one page, a view per hash route (#/jobs, #/jobs/ID, #/submit, #/charts,
// #/deadletters, #/search), the tenant's counts at a glance, polled every 2 s.
// Plain ES modules, no framework, nothing fetched from outside the app.

import { ApiError, api, apiKey } from "./api.js";
import { $, byTest, el, showError } from "./dom.js";
import { chartsView } from "./views/charts.js";
import { deadLettersView } from "./views/deadletters.js";
import { jobView } from "./views/job.js";
import { jobsView } from "./views/jobs.js";
import { searchView } from "./views/search.js";
import { submitView } from "./views/submit.js";

const POLL_MS = 2000;
const STATUSES = ["queued", "processing", "completed", "failed", "cancelled"];
const state = { timer: null, info: {}, view: null, name: null };

function setConn(text, kind) {
  $("conn").textContent = text;
  $("conn").dataset.state = kind;
}

function onError(error) {
  if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
    setConn(error.status === 401 ? "key refused" : "key lacks a scope", "error");
    if (error.status === 401) stopPolling(); // a refused key stays refused: ask for another
  } else if (error instanceof ApiError && error.status === 0) {
    setConn("API unreachable", "error");
  }
  showError(error.message);
}

async function control(action, jobId) {
  try {
    await (action === "cancel" ? api.cancel(jobId) : api.retry(jobId));
    showError("");
  } catch (error) {
    showError(`${action} ${jobId}: ${error.message}`);
  }
  views.jobs.tick();
}

const context = { onError, control, info: () => state.info };
const views = {
  jobs: jobsView(context),
  job: jobView(context),
  submit: submitView(context),
  charts: chartsView(context),
  deadletters: deadLettersView(context),
  search: searchView(context),
};

async function refreshStats() {
  try {
    const stats = await api.stats();
    for (const status of STATUSES) byTest(`stat-${status}`).textContent = stats.counts[status] ?? 0;
    byTest("stat-throughput").textContent = Number(stats.throughput_per_min || 0).toFixed(1);
    setConn("connected", "ok");
  } catch (error) {
    onError(error);
  }
}

// The caller's tenant in the scheduler (GET /tenants): weight, share of the last minute's
// dispatches against its fair share, in flight against its cap, quota use, queue wait, and why
// its new jobs do not start when they do not.
function schedulingText(view) {
  const limits = view.limits || {};
  const s = view.stats;
  const cap = limits.max_in_flight ? ` / ${limits.max_in_flight}` : "";
  const quota = limits.jobs_per_hour ? ` / ${limits.jobs_per_hour}` : "";
  const head = `tenant ${view.tenant_id} · weight ${limits.weight ?? 1}`;
  if (!s) return `${head} · no recent jobs in the scheduler`;
  const pct = (x) => `${Math.round((x || 0) * 100)}%`;
  const wait = s.wait_p99_s == null ? "–" : `${s.wait_p99_s.toFixed(1)} s`;
  const parts = [head, `share ${pct(s.share)} of dispatches (fair ${pct(s.fair_share)})`,
    `in flight ${s.in_flight}${cap}`, `waiting ${s.waiting}`, `this hour ${s.quota_used}${quota}`,
    `wait p99 ${wait}`];
  if (s.blocked) parts.push(`held: ${s.blocked}`);
  return parts.join(" · ");
}

async function refreshScheduling() {
  try {
    const view = await api.tenants();
    const line = byTest("tenant-scheduling");
    line.textContent = schedulingText(view);
    line.dataset.blocked = view.stats?.blocked ? "yes" : "no";
  } catch (error) {
    // a key without jobs:read already shows in the connection state; nothing more to say here
  }
}

async function loadInfo() {
  try {
    state.info = await api.info();
  } catch (error) {
    onError(error);
    return;
  }
  for (const select of [byTest("filter-pipeline"), byTest("submit-pipeline")]) {
    const first = select.options[0];
    select.replaceChildren(first, ...state.info.pipelines.map((p) => el("option", { text: p })));
  }
}

function tick() {
  if (!apiKey.get()) return;
  refreshStats();
  refreshScheduling();
  state.view?.tick?.();
}

function startPolling() {
  stopPolling();
  state.timer = setInterval(tick, POLL_MS);
}

function stopPolling() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
}

function route() {
  const hash = location.hash || "#/jobs";
  const [, name = "jobs", id] = hash.match(/^#\/([a-z]+)(?:\/(.+))?/) || [];
  const key = name === "jobs" && id ? "job" : name in views ? name : "jobs";
  state.view?.hide?.();
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== `view-${key}`;
  for (const tab of document.querySelectorAll(".tabs a")) {
    tab.classList.toggle("active", tab.dataset.view === (key === "job" ? "jobs" : key));
  }
  state.view = views[key];
  state.name = key;
  if (apiKey.get()) state.view.show(id ? decodeURIComponent(id) : undefined);
}

async function connect(key) {
  apiKey.set(key);
  setConn("connecting…", "busy");
  await loadInfo();
  refreshStats();
  startPolling();
  route();
}

function init() {
  const fromLink = location.hash.match(/^#key=(irk_[A-Za-z0-9_-]+)/);
  if (fromLink) { // `ingest-ray up` prints a link that carries the key; keep it out of history
    apiKey.set(fromLink[1]);
    history.replaceState(null, "", `${location.pathname}${location.search}#/jobs`);
  }
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (key) connect(key);
  });
  $("key-clear").addEventListener("click", () => {
    apiKey.clear();
    stopPolling();
    state.view?.hide?.();
    $("api-key").value = "";
    views.jobs.reset?.();
    setConn("not connected", "idle");
  });
  window.addEventListener("hashchange", route);
  route();
  if (apiKey.get()) {
    $("api-key").value = apiKey.get();
    connect(apiKey.get());
  }
}

init();
