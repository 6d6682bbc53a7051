"""The dashboard's world for the browser tests: an IngestWorker (so its heartbeat reports the
pools) running the real metadata and pdf_fetch stages against captured API responses (offline)
and scripted stages for the rest, the job API served by uvicorn on loopback, and Debian's
Chromium driven by Playwright. Nothing here reaches beyond 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from ingest_ray.auth import ApiKeyStore
from ingest_ray.kafka import KafkaClient
from ingest_ray.ledger.redis import RedisLedger
from ingest_ray.local_run import replay_settings
from ingest_ray.pipelines.builtin import STAGE_FACTORIES, builtin_catalog
from ingest_ray.runtime.options import RuntimeOptions
from ingest_ray.workers.ingest import IngestWorker
from serve_app.app import build_app
from tests.conftest import FIXTURES, Services, in_ci
from tests.integration.api.conftest import api_settings
from tests.integration.api.test_cli_http import Live, live_settings, serving

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path(os.environ.get("INGEST_RAY_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
#: real stages where they run offline; the rest scripted (their timing and faults on request)
REAL = ("metadata", "pdf_fetch")
FACTORIES = {n: "ingest_ray.testing:ScriptedStage" for n in STAGE_FACTORIES if n not in REAL}
#: where the tests leave their screenshots (``docs/img`` to refresh the README's)
SHOTS = os.environ.get("INGEST_RAY_SCREENSHOT_DIR")


@dataclass(frozen=True)
class Ui:
    """The live stack, a key of a fresh tenant, and where screenshots go."""

    live: Live
    key: str
    tenant: str
    worker: IngestWorker
    shots: Path

    def submit(self, text: str, **metadata: object) -> str:
        item = {"source": {"kind": "text", "value": text}, "metadata": metadata}
        headers = {"Authorization": f"Bearer {self.key}"}
        reply = httpx.post(f"{self.live.url}/jobs", json=item, headers=headers, timeout=10)
        assert reply.status_code == 202, reply.text
        return str(reply.json()["jobs"][0]["job_id"])


@pytest.fixture(scope="package")
def ui(
    services: Services, local_ray: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ui]:
    tmp = tmp_path_factory.mktemp("ui")
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    base = live_settings(services, prefix).model_copy(update={
        "sections": {"storage": {"blob_url": str(tmp / "blobs")},
                     "index": {"lancedb_dir": str(tmp / "lancedb")}},
        "worker_heartbeat_s": 1.0, "metrics_port": -1,
    })  # fmt: skip
    with replay_settings(base, FIXTURES / "apis") as settings:
        KafkaClient.from_settings(settings).ensure_topics()
        catalog = builtin_catalog(settings, factories=FACTORIES)
        worker = IngestWorker(settings, catalog, name=f"ui-{prefix[5:11]}",
                              options=RuntimeOptions(name=settings.runtime_name, reconcile_s=1.0))  # fmt: skip
        worker.start()
        ledger = RedisLedger.from_settings(settings)
        store = ApiKeyStore(settings.redis_url, settings.redis_prefix)
        tenant = f"ui-{uuid.uuid4().hex[:6]}"
        key = store.create(tenant, "jobs:read jobs:write jobs:cancel", "dashboard test")[1]
        store.close()
        try:
            with serving(build_app(settings, api_settings())) as url:
                shots = Path(SHOTS) if SHOTS else tmp / "shots"
                shots.mkdir(parents=True, exist_ok=True)
                yield Ui(Live(url, settings, ledger), key, tenant, worker, shots)
        finally:
            worker.stop(grace_s=5)
            ledger.close()
    client = redis.Redis.from_url(services.redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.unlink(*keys)
    client.close()


@pytest.fixture
def playwright() -> Iterator[object]:
    """Per test: the sync driver runs an event loop in this thread while it is open, which
    would break ``asyncio.run`` in the other tests of the directory."""
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        if in_ci():
            pytest.fail("chromium is not installed (apt-get install -y chromium)", pytrace=False)
        pytest.skip("chromium is not installed")
    with sync_api.sync_playwright() as driver:
        yield driver


@pytest.fixture
def page(ui: Ui, playwright: object, tmp_path: Path) -> Iterator[object]:
    """Chromium with a fresh profile (``--user-data-dir``), connected with the tenant's key
    through the link ``ingest-ray up`` prints (``#key=``)."""
    context = playwright.chromium.launch_persistent_context(  # type: ignore[attr-defined]
        str(tmp_path / "profile"), executable_path=str(CHROMIUM), args=ARGS, headless=True,
        viewport={"width": 1440, "height": 900},
    )  # fmt: skip
    tab = context.pages[0] if context.pages else context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(f"{ui.live.url}/#key={ui.key}")
    sync_api.expect(tab.get_by_test_id("connection-status")).to_have_text("connected")
    yield tab
    context.close()
    assert errors == []
