"""Keeps the served adapters equal to the registry's. Every replica looks at the registry (a count and the
newest change, one cheap query) every `adapter_poll_seconds` and loads or unloads what changed. With Redis
(`redis_url`), a change made anywhere (the admin API on any replica, `parley tune`) is also announced on a
channel, and every replica syncs at once instead of at its next look. A newly trained adapter is served
without restart."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from parley.engines.registry import EngineRegistry
from parley.store.adapters import AdapterRepository

log = logging.getLogger(__name__)

CHANNEL = "parley:adapters"


def announce(redis_url: str | None, name: str) -> None:
    """Tell every replica that adapter `name` changed (from a process without an event loop: the CLI).
    Without Redis, replicas see the change at their next look."""
    if not redis_url:
        return
    import redis

    try:
        with redis.Redis.from_url(redis_url, socket_timeout=2) as client:
            client.publish(CHANNEL, name)
    except redis.RedisError as exc:
        log.warning("adapter change not announced (replicas see it at their next look): %s", exc)


class AdapterSync:
    def __init__(self, repo: AdapterRepository, registry: EngineRegistry, interval: float,
                 redis_url: str | None = None) -> None:  # fmt: skip
        self.repo, self.registry, self.interval = repo, registry, interval
        self.redis_url = redis_url
        self._seen: tuple[int, datetime | None] | None = None
        self._lock = asyncio.Lock()
        self.errors = 0
        self.notices = 0  # changes announced by Redis that this replica acted on

    async def sync_once(self) -> bool:
        """Load and unload what changed since the last look; True if anything was looked at."""
        async with self._lock:
            version = await asyncio.to_thread(self.repo.version)
            if version == self._seen and not self.registry.adapter_errors:
                return False
            await self.registry.sync_adapters(await asyncio.to_thread(self.repo.list))
            self._seen = version
            return True

    async def announce(self, name: str) -> None:
        if self.redis_url:
            await asyncio.to_thread(announce, self.redis_url, name)

    async def run(self) -> None:
        while self.registry.loading:
            await asyncio.sleep(0.2)
        listener = asyncio.create_task(self._listen()) if self.redis_url else None
        try:
            while True:
                await self._sync_logged()
                await asyncio.sleep(self.interval)
        finally:
            if listener is not None:
                listener.cancel()

    async def _sync_logged(self) -> None:
        try:
            await self.sync_once()
        except SQLAlchemyError as exc:  # the database is away: keep serving what is loaded, look again
            self.errors += 1
            log.warning("adapter registry unreachable: %s", exc)

    async def _listen(self) -> None:
        """Sync whenever a change is announced; reconnect (after a pause) when Redis goes away."""
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        while True:
            client: Any = aioredis.from_url(self.redis_url)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self.notices += 1
                            await self._sync_logged()
            except (RedisError, OSError) as exc:
                log.warning("adapter change notices unavailable (polling goes on): %s", exc)
            finally:
                await client.aclose()
            await asyncio.sleep(self.interval)
