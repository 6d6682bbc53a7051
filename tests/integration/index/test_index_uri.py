"""One index URI, any process: what one process (one node's index stage) writes, another (the
search command, another node) finds. LanceDB on S3 (``s3://`` against the loopback S3 server)
and pgvector (``postgresql://``), each configured by ``INGEST_RAY_INDEX_URI`` alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ingest_ray.index import IndexSettings, build_sink, run_search
from ingest_ray.index.lancedb_sink import LanceDbSink
from tests.s3server import S3Server, client_env
from tests.unit.index.fakes import PASSAGES, HashingEmbedder, document

CHILD = Path(__file__).with_name("index_child.py")
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(params=["lancedb-s3", "pgvector"])
def index_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment that points a process at one shared index, set here too."""
    if request.param == "lancedb-s3":
        server: S3Server = request.getfixturevalue("s3_server")
        env = {**server.env(), "INGEST_RAY_INDEX_URI": f"s3://{server.new_bucket()}/index"}
    else:
        pg: IndexSettings = request.getfixturevalue("pg_settings")
        env = {
            "INGEST_RAY_INDEX_URI": pg.postgres_dsn,
            "INGEST_RAY_CHUNKS_TABLE": pg.chunks_table,
            "INGEST_RAY_ENTITIES_TABLE": pg.entities_table,
        }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def _child(env: dict[str, str], *args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, str(CHILD), *args],
        env={**client_env(S3Server(), **env), "PYTHONPATH": str(ROOT)},
        cwd=ROOT, capture_output=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_index_written_by_another_process_is_searched_here(index_env: dict[str, str]) -> None:
    settings = IndexSettings()
    assert settings.index_uri == index_env["INGEST_RAY_INDEX_URI"]
    expected = sum(len(PASSAGES[k]) for k in ("doc:ocean", "doc:proteins"))
    assert _child(index_env, "write", "doc:ocean", "doc:proteins")["count"] == expected
    hits = run_search(settings, "coral reef bleaching", k=3, embedder=HashingEmbedder())
    assert hits and hits[0].doc_key == "doc:ocean"


def test_index_written_here_is_seen_by_another_process_and_by_an_open_sink(
    index_env: dict[str, str],
) -> None:
    sink = build_sink(IndexSettings())
    try:
        sink.upsert([document("doc:trains", PASSAGES["doc:trains"])])
        before = sink.count()
        seen = _child(index_env, "search", "railway signalling timetable")
        assert seen["count"] == before == len(PASSAGES["doc:trains"])
        assert seen["hits"] and seen["hits"][0][0] == "doc:trains"  # type: ignore[index]
        _child(index_env, "write", "doc:ocean")
        # a sink opened before the other process wrote still sees its rows
        assert sink.count() == before + len(PASSAGES["doc:ocean"])
    finally:
        sink.close()


def test_lancedb_on_s3_needs_no_allow_http_variable(s3_env: S3Server) -> None:
    """allow_http comes from the http:// endpoint; only the usual AWS_* variables are set."""
    settings = IndexSettings(index_uri=f"s3://{s3_env.new_bucket()}/index", embedding_dim=384)
    sink = LanceDbSink(settings)
    try:
        sink.upsert([document("doc:ocean", PASSAGES["doc:ocean"])])
        assert sink.count() == len(PASSAGES["doc:ocean"])
    finally:
        sink.close()
