"""The OpenAPI 3.1 document, generated from the pydantic models of :mod:`serve_app.schemas`.

Request models are rendered in validation mode and responses in serialization mode, so the
document says exactly what the handlers accept and return; schemathesis checks both.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from serve_app.ops_schemas import (
    Charts,
    DeadLetterPage,
    DeadLetterQuery,
    Info,
    ReplayOut,
    ReplayRequest,
    SearchPage,
    SearchQuery,
)
from serve_app.schemas import (
    ControlResponse,
    ErrorBody,
    Health,
    JobDetail,
    JobPage,
    ListQuery,
    Readiness,
    Stats,
    StreamGap,
    SubmitBatch,
    SubmitItem,
    SubmitResponse,
    TenantView,
    UploadForm,
)

_REF = "#/components/schemas/{model}"
_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (SubmitItem, "validation"),
    (SubmitBatch, "validation"),
    (UploadForm, "validation"),
    (ListQuery, "validation"),
    (SubmitResponse, "serialization"),
    (JobPage, "serialization"),
    (JobDetail, "serialization"),
    (ControlResponse, "serialization"),
    (Stats, "serialization"),
    (TenantView, "serialization"),
    (Health, "serialization"),
    (Readiness, "serialization"),
    (ErrorBody, "serialization"),
    (StreamGap, "serialization"),
    (DeadLetterQuery, "validation"),
    (ReplayRequest, "validation"),
    (SearchQuery, "validation"),
    (DeadLetterPage, "serialization"),
    (ReplayOut, "serialization"),
    (SearchPage, "serialization"),
    (Charts, "serialization"),
    (Info, "serialization"),
]
_ERRORS = {
    400: "Malformed body",
    401: "Missing or invalid credentials",
    403: "The credential lacks the scope",
    404: "No such job (or dead letter) for this tenant",
    409: "The job (or dead letter) is in a state that forbids this",
    413: "Body too large",
    415: "Unsupported media type, or an upload that is not a PDF",
    422: "The request does not match the schema",
    429: "Rate limit of the tenant exceeded (see Retry-After)",
    503: "A backing service is unavailable (see Retry-After)",
}
_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(model=ref)}}}


def _ok(description: str, ref: str) -> dict[str, Any]:
    return {"description": description, "content": _json(ref)}


def _errors(*codes: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for code in codes:
        out[str(code)] = {"description": _ERRORS[code], "content": _json("ErrorBody")}
        if code in (429, 503):
            out[str(code)]["headers"] = {
                "Retry-After": {"schema": {"type": "integer", "minimum": 1}, "required": True}
            }
    return out


_AUTH_ERRORS = (401, 403, 429, 503)
_JOB_ID = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1},
}


def _query_parameters(schema: dict[str, Any]) -> list[dict[str, Any]]:
    params = []
    required = set(schema.get("required", ()))
    for name, prop in schema["properties"].items():
        # ``X | None`` means "may be left out": a query string has no null
        branches = [b for b in prop.get("anyOf", [prop]) if b.get("type") != "null"]
        merged = {**prop, **branches[0]}
        clean = {k: v for k, v in merged.items() if k not in ("title", "default", "anyOf")}
        params.append({"name": name, "in": "query", "required": name in required, "schema": clean})
    return params


def _upload_schema(form: dict[str, Any]) -> dict[str, Any]:
    properties = {"file": {"type": "string", "format": "binary"}, **form["properties"]}
    return {
        "type": "object",
        "required": ["file"],
        "properties": properties,
        "additionalProperties": False,
    }


def _jobs_paths(components: dict[str, Any]) -> dict[str, Any]:
    submit_body = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"oneOf": [{"$ref": _REF.format(model=m)} for m in _SUBMIT_REFS]}
            },
            "multipart/form-data": {"schema": _upload_schema(components["UploadForm"])},
        },
    }
    control = {
        "parameters": [_JOB_ID],
        "responses": {
            "200": _ok("The job now, and whether this call changed it", "ControlResponse"),
            **_errors(404, 409, *_AUTH_ERRORS),
        },
    }
    return {
        "/jobs": {
            "post": {
                "summary": "Submit documents (JSON item, JSON batch, or a PDF upload)",
                "operationId": "createJobs",
                "requestBody": submit_body,
                "responses": {
                    "200": _ok("Every document already had a job", "SubmitResponse"),
                    "202": _ok("At least one job was created", "SubmitResponse"),
                    **_errors(400, 413, 415, 422, *_AUTH_ERRORS),
                },
            },
            "get": {
                "summary": "List the tenant's jobs, newest first",
                "operationId": "listJobs",
                "parameters": _query_parameters(components["ListQuery"]),
                "responses": {
                    "200": _ok("A page of jobs", "JobPage"),
                    **_errors(422, *_AUTH_ERRORS),
                },
            },
        },
        "/jobs/{job_id}": {
            "get": {
                "summary": "The full job with its history",
                "operationId": "getJob",
                "parameters": [_JOB_ID],
                "responses": {"200": _ok("The job", "JobDetail"), **_errors(404, *_AUTH_ERRORS)},
            }
        },
        "/jobs/{job_id}/cancel": {
            "post": {"summary": "Cancel a job", "operationId": "cancelJob", **control}
        },
        "/jobs/{job_id}/retry": {
            "post": {"summary": "Retry a failed job", "operationId": "retryJob", **control}
        },
        "/jobs/{job_id}/events": {"get": _events_operation()},
        "/stats": {
            "get": {
                "summary": "The tenant's job counts and recent throughput",
                "operationId": "getStats",
                "responses": {
                    "200": _ok("Counts and throughput", "Stats"),
                    **_errors(*_AUTH_ERRORS),
                },
            }
        },
        "/tenants": {
            "get": {
                "summary": "The tenant's limits, share, jobs in flight, quota use and waits",
                "operationId": "getTenant",
                "responses": {
                    "200": _ok("The tenant in the scheduler", "TenantView"),
                    **_errors(*_AUTH_ERRORS),
                },
            }
        },
    }


_SUBMIT_REFS = ("SubmitItem", "SubmitBatch")


def _events_operation() -> dict[str, Any]:
    seq = {"type": "integer", "minimum": 0}
    return {
        "summary": "The job's events as Server-Sent Events (data: a JobEvent as JSON)",
        "description": "Each event has `id: <seq>` and `event: created|transition|stage`; "
        "`Last-Event-ID` resumes after that seq. Heartbeat comments keep the connection open; "
        "the stream ends after the event that makes the job terminal. A resume from a seq "
        "older than the capped stream still holds first gets `event: gap` (data: a StreamGap, "
        "the job with its whole history; id: the last seq of that history).",
        "operationId": "jobEvents",
        "parameters": [
            _JOB_ID,
            {"name": "Last-Event-ID", "in": "header", "required": False, "schema": seq},
            {"name": "last_event_id", "in": "query", "required": False, "schema": seq},
        ],
        "responses": {
            "200": {
                "description": "An event stream",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            **_errors(404, 422, *_AUTH_ERRORS),
        },
    }


def _get(summary: str, operation: str, ref: str, *codes: int, **extra: Any) -> dict[str, Any]:
    responses = {"200": _ok(summary, ref), **_errors(*codes, *_AUTH_ERRORS)}
    return {"get": {"summary": summary, "operationId": operation, "responses": responses, **extra}}


def _ops_paths(components: dict[str, Any]) -> dict[str, Any]:
    replay_body = {"required": True, "content": _json("ReplayRequest")}
    return {
        "/info": _get("The caller's tenant and scopes, the upload cap, the pipelines",
                      "getInfo", "Info"),
        "/stats/charts": _get(
            "Completions per minute and queue depth by priority (the tenant's); the stage "
            "pools' sizes and utilisation", "getCharts", "Charts"),
        "/search": _get(
            "Hybrid search over the tenant's indexed documents", "search", "SearchPage", 422,
            parameters=_query_parameters(components["SearchQuery"])),
        "/deadletters": _get(
            "The tenant's dead letters in a bounded window of the topic", "listDeadLetters",
            "DeadLetterPage", 422, parameters=_query_parameters(components["DeadLetterQuery"])),
        "/deadletters/replay": {
            "post": {
                "summary": "Replay one of the tenant's dead letters (at most once)",
                "operationId": "replayDeadLetter",
                "requestBody": replay_body,
                "responses": {
                    "200": _ok("Replayed now, or already before", "ReplayOut"),
                    **_errors(400, 404, 409, 413, 422, *_AUTH_ERRORS),
                },
            }
        },
    }  # fmt: skip


def _open_paths() -> dict[str, Any]:
    return {
        "/healthz": {
            "get": {
                "summary": "Liveness",
                "operationId": "healthz",
                "security": [],
                "responses": {"200": _ok("Alive", "Health")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness of Redis and Kafka, and the workers' heartbeats",
                "operationId": "readyz",
                "security": [],
                "responses": {
                    "200": _ok("Ready", "Readiness"),
                    "503": _ok("Not ready", "Readiness"),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics of this replica",
                "operationId": "metrics",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/": {
            "get": {
                "summary": "The dashboard page",
                "operationId": "dashboard",
                "security": [],
                "responses": {
                    "200": {
                        "description": "HTML",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }


def build_openapi(*, title: str = "ingest-ray job API", version: str = "1") -> dict[str, Any]:
    """The whole OpenAPI document (plain JSON-able dict)."""
    _, defs = models_json_schema(_MODELS, ref_template=_REF)
    components: dict[str, Any] = defs.get("$defs", {})
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": {**_jobs_paths(components), **_ops_paths(components), **_open_paths()},
        "security": _SECURITY,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "API key or JWT"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
