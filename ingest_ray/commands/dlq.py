"""``ingest-ray dlq list|show|replay|resend``: the dead-letter topic.

``list`` reads a bounded window (the last N letters of each partition, or those since a time),
never the whole topic. A letter is named ``PARTITION:OFFSET`` (where it sits in the topic) or by
its event id. ``show`` prints one letter with its headers and its value (UTF-8 when it is text,
hex otherwise); ``replay`` re-queues failed jobs and resends mapping events and valid requests;
``resend --edit`` opens a message's original value in ``$EDITOR`` (or takes it from a file),
checks that it is a valid envelope and sends it to the topic it came from. Replays and resends
are remembered, so the same letter is never replayed twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import click
import redis
import typer
from rich.table import Table

from ingest_ray.commands.common import console, err_console, settings
from ingest_ray.control import ControlInbox, JobControl
from ingest_ray.deadletters import LetterView
from ingest_ray.dlq import Outcome, Replayer, letter_at, list_letters
from ingest_ray.kafka.client import KafkaClient
from ingest_ray.ledger.factory import open_ledger
from ingest_ray.render import fit

dlq_app = typer.Typer(help="The dead-letter topic: list, show, replay, resend.")

LastOption = Annotated[int, typer.Option(min=1, help="Letters per partition, newest.")]
SinceOption = Annotated[
    str | None, typer.Option(help="Only letters since: ISO time, or 30m / 2h / 7d ago.")
]
_AGO = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str | None, *, now: datetime | None = None) -> datetime | None:
    """``30m``, ``2h``, ``7d`` ago, or an ISO 8601 time (UTC when it has no zone)."""
    if value is None:
        return None
    match = _AGO.match(value.strip().lower())
    if match:
        ago = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return (now or datetime.now(UTC)) - ago
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise typer.BadParameter(f"--since {value!r}: give 30m, 2h, 7d or an ISO time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@contextmanager
def _replayer() -> Iterator[Replayer]:
    cfg = settings()
    ledger = open_ledger(cfg)
    client = redis.Redis.from_url(cfg.redis_url, decode_responses=True)
    inbox = ControlInbox.for_settings(client, cfg)
    producer = KafkaClient.from_settings(cfg).producer()
    try:
        yield Replayer(cfg, client, JobControl(ledger, inbox), producer)
    finally:
        producer.close()
        ledger.close()
        client.close()


def _origin(letter: LetterView) -> str:
    o = letter.origin
    return f"{o.topic}[{o.partition}]@{o.offset}" if o else "-"


def _document(letter: LetterView) -> str:
    return letter.subject.doc_key or letter.subject.job_id or "-"


def _as_json(letter: LetterView, replayed: bool) -> dict[str, object]:
    data = asdict(letter)
    data["value"] = letter.value.decode("utf-8", errors="replace")
    data["key"] = letter.key.decode("utf-8", errors="replace") if letter.key else None
    data["letter"], data["replayed"] = f"{letter.partition}:{letter.offset}", replayed
    return data


@dlq_app.command("list")
def dlq_list(
    last: LastOption = 50,
    since: SinceOption = None,
    kind: Annotated[str | None, typer.Option(help="job, message or mapping.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Full reasons.")] = False,
) -> None:
    """Show recent dead letters: kind, reason, where they came from, the document."""
    letters = list_letters(settings(), last=last, since=parse_since(since))
    letters = [x for x in letters if kind is None or x.kind == kind]
    with _replayer() as replayer:
        done = {x.event_id: replayer.replayed(x.event_id) for x in letters}
    if as_json:
        console.print_json(json.dumps([_as_json(x, done[x.event_id]) for x in letters]))
        return
    table = Table("letter", "at", "kind", "reason", "origin", "document", "replayed")
    table.columns[3].overflow = "fold" if verbose else "ellipsis"
    table.columns[3].ratio = 2
    table.columns[5].overflow, table.columns[5].ratio = "ellipsis", 1
    for x in letters:
        reason = x.reason if verbose else fit(f"{x.error_type}: {x.reason}", 70)
        table.add_row(f"{x.partition}:{x.offset}", x.at[:19].replace("T", " "), x.kind, reason,
                      _origin(x), _document(x), "yes" if done[x.event_id] else "")  # fmt: skip
    console.print(table)
    where = f"since {since}" if since else f"last {last} per partition"
    console.print(f"{len(letters)} dead letter(s) in {settings().topic_deadletter} ({where})")


def _find(ref: str, *, last: int = 500) -> LetterView:
    """A letter by ``PARTITION:OFFSET`` or by event id (looked for among the last letters)."""
    if re.fullmatch(r"\d+:\d+", ref):
        partition, offset = (int(n) for n in ref.split(":"))
        found = letter_at(settings(), partition, offset)
    else:
        found = next((x for x in list_letters(settings(), last=last) if x.event_id == ref), None)
    if found is None:
        err_console.print(f"[red]no dead letter {ref}[/] (give PARTITION:OFFSET or an event id)")
        raise typer.Exit(1)
    return found


def render_value(value: bytes, *, force_hex: bool = False) -> str:
    """The value as text when it is UTF-8 text, else as a hex dump (16 bytes a line)."""
    if not force_hex:
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and all(ch.isprintable() or ch in "\n\r\t" for ch in text):
            return text
    lines = []
    for start in range(0, len(value), 16):
        chunk = value[start : start + 16]
        shown = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{start:08x}  {chunk.hex(' '):<47}  {shown}")
    return "\n".join(lines)


@dlq_app.command("show")
def dlq_show(
    letter: Annotated[str, typer.Argument(help="PARTITION:OFFSET or the letter's event id.")],
    force_hex: Annotated[bool, typer.Option("--hex", help="Always show the value as hex.")] = False,
) -> None:
    """Show one letter: its headers, then its value raw (text, or hex when not text)."""
    found = _find(letter)
    table = Table.grid(padding=(0, 2))
    for name, value in (
        ("letter", f"{found.partition}:{found.offset}"), ("kind", found.kind),
        ("event id", found.event_id), ("at", found.at), ("reason", found.reason),
        ("error type", found.error_type), ("origin", _origin(found)),
        ("job", found.subject.job_id or "-"), ("tenant", found.subject.tenant_id or "-"),
        ("doc_key", found.subject.doc_key or "-"), ("stage", found.subject.stage or "-"),
        ("truncated", f"kept part of {found.truncated} bytes" if found.truncated else "no"),
        ("key", found.key.decode("utf-8", errors="replace") if found.key else "-"),
    ):  # fmt: skip
        table.add_row(f"[bold]{name}", value)
    console.print(table)
    console.print(f"[bold]value[/] ({len(found.value)} bytes):")
    console.print(render_value(found.value, force_hex=force_hex), markup=False, highlight=False)


def _print_result(ref: str, outcome: Outcome, detail: str) -> None:
    style = {Outcome.REPLAYED: "green", Outcome.ALREADY: "yellow", Outcome.REFUSED: "red"}
    console.print(f"{ref}: [{style[outcome]}]{outcome.value}[/] {detail}")


@dlq_app.command("replay")
def dlq_replay(
    letters: Annotated[
        list[str] | None, typer.Argument(help="PARTITION:OFFSET or event ids.")
    ] = None,
    job: Annotated[list[str] | None, typer.Option("--job", help="Job id (repeatable).")] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Every letter in the window.")] = False,
    last: LastOption = 50,
    since: SinceOption = None,
) -> None:
    """Replay letters: failed jobs are queued again where they failed, mapping events and
    valid requests are sent again. A letter replayed before is left alone."""
    if not (letters or job or replay_all):
        raise typer.BadParameter("give letters (PARTITION:OFFSET or event ids), --job or --all")
    chosen = [_find(ref) for ref in letters or []]
    if job or replay_all:
        window = list_letters(settings(), last=last, since=parse_since(since))
        wanted = set(job or [])
        chosen += [x for x in window if replay_all or x.subject.job_id in wanted]
    failed = False
    with _replayer() as replayer:
        for letter in {x.event_id: x for x in chosen}.values():
            result = replayer.replay(letter)
            failed |= result.outcome is Outcome.REFUSED
            _print_result(f"{letter.partition}:{letter.offset}", result.outcome, result.detail)
    if failed:
        raise typer.Exit(1)


@dlq_app.command("resend")
def dlq_resend(
    letter: Annotated[str, typer.Argument(help="PARTITION:OFFSET or the letter's event id.")],
    edit: Annotated[bool, typer.Option("--edit", help="Edit the value in $EDITOR first.")] = False,
    from_file: Annotated[
        Path | None, typer.Option("--from-file", help="Send this file's bytes instead.")
    ] = None,
) -> None:
    """Send a message letter's value (edited, or from a file) to the topic it came from,
    once it reads as a valid envelope."""
    found = _find(letter)
    if from_file is not None:
        value = from_file.read_bytes()
    elif edit:
        value = _edited(found)
    else:
        value = found.value
    with _replayer() as replayer:
        result = replayer.resend(found, value)
    _print_result(f"{found.partition}:{found.offset}", result.outcome, result.detail)
    if result.outcome is Outcome.REFUSED:
        raise typer.Exit(1)


def _edited(letter: LetterView) -> bytes:
    try:
        text = letter.value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise typer.BadParameter(
            "the value is not UTF-8 text; save a fixed copy and use --from-file"
        ) from exc
    changed = click.edit(text, extension=".json", require_save=True)
    if changed is None:
        err_console.print("[yellow]not saved: nothing sent[/]")
        raise typer.Exit(1)
    return changed.encode()
