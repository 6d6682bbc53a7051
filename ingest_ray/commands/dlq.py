"""``ingest-ray dlq list|replay``: read the dead-letter topic and re-queue failed jobs."""

from __future__ import annotations

from typing import Annotated

import redis
import typer
from rich.table import Table

from ingest_ray.commands.common import console, settings
from ingest_ray.control import ControlInbox, JobControl
from ingest_ray.errors import IngestError
from ingest_ray.events import DeadLetter, decode
from ingest_ray.kafka.reader import read_topic
from ingest_ray.ledger.factory import open_ledger
from ingest_ray.runtime.options import RuntimeOptions
from ingest_ray.states import JobStatus

dlq_app = typer.Typer(help="The dead-letter topic.")


def dead_letters() -> list[DeadLetter]:
    """Every dead letter in the topic, oldest first."""
    cfg = settings()
    letters = []
    for msg in read_topic(cfg.kafka_bootstrap_servers, cfg.topic_deadletter):
        try:
            event = decode(msg.value())
        except IngestError:
            continue
        if isinstance(event, DeadLetter):
            letters.append(event)
    return letters


@dlq_app.command("list")
def dlq_list(limit: Annotated[int, typer.Option(min=1)] = 50) -> None:
    """Show the newest dead letters: failed jobs and unreadable messages."""
    letters = dead_letters()
    table = Table("when", "job", "doc_key", "stage", "tries", "error", "reason")
    for letter in letters[-limit:]:
        table.add_row(
            letter.occurred_at.strftime("%Y-%m-%d %H:%M:%S"), letter.job_id or "(message)",
            letter.doc_key or "-", letter.stage or "-", str(letter.attempts or "-"),
            letter.error_type, letter.reason[:80],
        )  # fmt: skip
    console.print(table)
    console.print(f"{len(letters)} dead letter(s) in {settings().topic_deadletter}")


@dlq_app.command("replay")
def dlq_replay(
    job: Annotated[list[str] | None, typer.Option("--job", help="Job id (repeatable).")] = None,
    replay_all: Annotated[
        bool, typer.Option("--all", help="Every failed job in the topic.")
    ] = False,
) -> None:
    """Queue dead-lettered jobs again: a new attempt of the same job, from the failed stage."""
    if not job and not replay_all:
        raise typer.BadParameter("give --job ID (one or more) or --all")
    wanted = list(job or [])
    if replay_all:
        wanted = list(dict.fromkeys(d.job_id for d in dead_letters() if d.job_id))
    cfg = settings()
    ledger = open_ledger(cfg)
    client = redis.Redis.from_url(cfg.redis_url, decode_responses=True)
    control = JobControl(
        ledger,
        ControlInbox(client, RuntimeOptions(name=cfg.runtime_name).inbox_key(cfg.redis_prefix)),
    )
    try:
        for job_id in wanted:
            current = ledger.get(job_id)
            if current.status is not JobStatus.FAILED:
                console.print(f"{job_id}: {current.status.value}, not replayed")
                continue
            control.retry(job_id)
            console.print(f"{job_id}: queued again at stage {current.stage}")
    finally:
        ledger.close()
        client.close()
