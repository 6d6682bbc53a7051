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
