"""Job routes on Ray Serve: submit (JSON, batch, upload), list, read, cancel, retry, stats."""

from __future__ import annotations

from ingest_ray.control import CancelJob, ControlInbox, RequeueJob
from ingest_ray.events import IngestRequest, decode
from ingest_ray.kafka.reader import read_topic
from ingest_ray.ledger.base import TransitionRequest
from ingest_ray.states import JobStatus
from tests.conftest import FIXTURES
from tests.integration.api.conftest import ApiEnv


def _submit(env: ApiEnv, body: object, key: str = "a") -> dict:
    with env.client(key) as c:
        r = c.post("/jobs", json=body)
    assert r.status_code in (200, 202), r.text
    return r.json()


def test_jobs_submit_is_idempotent_per_tenant_and_publishes(api_env: ApiEnv) -> None:
    item = {"source": {"kind": "doi", "value": "10.1000/API-One"}, "priority": 7,
            "metadata": {"note": "x"}}  # fmt: skip
    with api_env.client() as c:
        first = c.post("/jobs", json=item)
        again = c.post("/jobs", json=item)
    assert first.status_code == 202 and again.status_code == 200
    job = first.json()["jobs"][0]
    assert job["created"] is True and job["doc_key"] == "doi:10.1000/api-one"
    assert again.json()["jobs"][0] == {**job, "created": False}
    stored = api_env.ledger.get(job["job_id"])
    assert stored.tenant_id == "a" and stored.priority == 7 and stored.pipeline == "two_phase"
    assert set(stored.metadata) == {"request_id", "source", "request"}
    assert stored.metadata["source"] == {"kind": "doi", "value": "10.1000/API-One"}
    assert stored.metadata["request"] == {"note": "x"}
    published = [decode(m.value()) for m in read_topic(
        api_env.settings.kafka_bootstrap_servers, api_env.settings.topic_requests)]  # fmt: skip
    mine = [p for p in published if isinstance(p, IngestRequest) and p.doc_key == job["doc_key"]]
    assert mine and all(p.tenant_id == "a" for p in mine)
    assert mine[0].request_id == stored.metadata["request_id"]


def test_jobs_same_document_from_two_tenants_makes_two_jobs(api_env: ApiEnv) -> None:
    item = {"source": {"kind": "text", "value": "shared document text"}}
    a = _submit(api_env, item, "a")["jobs"][0]
    b = _submit(api_env, item, "b")["jobs"][0]
    assert a["created"] and b["created"] and a["job_id"] != b["job_id"]
    assert a["doc_key"] == b["doc_key"]


