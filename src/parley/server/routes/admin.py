"""Admin endpoints: API keys. Every route needs the `admin` scope."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from parley.errors import InvalidRequest, NotFound
from parley.protocol.openai import Body
from parley.server.auth import Access, AccessControl
from parley.store.keys import KeyRepository

router = APIRouter(prefix="/admin", tags=["Admin"], dependencies=[Depends(Access("admin"))])


class KeyCreate(Body):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[Literal["chat", "feedback", "admin"]] = Field(min_length=1)
    rpm: int | None = Field(None, ge=1, description="requests per minute")
    tpm: int | None = Field(None, ge=1, description="tokens per minute")
    expires_at: datetime | None = None
    policy: str | None = Field(None, max_length=500, description="guard policy overrides, e.g. 'pii=flag'")


def _gate(request: Request) -> AccessControl:
    return request.app.state.access


def _repo(request: Request) -> KeyRepository:
    return request.app.state.access.keys


@router.post("/keys", status_code=201)
async def create_key(body: KeyCreate, request: Request) -> JSONResponse:
    """Create a key. The key itself is in this response only; the server keeps its hash."""
    if body.expires_at is not None and body.expires_at.tzinfo is None:
        raise InvalidRequest("expires_at needs a timezone (e.g. 2027-01-01T00:00:00Z).", param="expires_at")
    try:
        record, key = await asyncio.to_thread(
            _repo(request).create, body.name, list(body.scopes), rpm=body.rpm, tpm=body.tpm,
            expires_at=body.expires_at, policy=body.policy,
        )  # fmt: skip
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="policy") from exc
    _gate(request).forget()
    return JSONResponse({"key": key, **record.public()}, status_code=201)


@router.get("/keys")
async def list_keys(request: Request) -> dict[str, Any]:
    keys = await asyncio.to_thread(_repo(request).list)
    return {"object": "list", "data": [k.public() for k in keys]}


@router.get("/keys/{key_id}")
async def get_key(key_id: str, request: Request) -> dict[str, object]:
    key = await asyncio.to_thread(_repo(request).get, key_id)
    if key is None:
        raise NotFound(f"No API key with id {key_id!r}.", param="key_id")
    return key.public()


@router.delete("/keys/{key_id}")
async def revoke_key(key_id: str, request: Request) -> dict[str, object]:
    """Revoke a key (kept for the record; it stops working at once here, within 2 s on other replicas)."""
    key = await asyncio.to_thread(_repo(request).revoke, key_id)
    if key is None:
        raise NotFound(f"No API key with id {key_id!r}.", param="key_id")
    _gate(request).forget()
    return key.public()
