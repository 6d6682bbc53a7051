"""The replay server itself: binding, lookups, error bodies, faults."""

from __future__ import annotations

import socket

import httpx
import pytest

from ingest_ray.adapters.replay import ReplayServer, adapter_settings_for
from tests.unit.adapters.conftest import APIS, CORE_FIXTURES


def test_replay_binds_loopback_ephemeral_port_and_releases_it() -> None:
    server = ReplayServer(APIS, core_dir=CORE_FIXTURES)
    base = server.start()
    assert base.startswith("http://127.0.0.1:") and not base.endswith(":0")
    port = int(base.rsplit(":", 1)[1])
    server.stop()
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("127.0.0.1", port))
    with pytest.raises(RuntimeError):
        _ = server.base_url


def test_replay_serves_captured_bytes_and_openalex_404_json(replay: ReplayServer) -> None:
    with httpx.Client(base_url=replay.base_url) as client:
        found = client.get("/works/https://doi.org/10.1371/JOURNAL.PONE.0000030")
        missing = client.get("/works/doi:10.9999/nope")
    raw = (
        APIS / "openalex" / "work_doi_10.1371_journal.pone.0000030_plos_oa_gold_pdf.json"
    ).read_bytes()
    assert found.status_code == 200 and found.content == raw
    assert missing.status_code == 404
    assert set(missing.json()) == {"error", "message"}


def test_replay_indexes_works_of_list_responses(replay: ReplayServer) -> None:
    assert len(replay.catalog.openalex_by_id) > 7


def test_replay_unpaywall_404_has_captured_shape(replay: ReplayServer) -> None:
    with httpx.Client(base_url=replay.base_url) as client:
        response = client.get("/v2/10.000/nodata", params={"email": "a@b.c"})
        no_email = client.get("/v2/10.1073/pnas.1414271111")
    body = response.json()
    assert response.status_code == 404
    assert body["HTTP_status_code"] == 404 and body["error"] is True
    assert body["message"].startswith("'10.000/nodata' isn't in Unpaywall.")
    assert no_email.status_code == 422


def test_replay_rejects_invalid_openalex_select_like_openalex(replay: ReplayServer) -> None:
    with httpx.Client(base_url=replay.base_url) as client:
        bad = client.get("/works/W2741809807", params={"select": "id,DOESNTEXIST"})
        good = client.get("/works/W2741809807", params={"select": "id,title"})
    assert bad.status_code == 400
    assert bad.json()["message"].startswith("DOESNTEXIST is not a valid select field.")
    assert good.json() == {
        "id": "https://openalex.org/W2741809807",
        "title": "The state of OA: a large-scale analysis of the prevalence and impact of Open Access articles",
    }


def test_replay_fault_plan_is_consumed_then_normal_answers_resume(replay: ReplayServer) -> None:
    replay.add_fault("/v3/search/works", status=429, times=1, retry_after="2")
    replay.add_fault("/v3/search/works", status=503, times=1)
    with httpx.Client(base_url=replay.base_url) as client:
        answers = [
            client.get("/v3/search/works", params={"q": 'doi:"10.7554/elife.01567"'})
            for _ in range(3)
        ]
    assert [a.status_code for a in answers] == [429, 503, 200]
    assert answers[0].headers["Retry-After"] == "2"
    assert answers[2].json()["totalHits"] == 1
    assert replay.count("/v3/search/works") == 3


def test_replay_serves_added_files(replay: ReplayServer) -> None:
    url = replay.add_file("/files/a.pdf", b"%PDF-1.7 x")
    with httpx.Client() as client:
        response = client.get(url)
    assert response.content == b"%PDF-1.7 x"
    assert response.headers["content-type"] == "application/pdf"


def test_adapter_settings_for_points_all_sources_at_server() -> None:
    settings = adapter_settings_for("http://127.0.0.1:1234", core_rate_per_s=1.0)
    assert {settings.openalex_base_url, settings.unpaywall_base_url, settings.core_base_url} == {
        "http://127.0.0.1:1234"
    }
    assert settings.unpaywall_email and settings.core_api_key
    assert settings.rate_limit_backend == "none" and settings.core_rate_per_s == 1.0
