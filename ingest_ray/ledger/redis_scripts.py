"""Lua scripts in a pipeline, in one round trip.

redis-py's ``Pipeline`` runs ``SCRIPT EXISTS`` before every ``execute`` that holds a
registered :class:`~redis.commands.core.Script`: a second round trip for each batch of
transitions. :func:`run_pipelined` (and :func:`run_pipelined_async`, for the asyncio client)
sends ``EVALSHA`` straight away and loads a script only when the server answers ``NOSCRIPT``
(its script cache is empty after a restart), then re-sends just the calls that were refused. A
``NOSCRIPT`` answer means the script did not run, so re-sending those calls applies nothing
twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript, Script
from redis.exceptions import NoScriptError

#: (script, its ARGV): every ledger script takes its keys from ARGV (``numkeys`` is 0)
ScriptCall = tuple[Script, Sequence[Any]]
#: (script, its KEYS, its ARGV), for the asyncio client
AsyncScriptCall = tuple[AsyncScript, Sequence[str], Sequence[Any]]

_LOADED_BUT_REFUSED = "the server refused the scripts just loaded (SCRIPT FLUSH meanwhile?)"


def run_pipelined(client: redis.Redis, calls: Sequence[ScriptCall]) -> list[Any]:
    """Each call's answer, in order; the first error other than ``NOSCRIPT`` is raised (after
    every call was sent, as ``Pipeline.execute`` does)."""
    answers: list[Any] = [None] * len(calls)
    pending = list(range(len(calls)))
    for _ in range(2):  # once more after loading the scripts the server did not have
        pipe = client.pipeline(transaction=False)
        for i in pending:
            script, args = calls[i]
            pipe.evalsha(script.sha, 0, *args)
        replies = pipe.execute(raise_on_error=False) if pending else []
        pending = _sort(pending, replies, answers)
        if not pending:
            return answers
        for script in {id(calls[i][0]): calls[i][0] for i in pending}.values():
            script.sha = str(client.script_load(script.script))
    raise NoScriptError(_LOADED_BUT_REFUSED)


async def run_pipelined_async(
    client: aioredis.Redis, calls: Sequence[AsyncScriptCall]
) -> list[Any]:
    """:func:`run_pipelined` on the asyncio client, for scripts that take ``KEYS``."""
    answers: list[Any] = [None] * len(calls)
    pending = list(range(len(calls)))
    for _ in range(2):
        pipe = client.pipeline(transaction=False)
        for i in pending:
            script, keys, args = calls[i]
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        replies = await pipe.execute(raise_on_error=False) if pending else []
        pending = _sort(pending, replies, answers)
        if not pending:
            return answers
        for script in {id(calls[i][0]): calls[i][0] for i in pending}.values():
            script.sha = str(await client.script_load(script.script))
    raise NoScriptError(_LOADED_BUT_REFUSED)


def _sort(pending: list[int], replies: Sequence[Any], answers: list[Any]) -> list[int]:
    """Put the answers of the ``pending`` calls in place; answers the calls refused with
    ``NOSCRIPT``. The first other error is raised."""
    refused: list[int] = []
    first_error: Exception | None = None
    for i, answer in zip(pending, replies, strict=True):
        if isinstance(answer, NoScriptError):
            refused.append(i)
        elif isinstance(answer, Exception):
            first_error = first_error or answer
        else:
            answers[i] = answer
    if first_error is not None:
        raise first_error
    return refused


def run_batched(
    client: redis.Redis,
    script: Script,
    head: Sequence[Any],
    items: Sequence[Sequence[Any]],
    per_call: int,
) -> list[Any]:
    """Each item's answer, in order, from a script that takes ``head`` and then the arguments of
    up to ``per_call`` items, and answers with a list of one reply per item. The calls share one
    pipeline (:func:`run_pipelined`)."""
    calls: list[ScriptCall] = [
        (script, [*head, *chain.from_iterable(items[start : start + per_call])])
        for start in range(0, len(items), per_call)
    ]
    return [reply for batch in run_pipelined(client, calls) for reply in batch] if calls else []
