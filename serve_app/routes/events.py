"""``GET /jobs/{job_id}/events``: the job's ledger events as Server-Sent Events.

Each event goes out once, in ``seq`` order, with ``id: <seq>``; ``Last-Event-ID`` (or
``?last_event_id=``) resumes right after that seq. The stream polls Redis on the replica's shared
pool (a connection is held only for one command), sends heartbeat comments while idle and ends
after the event that makes the job terminal. A client that goes away cancels the generator, so
nothing stays open server-side.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingest_ray.auth import Scope
from ingest_ray.errors import JobNotFoundError
from serve_app.auth import authorize, context
from serve_app.context import ApiContext
from serve_app.errors import RequestValidationError

MAX_SEQ = 2**53


def last_event_id(request: Request) -> int:
    """The seq to resume after (0 for a fresh stream); 422 when it is not a seq."""
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if raw is None or raw.strip() == "":
        return 0
    value = raw.strip()
    if not value.isdigit() or int(value) > MAX_SEQ:
        raise RequestValidationError(
            "Last-Event-ID must be a non-negative event seq",
            details=[{"loc": ["header", "Last-Event-ID"], "msg": "not a seq", "type": "int"}],
        )
    return int(value)


async def _stream(
    request: Request, ctx: ApiContext, job_id: str, after: int
) -> AsyncIterator[ServerSentEvent]:
    ctx.open_streams += 1
    try:
        seq = after
        while True:
            events = await ctx.events.after(job_id, seq)
            for event in events:
                seq = event.seq
                yield ServerSentEvent(data=event.model_dump_json(), event=event.kind, id=str(seq))
                if event.to_status.is_terminal:
                    return
            if events:
                continue
            head = await ctx.events.head(job_id)
            if head is None or head[1].is_terminal or await request.is_disconnected():
                return
            await asyncio.sleep(ctx.api.sse_poll_s)
    finally:
        ctx.open_streams -= 1


async def job_events(request: Request) -> Response:
    """Stream the job's events (another tenant's job is not found)."""
    principal = await authorize(request, Scope.JOBS_READ)
    ctx = context(request)
    job_id = request.path_params["job_id"]
    after = last_event_id(request)
    head = await ctx.events.head(job_id)
    if head is None or head[0] != principal.tenant_id:
        raise JobNotFoundError(f"no job {job_id}", job_id=job_id)
    return EventSourceResponse(
        _stream(request, ctx, job_id, after),
        ping=ctx.api.sse_heartbeat_s,
        send_timeout=30.0,
        headers={"Cache-Control": "no-store"},
    )


ROUTES = [Route("/jobs/{job_id}/events", job_events, methods=["GET"])]
