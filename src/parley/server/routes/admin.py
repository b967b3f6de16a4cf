"""Admin endpoints: API keys, the completion log, the adapter registry. Every route needs the `admin` scope."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from parley.completion_log import logged
from parley.errors import InvalidRequest, NotFound
from parley.protocol.openai import Body
from parley.server.auth import Access, AccessControl
from parley.store.keys import KeyRepository

router = APIRouter(prefix="/admin", tags=["Admin"], dependencies=[Depends(Access("admin"))])


class KeyCreate(Body):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[Literal["chat", "feedback", "admin", "tools"]] = Field(min_length=1)
    rpm: int | None = Field(None, ge=1, le=2**31 - 1, description="requests per minute")  # the column's range
    tpm: int | None = Field(None, ge=1, le=2**31 - 1, description="tokens per minute")
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


# ---- the completion log -----------------------------------------------------------------------------


@router.get("/completions")
async def list_completions(
    request: Request,
    key_id: str | None = None,
    model: str | None = None,
    adapter: str | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Logged turns, newest first: what the model saw and answered (as redacted), parameters, decisions."""
    rows = await asyncio.to_thread(request.app.state.completions.list, key_id=key_id, model=model, adapter=adapter,
                                   since=since, limit=limit + 1, offset=offset)  # fmt: skip
    return {"object": "list", "data": rows[:limit], "has_more": len(rows) > limit}


@router.get("/completions/{completion_id}")
async def get_completion(completion_id: str, request: Request) -> dict[str, Any]:
    row = await logged(request.app.state.completions, request.app.state.completion_log, completion_id)
    if row is None:
        raise NotFound(f"No logged completion with id {completion_id!r}.", param="completion_id")
    return row


# ---- adapters -----------------------------------------------------------------------------------------


class AdapterCreate(Body):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    base_model: str = Field(min_length=1, max_length=200)
    gguf_path: str = Field(min_length=1, max_length=1000, description="a llama.cpp GGUF LoRA file on the server")
    peft_path: str | None = Field(None, max_length=1000)
    scale: float = Field(1.0, gt=0, le=4)


@router.get("/adapters")
async def list_adapters(request: Request) -> dict[str, Any]:
    """Every registered adapter, and whether this replica serves it (or why not)."""
    registry = request.app.state.registry
    records = await asyncio.to_thread(request.app.state.adapters.list)
    data = [{**a.public(), "served": a.name in registry.adapters, "error": registry.adapter_errors.get(a.name)}
            for a in records]  # fmt: skip
    return {"object": "list", "data": data}


@router.post("/adapters", status_code=201)
async def register_adapter(body: AdapterCreate, request: Request) -> dict[str, Any]:
    """Register (or replace) an adapter; every replica loads it within `adapter_poll_seconds`. This replica
    before answering."""
    if body.base_model not in request.app.state.registry.engines:
        raise NotFound(f"The model `{body.base_model}` is not served here.", param="base_model")
    record = await asyncio.to_thread(
        request.app.state.adapters.register, body.name, body.base_model, body.gguf_path, peft_path=body.peft_path,
        scale=body.scale,
    )  # fmt: skip
    return await _synced(request, record.name)


@router.delete("/adapters/{name}")
async def unload_adapter(name: str, request: Request) -> dict[str, Any]:
    """Stop serving an adapter (on every replica; its files and record stay: POST /enable serves it again)."""
    return await _set_enabled(request, name, False)


@router.post("/adapters/{name}/enable")
async def enable_adapter(name: str, request: Request) -> dict[str, Any]:
    return await _set_enabled(request, name, True)


async def _set_enabled(request: Request, name: str, enabled: bool) -> dict[str, Any]:
    if await asyncio.to_thread(request.app.state.adapters.set_enabled, name, enabled) is None:
        raise NotFound(f"No adapter named {name!r}.", param="name")
    return await _synced(request, name)


async def _synced(request: Request, name: str) -> dict[str, Any]:
    await request.app.state.adapter_sync.sync_once()
    await request.app.state.adapter_sync.announce(name)  # the other replicas sync now, not at their next look
    registry = request.app.state.registry
    record = await asyncio.to_thread(request.app.state.adapters.get, name)
    assert record is not None
    error = registry.adapter_errors.get(name)
    if record.enabled and error:
        raise InvalidRequest(f"The adapter `{name}` is registered but does not load: {error}", param="gguf_path")
    return {**record.public(), "served": name in registry.adapters, "error": error}
