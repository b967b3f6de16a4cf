"""`parley keys create | list | revoke`: API keys in the configured database."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer

keys_app = typer.Typer(help="Manage API keys (stored hashed; a key is shown once, at creation).")

DatabaseOpt = Annotated[str | None, typer.Option("--database-url", help="SQLAlchemy URL (default: settings)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def _repo(database_url: str | None):  # type: ignore[no-untyped-def]
    from parley.config import Settings
    from parley.store.db import Database
    from parley.store.keys import KeyRepository

    settings = Settings(**({"database_url": database_url} if database_url else {}))
    return KeyRepository(Database(settings.db_url()))


def _expiry(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter("use an ISO date such as 2027-01-31 or 2027-01-31T12:00:00Z") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="who or what uses the key")],
    scopes: Annotated[str, typer.Option(help="comma-separated: chat, feedback, admin, tools")] = "chat",
    rpm: Annotated[int | None, typer.Option(help="requests per minute", min=1, max=2**31 - 1)] = None,
    tpm: Annotated[int | None, typer.Option(help="tokens per minute", min=1, max=2**31 - 1)] = None,
    expires: Annotated[str | None, typer.Option(help="expiry date, ISO 8601")] = None,
    policy: Annotated[str | None, typer.Option(help="guard policy overrides, e.g. 'pii=flag,injection=block'")] = None,
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a key and print it once."""
    repo = _repo(database_url)
    try:
        record, key = repo.create(name, [s.strip() for s in scopes.split(",") if s.strip()], rpm=rpm, tpm=tpm,
                                  expires_at=_expiry(expires), policy=policy)  # fmt: skip
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        repo.db.close()
    if as_json:
        typer.echo(json.dumps({"key": key, **record.public()}))
        return
    typer.echo(key)
    typer.echo(f"Created key {record.id} ({record.name}; scopes {','.join(sorted(record.scopes))}). "
               "This is the only time it is shown: store it now.", err=True)  # fmt: skip


@keys_app.command("list")
def list_keys(database_url: DatabaseOpt = None, as_json: JsonOpt = False) -> None:
    """List keys (never the keys themselves: id, name, prefix, scopes, limits, status)."""
    repo = _repo(database_url)
    try:
        keys = [k.public() for k in repo.list()]
    finally:
        repo.db.close()
    if as_json:
        typer.echo(json.dumps(keys))
        return
    for k in keys:
        limits = f"rpm={k['rpm'] or '-'} tpm={k['tpm'] or '-'}"
        typer.echo(f"{k['id']}  {k['prefix']}…  {k['status']:8} {','.join(k['scopes']):20} {limits}  {k['name']}")


@keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="the key's id")], database_url: DatabaseOpt = None) -> None:
    """Revoke a key; it stops working at once (within 2 s on a running server)."""
    repo = _repo(database_url)
    try:
        record = repo.revoke(key_id)
    finally:
        repo.db.close()
    if record is None:
        typer.echo(f"error: no key with id {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"Revoked {record.id} ({record.name}).")
