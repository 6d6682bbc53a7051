"""The OpenAPI document covers every route and every reference resolves (no services)."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.routing import Route

from ingest_ray.config import Settings
from serve_app.app import build_app
from serve_app.openapi import build_openapi
from serve_app.settings import ApiSettings


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [
            r for v in node.values() for r in _refs(v)
        ]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_openapi_documents_every_route_and_method() -> None:
    app = build_app(Settings(), ApiSettings())  # nothing connects before start-up
    doc = build_openapi()
    routes = {
        (r.path, m.lower())
        for r in app.routes
        if isinstance(r, Route) and r.include_in_schema
        for m in (r.methods or ())
        if m != "HEAD"
    }
    documented = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert routes == documented


def test_openapi_references_resolve_and_document_is_json() -> None:
    doc = json.loads(json.dumps(build_openapi()))
    schemas = doc["components"]["schemas"]
    for ref in _refs(doc):
        assert re.fullmatch(r"#/components/schemas/\w+", ref) and ref.rsplit("/", 1)[1] in schemas
    assert doc["openapi"].startswith("3.1")


def test_openapi_submit_accepts_json_and_pdf_upload_and_lists_errors() -> None:
    post = build_openapi()["paths"]["/jobs"]["post"]
    content = post["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data"}
    assert content["multipart/form-data"]["schema"]["properties"]["file"]["format"] == "binary"
    assert {"200", "202", "401", "403", "413", "415", "422", "429"} <= set(post["responses"])
    assert "Retry-After" in post["responses"]["429"]["headers"]
