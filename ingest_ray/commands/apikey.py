"""``ingest-ray apikey create|list|revoke``: the admin bootstrap of API keys.

These talk to Redis directly (:class:`ingest_ray.auth.ApiKeyStore`), not to the HTTP API: they are
how the first key of a tenant comes to exist. The plaintext key is shown once, at creation; only
its hash is stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.table import Table

from ingest_ray.auth import ALL_SCOPES, ApiKeyInfo, ApiKeyStore
from ingest_ray.commands.common import console, err_console, settings

apikey_app = typer.Typer(help="API keys of the job API (stored hashed in Redis).")


@contextmanager
def _store() -> Iterator[ApiKeyStore]:
    cfg = settings()
    store = ApiKeyStore(cfg.redis_url, cfg.redis_prefix)
    try:
        yield store
    finally:
        store.close()


def _as_dict(info: ApiKeyInfo) -> dict[str, object]:
    return {
        "key_id": info.key_id,
        "tenant_id": info.tenant_id,
        "name": info.name,
        "scopes": sorted(s.value for s in info.scopes),
        "created_at": info.created_at.isoformat(),
        "revoked": info.revoked,
    }


@apikey_app.command("create")
def create(
    tenant: Annotated[str, typer.Option(help="Tenant the key acts for.")],
    scopes: Annotated[
        list[str] | None,
        typer.Option("--scopes", "--scope", help="Repeat or comma-separate (default: all scopes)."),
    ] = None,
    name: Annotated[str, typer.Option(help="A label to recognise the key by.")] = "",
) -> None:
    """Create a key and print it once (stdout); it cannot be shown again."""
    wanted = " ".join(scopes) if scopes else " ".join(sorted(s.value for s in ALL_SCOPES))
    with _store() as store:
        try:
            key_id, plaintext = store.create(tenant, wanted, name or f"{tenant} key")
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
    granted = ", ".join(sorted(wanted.replace(",", " ").split()))
    err_console.print(f"key id [bold]{key_id}[/] for tenant {tenant}, scopes {granted}")
    err_console.print("[yellow]the key is shown once: store it now[/]")
    console.print(plaintext, soft_wrap=True, highlight=False)


@apikey_app.command("list")
def list_keys(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List keys: ids, tenants, scopes, never the keys themselves."""
    with _store() as store:
        infos = store.list(tenant)
    if as_json:
        console.print_json(json.dumps([_as_dict(info) for info in infos]))
        return
    table = Table("key_id", "tenant", "name", "scopes", "created_at", "revoked")
    for info in infos:
        table.add_row(
            info.key_id, info.tenant_id, info.name, ", ".join(sorted(info.scopes)),
            info.created_at.isoformat(timespec="seconds"), "[red]yes" if info.revoked else "no",
        )  # fmt: skip
    console.print(table)


@apikey_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key id (not the key).")]) -> None:
    """Revoke a key: requests with it are refused from now on."""
    with _store() as store:
        found = store.revoke(key_id)
    if not found:
        err_console.print(f"[red]no key {key_id}[/]")
        raise typer.Exit(1)
    console.print(f"revoked {key_id}")
