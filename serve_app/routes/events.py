"""``GET /jobs/{job_id}/events``: the job's ledger events as Server-Sent Events.

Each event goes out once, in ``seq`` order, with ``id: <seq>``; ``Last-Event-ID`` (or
``?last_event_id=``) resumes right after that seq. The stream polls Redis on the replica's shared
pool (a connection is held only for one command), sends heartbeat comments while idle and ends
after the event that makes the job terminal. A client that goes away cancels the generator, so
nothing stays open server-side.

A job's event stream is capped (``INGEST_RAY_EVENT_STREAM_MAXLEN``, trimmed approximately). A
resume from a seq older than what the stream still holds gets one ``gap`` event first: the job's
current state with its whole history (the ledger's history list is never trimmed), with the
last seq of that history as its id; the live events follow from there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingest_ray.auth import Scope
from ingest_ray.errors import JobNotFoundError
from serve_app.auth import authorize, context
from serve_app.context import ApiContext
from serve_app.errors import RequestValidationError
from serve_app.schemas import JobDetail, StreamGap

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
        seq, finishing = after, False
        while True:
            events = await ctx.events.after(job_id, seq)
            if events and events[0].seq > seq + 1:  # trimmed by the stream's cap: say so
                gap = await _gap(ctx, job_id, seq)
                seq = gap.resume_after
                yield ServerSentEvent(data=gap.model_dump_json(), event="gap", id=str(seq))
                events = [e for e in events if e.seq > seq]
                finishing = finishing or gap.job.status.is_terminal
            for event in events:
                seq = event.seq
                yield ServerSentEvent(data=event.model_dump_json(), event=event.kind, id=str(seq))
                if event.to_status.is_terminal:
                    return
            if events:
                continue
            if finishing:  # terminal, and every event up to it has been sent
                return
            head = await ctx.events.head(job_id)
            if head is None:
                return
            if head[1].is_terminal:
                # the job ended after the empty read above: its last events are in the stream
                # now (the same atomic step wrote them and the status), so read until the end
                finishing = True
                continue
            if await request.is_disconnected():
                return
            # Redis: a polled read every sse_poll_s; PostgreSQL: woken by the ledger's NOTIFY
            await ctx.events.wait(job_id, seq, ctx.api.sse_heartbeat_s)
    finally:
        ctx.open_streams -= 1


async def _gap(ctx: ApiContext, job_id: str, seq: int) -> StreamGap:
    """The job now, with its whole history (the ledger keeps every event, the stream only the
    newest); the stream resumes after the last seq of that history."""
    job = await run_in_threadpool(ctx.ledger.get, job_id)
    last = max((e.seq for e in job.history), default=seq)
    return StreamGap(missed_after=seq, resume_after=last, job=JobDetail.of(job))


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
