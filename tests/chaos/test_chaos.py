"""The chaos suite, short form: ~300 jobs through the real built-in stages while random faults
hit every part of the system for about a minute (stage actors, the Dispatcher, the outbox
relay, an ingress actor, an IngestWorker process, the Kafka broker and redis-server
killed with SIGKILL), plus transient stage errors and malformed messages of every kind. The long
form is ``ingest-ray bench chaos`` (figures in docs/reliability.md)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.chaos.faults import FAULTS
from benchmarks.chaos.harness import ChaosConfig, ChaosReport, ChaosRun
from tests.conftest import FIXTURES

PDFS = [p for p in sorted((FIXTURES / "pdfs").glob("*.pdf")) if "encrypted" not in p.name][:4]


def test_chaos_every_fault_loses_and_doubles_nothing(local_ray: None, tmp_path: Path) -> None:
    cfg = ChaosConfig(jobs=300, pdf_share=0.04, malformed=24, duration_s=75, fault_every_s=5)
    _check(ChaosRun(cfg, tmp_path).run(PDFS), set(FAULTS), tmp_path)


def test_chaos_on_the_postgres_ledger_survives_its_kill9(local_ray: None, tmp_path: Path) -> None:
    # the PostgreSQL twin: the same faults on the same jobs plus `kill -9` of the postmaster
    # (a durable temporary cluster, restarted on its data directory); shorter, the same checks
    faults = ("stage_actor", "dispatcher", "outbox_relay", "worker_sigkill", "redis_kill9")
    cfg = ChaosConfig(jobs=200, pdf_share=0.04, malformed=14, duration_s=60, fault_every_s=5,
                      faults=faults, ledger="postgres", outage_s=6)  # fmt: skip
    _check(ChaosRun(cfg, tmp_path).run(PDFS), {*faults, "postgres_kill9"}, tmp_path)


def _check(report: ChaosReport, kinds: set[str], tmp_path: Path) -> None:
    doc = report.to_json()
    (tmp_path / "chaos.json").write_text(json.dumps(doc, indent=2, default=str))
    f = report.findings
    assert {r.kind for r in report.faults} == kinds, doc["faults"]  # every kind happened
    assert f.lost == 0, doc  # each acknowledged request has a job
    assert f.duplicated_jobs == 0, doc  # and exactly one
    assert f.not_terminal == 0, doc
    assert f.failed == 0, doc["findings"]["failure_reasons"]  # no recoverable fault made a failure
    assert f.duplicate_index_rows == 0 and f.unindexed_documents == 0, doc
    assert f.missing_results == 0 and f.duplicated_results == 0, doc
    assert f.malformed_dead_lettered == f.malformed_sent > 0, doc
    assert f.letters_without_reason == 0 and f.failures_without_reason == 0, doc
    # every fault but the last was followed by a completion, unless every job had completed
    assert all(r.recovery_s is not None for r in report.faults[:-1] if r.work_left), doc["faults"]