def test_jobs_batch_lists_filters_and_pages(api_env: ApiEnv) -> None:
    items = [{"source": {"kind": "text", "value": f"batch doc {i}"}, "pipeline": "auto"}
             for i in range(5)]  # fmt: skip
    jobs = _submit(api_env, {"items": items})["jobs"]
    assert len(jobs) == 5 and all(j["created"] for j in jobs)
    ids = {j["job_id"] for j in jobs}
    seen: list[str] = []
    with api_env.client("a_read") as c:
        cursor = None
        while True:
            params = {"limit": 2, "pipeline": "auto", **({"cursor": cursor} if cursor else {})}
            page = c.get("/jobs", params=params).json()
            seen += [j["job_id"] for j in page["items"]]
            assert all(j["tenant_id"] == "a" for j in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        one = c.get("/jobs", params={"doc_key": jobs[2]["doc_key"]}).json()["items"]
        bad = c.get("/jobs", params={"limit": 0})
        naive = c.get("/jobs", params={"created_after": "2024-01-01T00:00:00"})
    assert ids <= set(seen) and len(seen) == len(set(seen))
    assert seen == sorted(seen, reverse=True)
    assert [j["job_id"] for j in one] == [jobs[2]["job_id"]]
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"
    assert naive.status_code == 422


def test_jobs_reject_server_owned_fields_and_bad_bodies(api_env: ApiEnv) -> None:
    source = {"kind": "text", "value": "owned fields"}
    with api_env.client() as c:
        answers = [
            c.post("/jobs", json={"source": source, "status": "completed"}),
            c.post("/jobs", json={"source": source, "tenant_id": "b"}),
            c.post("/jobs", json={"items": [{"source": source, "attempts": 3}]}),
            c.post("/jobs", json={"source": source, "priority": 10}),
            c.post("/jobs", json={"items": []}),
            c.post("/jobs", json={"items": [{"source": source}] * 101}),
            c.post("/jobs", json={"source": {"kind": "pdf_path", "value": "/etc/passwd"}}),
            c.post("/jobs", json={"source": source, "metadata": {"title": "a\u0000b"}}),
        ]
        nan = c.post(
            "/jobs",
            content=b'{"source": {"kind": "text", "value": "n"}, "metadata": {"score": NaN}}',
            headers={"Content-Type": "application/json"},
        )
        malformed = c.post(
            "/jobs", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        wrong_type = c.post("/jobs", content=b"x", headers={"Content-Type": "text/plain"})
        huge = c.post("/jobs", json={"source": source, "metadata": {"x": "y" * 1_100_000}})
        listed = c.get("/jobs", params={"doc_key": "text:" + "0" * 32}).json()["items"]
    assert [r.status_code for r in answers] == [422] * len(answers)
    assert "status" in answers[0].json()["error"]["message"]
    assert "NUL character" in answers[-1].json()["error"]["message"]
    assert nan.status_code == 422 and "not a JSON number" in nan.json()["error"]["message"]
    assert malformed.status_code == 400 and wrong_type.status_code == 415
    assert huge.status_code == 413
    assert listed == []


def test_jobs_upload_pdf_stores_blob_and_checks_magic_and_size(api_env: ApiEnv) -> None:
    pdf = (FIXTURES / "pdfs" / "sample-trivial-pdflatex-1page.pdf").read_bytes()
    with api_env.client("a_write") as c:
        ok = c.post("/jobs", files={"file": ("a.pdf", pdf, "application/pdf")},
                    data={"priority": "3"})  # fmt: skip
        not_pdf = c.post("/jobs", files={"file": ("a.pdf", b"hello", "application/pdf")})
        big = c.post("/jobs", files={"file": ("b.pdf", b"%PDF-" + b"0" * 1_100_000)})
        no_file = c.post("/jobs", data={"priority": "3"}, files={"other": ("x", b"%PDF-")})
    assert ok.status_code == 202, ok.text
    job = ok.json()["jobs"][0]
    assert job["doc_key"].startswith("pdf:sha256:")
    stored = api_env.ledger.get(job["job_id"])
    assert stored.priority == 3 and stored.pipeline == "two_phase"
    # the upload is referenced by digest, so a stage on any node finds it in the shared store
    assert stored.metadata["source"]["kind"] == "pdf_blob"
    digest = stored.metadata["source"]["value"]
    assert job["doc_key"] == f"pdf:sha256:{digest}"
    from ingest_ray.stages.factories import blob_store

    assert blob_store(api_env.settings).get(digest) == pdf
    assert not_pdf.status_code == 415 and big.status_code == 413
    assert no_file.status_code in (400, 422)


def test_jobs_cancel_and_retry(api_env: ApiEnv) -> None:
    jobs = _submit(api_env, {"items": [{"source": {"kind": "text", "value": f"ctl {i}"}}
                                       for i in range(3)]})["jobs"]  # fmt: skip
    queued, failing, finishing = (j["job_id"] for j in jobs)
    led = api_env.ledger
    for job_id in (failing, finishing):
        led.transition(TransitionRequest(job_id, JobStatus.QUEUED, JobStatus.PROCESSING))
    led.transition(TransitionRequest(failing, JobStatus.PROCESSING, JobStatus.FAILED))
    led.transition(TransitionRequest(finishing, JobStatus.PROCESSING, JobStatus.COMPLETED))
    with api_env.client() as c:
        cancel = c.post(f"/jobs/{queued}/cancel")
        cancel_again = c.post(f"/jobs/{queued}/cancel")
        retry_cancelled = c.post(f"/jobs/{queued}/retry")
        retry = c.post(f"/jobs/{failing}/retry")
        retry_again = c.post(f"/jobs/{failing}/retry")
        cancel_done = c.post(f"/jobs/{finishing}/cancel")
        stats = c.get("/stats").json()
    assert cancel.status_code == 200 and cancel.json()["changed"] is True
    assert cancel.json()["job"]["status"] == "cancelled"
    assert cancel_again.status_code == 200 and cancel_again.json()["changed"] is False
    assert retry_cancelled.status_code == 409
    assert retry.json()["changed"] is True and retry.json()["job"]["status"] == "queued"
    assert retry_again.json()["changed"] is False
    assert cancel_done.status_code == 409 and cancel_done.json()["error"]["code"] == "conflict"
    commands = ControlInbox.for_settings(api_env.redis, api_env.settings).read("test")
    assert any(isinstance(e.command, CancelJob) and e.command.job_id == queued for e in commands)
    assert RequeueJob(failing) in [e.command for e in commands]
    assert stats["counts"]["completed"] >= 1 and stats["throughput_per_min"] > 0


def test_health_ready_metrics_openapi_and_dashboard(api_env: ApiEnv) -> None:
    with api_env.client(None) as c:
        health, ready = c.get("/healthz"), c.get("/readyz")
        metrics, doc, page = c.get("/metrics"), c.get("/openapi.json"), c.get("/")
        missing = c.get("/no-such-route")
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert "ingest_ray_api_sse_streams" in metrics.text
    paths = doc.json()["paths"]
    assert {"/jobs", "/jobs/{job_id}", "/jobs/{job_id}/events", "/jobs/{job_id}/cancel",
            "/jobs/{job_id}/retry", "/stats", "/healthz", "/readyz", "/metrics"} <= set(paths)  # fmt: skip
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_jobs_a_damaged_record_is_a_500_naming_it_and_spares_its_batch_mates(
    api_env: ApiEnv,
) -> None:
    held = _submit(api_env, {"source": {"kind": "doi", "value": "10.1000/damaged"}})["jobs"][0]
    key = f"{api_env.settings.redis_prefix}job:{held['job_id']}"
    api_env.redis.delete(key)
    api_env.redis.rpush(key, "not a hash")  # a key Redis cannot read as the job's hash
    with api_env.client() as c:
        read = c.get(f"/jobs/{held['job_id']}")
        stream = c.get(f"/jobs/{held['job_id']}/events")
        batch = c.post("/jobs", json={"items": [
            {"source": {"kind": "doi", "value": "10.1000/damaged"}},
            {"source": {"kind": "doi", "value": "10.1000/damaged-mate"}},
        ]})  # fmt: skip
        mates = c.get("/jobs", params={"doc_key": "doi:10.1000/damaged-mate"})
    for r in (read, stream, batch):
        assert r.status_code == 500, r.text
        error = r.json()["error"]
        assert error["code"] == "damaged_record" and held["job_id"] in error["message"]
    (mate,) = mates.json()["items"]  # created and published, though the request failed
    assert mate["status"] == "queued"
