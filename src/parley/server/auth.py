"""Access control: bearer API keys with scopes, per-key rate limits, and the open mode for a fresh install.

Open mode: while no key exists at all, requests need no key (the server says so loudly at start and refuses
a non-loopback address unless `--insecure`); even then the `admin` scope is served to loopback clients only.
Once a key exists, every route but the public ones needs one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time

from fastapi import Request
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parley.asgi import on_response_start
from parley.errors import AuthenticationFailed, PermissionDenied, RateLimited, ServiceUnavailable
from parley.pipeline.context import TurnContext
from parley.pipeline.turn import Turn
from parley.server.ratelimit import Buckets, Decision, duration
from parley.store.keys import ApiKey, KeyRepository, hash_key

log = logging.getLogger(__name__)

PUBLIC_PATHS = {"/health", "/ready", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
CACHE_SECONDS = 2.0  # a revoked key stops working on other replicas within this


def is_loopback(host: str | None) -> bool:
    if host in ("localhost", "testclient"):
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


class AccessControl:
    def __init__(self, keys: KeyRepository, buckets: Buckets) -> None:
        self.keys = keys
        self.buckets = buckets
        self._cache: dict[str, tuple[ApiKey | None, float]] = {}
        self._any_key: tuple[bool, float] = (False, 0.0)
        self.store_errors = 0  # lookups answered from the cache because the database was unreachable
        self.rejections = {"requests": 0, "tokens": 0}  # 429s by the limit that was reached

    async def open_mode(self) -> bool:
        has_keys, at = self._any_key
        if has_keys:
            return False  # keys are never deleted, only revoked: once keyed, always keyed
        if time.monotonic() - at > CACHE_SECONDS:
            try:
                has_keys = await asyncio.to_thread(self.keys.count) > 0
            except SQLAlchemyError as exc:
                if at == 0.0:  # never known: fail closed
                    raise _store_away(exc) from exc
                return not has_keys  # the database is away: what was true a moment ago still holds
            self._any_key = (has_keys, time.monotonic())
        return not has_keys

    def forget(self) -> None:
        """Drop cached verdicts (after this process created or revoked a key)."""
        self._cache.clear()
        self._any_key = (False, 0.0)

    async def _lookup(self, token: str) -> ApiKey | None:
        digest = hash_key(token)
        cached = self._cache.get(digest)
        if cached and time.monotonic() - cached[1] < CACHE_SECONDS:
            return cached[0]
        try:
            key = await asyncio.to_thread(self.keys.find, token)
        except SQLAlchemyError as exc:
            if cached is None:
                raise _store_away(exc) from exc
            self.store_errors += 1  # the database is away: serve the verdict last seen (revocations wait)
            return cached[0]
        self._cache[digest] = (key, time.monotonic())
        return key

    async def authenticate(self, request: Request, scope: str) -> ApiKey | None:
        if await self.open_mode():
            if scope == "admin" and not is_loopback(request.client.host if request.client else None):
                raise PermissionDenied("Admin endpoints are served to loopback clients only until a key exists.")
            return None
        header = request.headers.get("authorization", "")
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise AuthenticationFailed(
                "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.", code="missing_api_key"
            )
        key = await self._lookup(token.strip())
        if key is None:
            raise AuthenticationFailed("Incorrect API key provided.")
        if key.status != "active":
            raise AuthenticationFailed(f"This API key is {key.status}.", code=f"{key.status}_api_key")
        if scope not in key.scopes:
            raise PermissionDenied(f"This API key lacks the '{scope}' scope.")
        return key

    async def admit(self, request: Request, key: ApiKey) -> None:
        """Charge one request and check the token allowance; 429 when either is exhausted."""
        headers: dict[str, str] = {}
        if key.rpm:
            d = await self.buckets.take(f"{key.id}:req", key.rpm, cost=1, need=1)
            headers |= _headers("requests", d)
            if not d.allowed:
                self.rejections["requests"] += 1
                raise _limited("requests", key, d, headers)
        if key.tpm:
            d = await self.buckets.take(f"{key.id}:tok", key.tpm, cost=0, need=1)
            headers |= _headers("tokens", d)
            if not d.allowed:
                self.rejections["tokens"] += 1
                raise _limited("tokens", key, d, headers)
        request.state.ratelimit_headers = headers

    async def charge_tokens(self, key: ApiKey | None, tokens: int) -> None:
        if key is not None and key.tpm and tokens > 0:
            await self.buckets.take(f"{key.id}:tok", key.tpm, cost=tokens, need=0)

    async def charge_turn(self, turn: Turn, ctx: TurnContext) -> None:
        """Turn-end observer: the tokens a turn used count against its key's tokens per minute."""
        await self.charge_tokens(ctx.key, turn.usage.total)


def _store_away(exc: Exception) -> ServiceUnavailable:
    log.warning("key store unreachable: %s", exc)
    return ServiceUnavailable("The key store is unreachable; retry shortly.", code="store_unavailable",
                              headers={"Retry-After": "2"})  # fmt: skip


def _headers(kind: str, d: Decision) -> dict[str, str]:
    return {
        f"x-ratelimit-limit-{kind}": str(d.limit),
        f"x-ratelimit-remaining-{kind}": str(max(math.floor(d.remaining), 0)),
        f"x-ratelimit-reset-{kind}": duration(d.reset_s),
    }


def _limited(kind: str, key: ApiKey, d: Decision, headers: dict[str, str]) -> RateLimited:
    err = RateLimited(
        f"Rate limit reached for key {key.prefix}… on {kind} per min: limit {d.limit}. "
        f"Please try again in {duration(d.retry_after_s)}.",
        headers={**headers, "retry-after": str(max(math.ceil(d.retry_after_s), 1))},
    )
    err.type = kind
    return err


class Access:
    """Route dependency: `dependencies=[Depends(Access("chat"))]`. The route-walk test looks for it."""

    def __init__(self, scope: str) -> None:
        self.scope = scope

    async def __call__(self, request: Request) -> ApiKey | None:
        gate: AccessControl = request.app.state.access
        key = await gate.authenticate(request, self.scope)
        if key is not None:
            await gate.admit(request, key)
        request.state.api_key = key
        return key


class RateLimitHeaders:
    """Adds the `x-ratelimit-*` headers the `Access` dependency computed to the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        def add_headers(message: Message) -> None:
            extra = (scope.get("state") or {}).get("ratelimit_headers") or {}
            existing = {k.lower() for k, _ in message["headers"]}
            message["headers"] += [(k.encode(), v.encode()) for k, v in extra.items() if k.encode() not in existing]

        await self.app(scope, receive, on_response_start(send, add_headers))
