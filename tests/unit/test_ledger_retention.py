"""Retention policy, ages, and the SQL backend's constants kept in step with states.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ingest_ray.config import Settings
from ingest_ray.errors import ConfigurationError
from ingest_ray.ledger import NewJob, TransitionRequest, pg_sql
from ingest_ray.ledger import migrate as migrations
from ingest_ray.ledger.retention import RetentionPolicy, apply_retention, parse_age
from ingest_ray.states import DEDUPLICATING, TERMINAL, JobStatus
from ingest_ray.testing import InMemoryLedger


def test_parse_age_reads_units_and_refuses_the_rest() -> None:
    assert parse_age("30d") == timedelta(days=30)
    assert parse_age(" 12h ") == timedelta(hours=12)
    assert parse_age("1.5w") == timedelta(weeks=1.5)
    assert parse_age("90m") == timedelta(minutes=90)
    assert parse_age("0s") == timedelta(0)
    for bad in ("30", "d", "-1d", "30 days", ""):
        with pytest.raises(ConfigurationError, match="not an age"):
            parse_age(bad)


def test_retention_policy_from_settings_and_its_cutoffs() -> None:
    settings = Settings(ledger_retention_days=30, ledger_retention_days_by_tenant={"vip": 365})
    policy = RetentionPolicy.from_settings(settings)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    assert policy.cutoffs(now) == [
        ("vip", now - timedelta(days=365)),
        (None, now - timedelta(days=30)),
    ]
    assert RetentionPolicy.from_settings(Settings()).cutoffs(now) == []


def _finished(ledger: InMemoryLedger, tenant: str, doc: str) -> str:
    job_id = ledger.create(NewJob(tenant, doc, "auto")).job_id
    ledger.transition(TransitionRequest(job_id, JobStatus.QUEUED, JobStatus.CANCELLED))
    return job_id


def test_apply_retention_gives_tenants_their_own_age() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    clock = [now - timedelta(days=40)]
    ledger = InMemoryLedger(clock=lambda: clock[0])
    old_vip, old_std = _finished(ledger, "vip", "a"), _finished(ledger, "std", "a")
    clock[0] = now - timedelta(days=400)
    ancient_vip = _finished(ledger, "vip", "b")
    policy = RetentionPolicy(default=timedelta(days=30), by_tenant={"vip": timedelta(days=365)})
    assert apply_retention(ledger, policy, now=now) == {"vip": 1, "*": 1}
    assert ledger.get_many([old_vip, old_std, ancient_vip])[1:] == [None, None]
    assert ledger.get(old_vip).tenant_id == "vip"  # 40 days is young for vip
    assert apply_retention(ledger, policy, now=now) == {"vip": 0, "*": 0}


def test_sql_statuses_match_the_state_machine() -> None:
    assert {s.value for s in DEDUPLICATING} == pg_sql.LIVE_STATUSES
    assert set(pg_sql.FINISHED) == {s.value for s in TERMINAL}
    init = migrations.migrations()[0].sql
    assert "WHERE status IN ('queued', 'processing', 'completed')" in init
    assert (
        "ON CONFLICT (tenant_id, doc_key) WHERE status IN ('queued', 'processing', 'completed')"
        in pg_sql.CREATE
    )


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    found = migrations.migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert found[0].name == "init"
    assert migrations.latest_version() == len(found)
