"""The stage host makes the tokens the Dispatcher took current for the call, batches too."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ingest_ray.adapters.ratelimit import LocalRateLimiter, RateSpec
from ingest_ray.config import Settings
from ingest_ray.errors import IngestError
from ingest_ray.events import DocumentSource, SourceKind
from ingest_ray.runtime.stage_host import StageHost
from ingest_ray.runtime.work import StageFailure
from ingest_ray.stages.base import StageInput, StageOutput

#: a bucket emptied by each test (at 0.001 tokens/s it refills within a long test session, so
#: it is drained right before use, not at import): only reserved tokens let a call through
LIMITER = LocalRateLimiter({"src": RateSpec(rate=0.001, burst=1)})


class CallsSource:
    """Calls the limited source once per item."""

    name = "calls"
    batch_size = 4

    async def run(self, item: StageInput) -> StageOutput:
        await LIMITER.acquire("src")
        return StageOutput()

    async def run_batch(self, items: Sequence[StageInput]) -> list[StageOutput | IngestError]:
        out: list[StageOutput | IngestError] = []
        for item in items:
            try:
                out.append(await self.run(item))
            except IngestError as exc:
                out.append(exc)
        return out

    async def aclose(self) -> None:
        return None


def _inputs(n: int, reserved: tuple[str, ...]) -> list[StageInput]:
    source = DocumentSource(kind=SourceKind.TEXT, value="x")
    return [
        StageInput(f"j{i}", "t", f"d{i}", "p", "calls", 1, source, reserved=reserved)
        for i in range(n)
    ]


def test_stage_host_spends_reserved_tokens_for_single_and_batched_calls() -> None:
    host = StageHost({"calls": f"{__name__}:CallsSource"}, Settings())

    async def main() -> list[list[object]]:
        await LIMITER.take_many({"src": 1})  # empty now, whatever time has passed
        return [
            await host.run("calls", _inputs(1, ("src",)), 5),
            await host.run("calls", _inputs(3, ("src",)), 5),
            await host.run("calls", _inputs(2, ()), 5),
        ]

    single, batch, unreserved = asyncio.run(main())
    assert all(isinstance(r, StageOutput) for r in [*single, *batch])
    assert all(isinstance(r, StageFailure) and r.retryable and r.retry_after for r in unreserved)
