"""`ingest-ray dlq list` and `dlq replay`: a replay is a new attempt of the same job."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ingest_ray.states import JobStatus
from tests.integration.runtime.conftest import Env, request


def _cli(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    s = env.settings
    cli_env = {
        **os.environ, "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers, "REDIS_URL": s.redis_url,
        "INGEST_RAY_REDIS_PREFIX": s.redis_prefix, "INGEST_RAY_TOPIC_DEADLETTER": s.topic_deadletter,
        "INGEST_RAY_RUNTIME_NAME": env.options.name, "COLUMNS": "250",
    }  # fmt: skip
    return subprocess.run([sys.executable, "-m", "ingest_ray", *args], env=cli_env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_dlq_list_and_replay_requeue_the_same_job(env: Env) -> None:
    flag = f"{env.settings.redis_prefix}broken"
    env.redis.set(flag, "1")
    runtime = env.runtime()
    runtime.start()
    runtime.start_ingress(1, tag="t")
    try:
        env.send(request("phoenix", fail_while={"embed": flag}))
        env.wait_for(lambda: env.ledger.counts()[JobStatus.FAILED] == 1)
        (job,) = env.jobs()
        listed = _cli(env, "dlq", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        (letter,) = json.loads(listed.stdout)
        assert (letter["kind"], letter["subject"]["job_id"]) == ("job", job.job_id)
        env.redis.delete(flag)
        replay = _cli(env, "dlq", "replay", "--all")
        assert replay.returncode == 0, replay.stderr
        assert f"job {job.job_id} queued again at stage embed" in replay.stdout
        env.wait_for(lambda: env.ledger.counts()[JobStatus.COMPLETED] == 1)
        again = _cli(env, "dlq", "replay", "--job", job.job_id)
        assert "already_replayed" in again.stdout
    finally:
        runtime.shutdown()
    assert [j.job_id for j in env.jobs()] == [job.job_id]
    history = env.ledger.get(job.job_id).history
    assert [e.reason for e in history if e.reason == "retry"] == ["retry"]
    runs = env.runs()
    assert (runs["phoenix|metadata"], runs["phoenix|chunk"], runs["phoenix|embed"]) == (1, 1, 2)
