"""The dashboard's operator views in headless Chromium: live charts (completions per minute,
queue depth by priority, pool sizes and utilisation from the worker's heartbeat), dead letters
with a replay, and hybrid search with links to the jobs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import numpy as np
import redis

from ingest_ray import deadletters
from ingest_ray.events import DeadLetter
from ingest_ray.index.base import Chunk, DocumentChunks
from ingest_ray.index.search import build_sink, query_embedder
from ingest_ray.index.settings import IndexSettings
from ingest_ray.kafka import Producer
from ingest_ray.stages.factories import section
from ingest_ray.states import JobStatus
from ingest_ray.workers.base import read_health
from tests.e2e.conftest import Ui, sync_api

expect = sync_api.expect


def _values(chart: object) -> dict[str, str]:
    pairs = chart.locator("rect").evaluate_all(  # type: ignore[attr-defined]
        "els => els.map(e => [e.dataset.label, e.dataset.value])"
    )
    return dict(pairs)


def _minute(at: datetime | None) -> str:
    assert at is not None, "a completed job has a finish time"
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:00Z")


def test_dashboard_charts_draw_throughput_queue_and_pools(ui: Ui, page: object) -> None:
    done = [ui.submit(f"chart {n} {uuid.uuid4().hex[:4]}", title=f"Chart {n}") for n in range(3)]
    for job_id in done:
        ui.live.wait_status(job_id, JobStatus.COMPLETED)
    page.get_by_test_id("nav-charts").click()  # type: ignore[attr-defined]
    completed = page.get_by_test_id("chart-completed")  # type: ignore[attr-defined]
    expect(completed.locator("rect")).to_have_count(30)
    # the bars of the minutes these jobs finished in, not the last bar: that one is the current
    # minute, which is empty when the minute turns between the last completion and the drawing
    minutes = {_minute(ui.live.ledger.get(job_id).finished_at) for job_id in done}
    for label in minutes:
        bar = completed.locator(f'rect[data-label="{label}"]')
        expect(bar).not_to_have_attribute("data-value", "0", timeout=15_000)
    assert sum(int(v) for v in _values(completed).values()) >= 3
    queue = page.get_by_test_id("chart-queue")  # type: ignore[attr-defined]
    expect(queue.locator("rect")).to_have_count(10)
    (beat,) = [h for h in read_health(ui.live.settings) if h.name == ui.worker.name]
    pools = {k[5:] for k, v in beat.details.items() if k.startswith("pool_") and isinstance(v, int)}
    sizes = page.get_by_test_id("chart-pool-size")  # type: ignore[attr-defined]
    expect(sizes.locator("rect").first).to_be_visible(timeout=15_000)
    drawn = _values(sizes)
    assert set(drawn) == pools and "metadata" in drawn
    assert all(int(drawn[p]) == beat.details[f"pool_{p}"] for p in drawn)
    util = _values(page.get_by_test_id("chart-pool-util"))  # type: ignore[attr-defined]
    assert set(util) == pools  # utilisation: drawn where the heartbeat reports it
    page.screenshot(path=str(ui.shots / "dashboard-charts.png"), full_page=True)  # type: ignore[attr-defined]


def test_dashboard_dead_letters_replay_a_failed_job(ui: Ui, page: object) -> None:
    flag = f"{ui.live.settings.redis_prefix}dlq-{uuid.uuid4().hex[:6]}"
    client = redis.Redis.from_url(ui.live.settings.redis_url)
    client.set(flag, "1")
    job_id = ui.submit("dead letter", title="Dead letter", fail_while={"chunk": flag})
    ui.live.wait_status(job_id, JobStatus.FAILED)
    job = ui.live.ledger.get(job_id)
    letter = deadletters.job_letter(ui.live.settings.topic_deadletter, DeadLetter(
        reason="chunk fails while the flag is set", error_type="PermanentError", job_id=job_id,
        tenant_id=ui.tenant, doc_key=job.doc_key, stage="chunk", attempts=1))  # fmt: skip
    with Producer(ui.live.settings.kafka_bootstrap_servers) as producer:
        producer.send_raw(letter.topic, letter.value, key=letter.key, headers=dict(letter.headers))
    client.delete(flag)
    client.close()

    page.get_by_test_id("nav-deadletters").click()  # type: ignore[attr-defined]
    row = page.locator(f'[data-testid="dlq-row"][data-event-id="{letter.event_id}"]')  # type: ignore[attr-defined]
    expect(row).to_have_attribute("data-replayed", "false", timeout=20_000)
    expect(row).to_contain_text("chunk fails while the flag is set")
    row.click()
    expect(page.get_by_test_id("dlq-value")).to_contain_text(job_id)  # type: ignore[attr-defined]
    page.screenshot(path=str(ui.shots / "dashboard-deadletters.png"), full_page=True)  # type: ignore[attr-defined]
    row.get_by_test_id("dlq-replay").click()
    expect(row).to_have_attribute("data-replayed", "true")
    ui.live.wait_status(job_id, JobStatus.COMPLETED)
    page.reload()  # type: ignore[attr-defined]
    again = page.locator(f'[data-testid="dlq-row"][data-event-id="{letter.event_id}"]')  # type: ignore[attr-defined]
    expect(again.get_by_test_id("dlq-replay")).to_be_disabled(timeout=20_000)
    reply = httpx.post(f"{ui.live.url}/deadletters/replay", timeout=30,
                       headers={"Authorization": f"Bearer {ui.key}"},
                       json={"partition": int(again.get_attribute("data-letter").split(":")[0]),
                             "offset": int(again.get_attribute("data-letter").split(":")[1])})  # fmt: skip
    assert reply.json()["outcome"] == "already_replayed"
    assert [e.reason for e in ui.live.ledger.get(job_id).history].count("retry") == 1


def test_dashboard_search_finds_snippets_and_opens_the_job(ui: Ui, page: object) -> None:
    job_id = ui.submit("searchable", title="Reciprocal Rank Fusion Notes")
    ui.live.wait_status(job_id, JobStatus.COMPLETED)
    doc_key = ui.live.ledger.get(job_id).doc_key
    text = "Reciprocal rank fusion merges the vector ranking with the full-text ranking of chunks."
    sink = build_sink(section(ui.live.settings, "index", IndexSettings))
    try:
        vectors = np.asarray(query_embedder().embed([text]), dtype=np.float32)
        sink.upsert([DocumentChunks(
            tenant_id=ui.tenant, doc_key=doc_key, chunks=(Chunk("c0000", text, 3, 3, ("4 Fusion",)),),
            vectors=vectors, title="Reciprocal Rank Fusion Notes", job_id=job_id)])  # fmt: skip
    finally:
        sink.close()
    page.get_by_test_id("nav-search").click()  # type: ignore[attr-defined]
    page.get_by_test_id("search-input").fill("how are vector and text rankings fused")  # type: ignore[attr-defined]
    page.get_by_test_id("search-send").click()  # type: ignore[attr-defined]
    hit = page.get_by_test_id("search-hit").first  # type: ignore[attr-defined]
    expect(hit.get_by_test_id("search-hit-title")).to_have_text("Reciprocal Rank Fusion Notes")
    expect(hit.get_by_test_id("search-hit-where")).to_have_text("4 Fusion · p. 3")
    expect(hit.locator("mark").first).to_be_visible()
    page.screenshot(path=str(ui.shots / "dashboard-search.png"))  # type: ignore[attr-defined]
    hit.get_by_test_id("search-hit-title").click()
    expect(page.get_by_test_id("job-title")).to_have_text("Reciprocal Rank Fusion Notes")  # type: ignore[attr-defined]
    assert page.url.endswith(f"#/jobs/{job_id}")  # type: ignore[attr-defined]
