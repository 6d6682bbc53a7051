"""End to end through HTTP: a job submitted to the API is taken by a runtime with scripted
stages (Kafka ingress admits the API's job as a duplicate and hands it to the Dispatcher), and
its SSE stream shows every stage until completion; cancel reaches the Dispatcher's inbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ingest_ray.pipelines.builtin import STAGE_FACTORIES, builtin_catalog
from ingest_ray.runtime.options import RuntimeOptions
from ingest_ray.runtime.runtime import Runtime
from tests.integration.api.conftest import ApiEnv
from tests.integration.api.sse import events

SCRIPTED = {name: "ingest_ray.testing:ScriptedStage" for name in STAGE_FACTORIES}


@pytest.fixture(scope="module")
def runtime(api_env: ApiEnv) -> Iterator[Runtime]:
    settings = api_env.settings
    catalog = builtin_catalog(settings, factories=SCRIPTED)
    rt = Runtime(settings, catalog, RuntimeOptions(name=settings.runtime_name, reconcile_s=1.0))
    rt.start()
    rt.start_ingress(1, tag="api")
    try:
        yield rt
    finally:
        rt.shutdown()


def test_runtime_runs_api_job_and_sse_shows_every_stage(api_env: ApiEnv, runtime: Runtime) -> None:
    item = {"source": {"kind": "text", "value": "runtime through the API"}, "pipeline": "auto",
            "metadata": {"fail_times": {"chunk": 1}}}  # fmt: skip
    with api_env.client() as c:
        job_id = c.post("/jobs", json=item).json()["jobs"][0]["job_id"]
        with c.stream("GET", f"/jobs/{job_id}/events", timeout=120) as r:
            got = [f.json() for f in events(r)]
        final = c.get(f"/jobs/{job_id}").json()
    assert [e["seq"] for e in got] == list(range(1, len(got) + 1))
    assert got[-1]["to_status"] == "completed" and final["status"] == "completed"
    stages = [e["stage"] for e in got if e["kind"] == "stage"]
    assert {"chunk", "embed", "index"} <= set(stages)
    assert set(final["outputs"]) >= {"metadata", "chunk", "embed", "index"}
    assert final["outputs"]["chunk"]["attempt"] == 2  # the scripted flake was retried


def test_runtime_cancel_through_api_stops_a_slow_job(api_env: ApiEnv, runtime: Runtime) -> None:
    item = {"source": {"kind": "text", "value": "slow job to cancel"}, "pipeline": "auto",
            "metadata": {"sleep_s": {"metadata": 1.5}}}  # fmt: skip
    with api_env.client() as c:
        job_id = c.post("/jobs", json=item).json()["jobs"][0]["job_id"]
        with c.stream("GET", f"/jobs/{job_id}/events", timeout=120) as r:
            cancelled = c.post(f"/jobs/{job_id}/cancel").json()
            got = [f.json() for f in events(r)]
    assert cancelled["changed"] is True
    assert got[-1]["to_status"] == "cancelled"
    assert api_env.ledger.get(job_id).status.value == "cancelled"
