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

async function call(method, path, params) {
  let response;
  try {
    response = await fetch(apiUrl(path, params), {
      method, headers: { Accept: "application/json", ...authHeaders() }, cache: "no-store",
    });
  } catch (error) {
    throw new ApiError(0, "unreachable", `the API did not answer (${error.message})`);
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const err = body.error || {};
    throw new ApiError(response.status, err.code || "http_error",
      err.message || `${response.status} ${response.statusText}`);
  }
  return body;
}

export const api = {
  jobs: (params) => call("GET", "/jobs", params),
  job: (id) => call("GET", `/jobs/${encodeURIComponent(id)}`),
  stats: () => call("GET", "/stats"),
  cancel: (id) => call("POST", `/jobs/${encodeURIComponent(id)}/cancel`),
  retry: (id) => call("POST", `/jobs/${encodeURIComponent(id)}/retry`),
  eventsUrl: (id) => apiUrl(`/jobs/${encodeURIComponent(id)}/events`),
};
