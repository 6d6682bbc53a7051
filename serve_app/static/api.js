// The job API from the browser: fetch() with the API key as a Bearer token. Paths are relative
// to the page, so the dashboard works wherever the app is mounted.

const KEY_NAME = "ingest_ray.api_key";

export const apiKey = {
  get: () => sessionStorage.getItem(KEY_NAME) || "",
  set: (value) => sessionStorage.setItem(KEY_NAME, value),
  clear: () => sessionStorage.removeItem(KEY_NAME),
};

/** An error answer of the API: `{"error": {"code", "message"}}` with its HTTP status. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const authHeaders = () => ({ Authorization: `Bearer ${apiKey.get()}` });

export function apiUrl(path, params = {}) {
  const url = new URL(path.replace(/^\//, ""), document.baseURI);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  return url;
}

async function call(method, path, { params, json, form } = {}) {
  const headers = { Accept: "application/json", ...authHeaders() };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // the browser sets the multipart boundary
  }
  let response;
  try {
    response = await fetch(apiUrl(path, params), { method, headers, body, cache: "no-store" });
  } catch (error) {
    throw new ApiError(0, "unreachable", `the API did not answer (${error.message})`);
  }
  const reply = await response.json().catch(() => ({}));
  if (!response.ok) {
    const err = reply.error || {};
    throw new ApiError(response.status, err.code || "http_error",
      err.message || `${response.status} ${response.statusText}`);
  }
  return reply;
}

const job = (id) => `/jobs/${encodeURIComponent(id)}`;

export const api = {
  info: () => call("GET", "/info"),
  jobs: (params) => call("GET", "/jobs", { params }),
  job: (id) => call("GET", job(id)),
  stats: () => call("GET", "/stats"),
  tenants: () => call("GET", "/tenants"),
  charts: () => call("GET", "/stats/charts"),
  submit: (item) => call("POST", "/jobs", { json: item }),
  upload: (form) => call("POST", "/jobs", { form }),
  cancel: (id) => call("POST", `${job(id)}/cancel`),
  retry: (id) => call("POST", `${job(id)}/retry`),
  deadLetters: (params) => call("GET", "/deadletters", { params }),
  replay: (partition, offset) => call("POST", "/deadletters/replay", { json: { partition, offset } }),
  search: (q, k = 10) => call("GET", "/search", { params: { q, k } }),
  eventsUrl: (id) => apiUrl(`${job(id)}/events`),
};
