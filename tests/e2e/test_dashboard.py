"""The dashboard in headless Chromium against the live job API: enter a key, watch a job progress
to completed over the event stream, cancel another from the table.

Chromium is Debian's ``chromium`` package driven by Playwright (``executable_path``); no browser
is ever downloaded, and the browser only talks to the app on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from ingest_ray.auth import ApiKeyStore
from ingest_ray.states import JobStatus
from tests.conftest import Services, in_ci
from tests.integration.api.test_cli_http import Live, live_stack

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path(os.environ.get("INGEST_RAY_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
#: every stage of the followed job takes this long, so its progress is seen live
STEP_S = 1.0


@pytest.fixture(scope="module")
def live(services: Services, local_ray: None) -> Iterator[Live]:
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    with live_stack(services, prefix) as stack:
        yield stack
    client = redis.Redis.from_url(services.redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.unlink(*keys)
    client.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        if in_ci():
            pytest.fail("chromium is not installed (apt-get install -y chromium)", pytrace=False)
        pytest.skip("chromium is not installed")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


def api_key(live: Live, tenant: str) -> str:
    store = ApiKeyStore(live.settings.redis_url, live.settings.redis_prefix)
    try:
        return store.create(tenant, "jobs:read jobs:write jobs:cancel", "dashboard test")[1]
    finally:
        store.close()


def submit(live: Live, key: str, text: str, **script: object) -> str:
    item = {"source": {"kind": "text", "value": text}, "metadata": script}
    headers = {"Authorization": f"Bearer {key}"}
    reply = httpx.post(f"{live.url}/jobs", json=item, headers=headers, timeout=10)
    assert reply.status_code == 202, reply.text
    return str(reply.json()["jobs"][0]["job_id"])


def test_dashboard_follows_a_job_to_completed_and_cancels_another(
    live: Live, browser: object, tmp_path: Path
) -> None:
    key = api_key(live, f"ui-{uuid.uuid4().hex[:6]}")
    page = browser.new_page(viewport={"width": 1440, "height": 900})  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(live.url + "/")
    expect = sync_api.expect
    expect(page.get_by_test_id("connection-status")).to_have_text("not connected")
    page.get_by_test_id("api-key-input").fill(key)
    page.get_by_test_id("api-key-save").click()
    expect(page.get_by_test_id("connection-status")).to_have_text("connected")

    steps = {stage: STEP_S for stage in ("metadata", "chunk", "embed", "index")}
    followed = submit(live, key, "dashboard followed", sleep_s=steps)
    doomed = submit(live, key, "dashboard cancelled", sleep_s={"metadata": 20})

    # the table picks both jobs up by polling; follow the first one while it still runs
    row = page.locator(f'[data-testid="job-row"][data-job-id="{followed}"]')
    row.click()
    status = page.get_by_test_id("timeline-status")
    expect(page.get_by_test_id("timeline-job-id")).to_have_text(followed)
    assert status.text_content() != "completed"  # selected before the end: the rest is streamed
    expect(status).to_have_text("completed", timeout=60_000)
    events = page.get_by_test_id("timeline-event")
    history = live.ledger.get(followed).history
    assert [int(s) for s in events.evaluate_all("els => els.map(e => e.dataset.seq)")] == [
        e.seq for e in history
    ]
    done = page.locator('[data-testid="timeline-stages"] .chip.done')
    assert done.evaluate_all("els => els.map(e => e.dataset.stage)") == [
        "metadata",
        "chunk",
        "embed",
        "index",
    ]
    expect(row).to_have_attribute("data-status", "completed")

    other = page.locator(f'[data-testid="job-row"][data-job-id="{doomed}"]')
    other.get_by_test_id("job-cancel").click()
    expect(other).to_have_attribute("data-status", "cancelled", timeout=15_000)
    assert live.ledger.get(doomed).status is JobStatus.CANCELLED
    expect(page.get_by_test_id("stat-completed")).to_have_text("1")
    expect(page.get_by_test_id("stat-cancelled")).to_have_text("1")
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    page.close()
    assert errors == []
