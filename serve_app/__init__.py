"""The HTTP job API: a Starlette app on Ray Serve (``serve_app.app:deployment``), with SSE progress
streams, API-key/JWT auth, tenant scoping and the dashboard page."""

from __future__ import annotations
