"""Keeps the served adapters equal to the registry's: every replica polls the registry (a count and the newest
change, one cheap query) and loads or unloads what changed. A newly trained adapter is served without restart."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from parley.engines.registry import EngineRegistry
from parley.store.adapters import AdapterRepository

log = logging.getLogger(__name__)


class AdapterSync:
    def __init__(self, repo: AdapterRepository, registry: EngineRegistry, interval: float) -> None:
        self.repo, self.registry, self.interval = repo, registry, interval
        self._seen: tuple[int, datetime | None] | None = None
        self.errors = 0

    async def sync_once(self) -> bool:
        """Load and unload what changed since the last look; True if anything was looked at."""
        version = await asyncio.to_thread(self.repo.version)
        if version == self._seen and not self.registry.adapter_errors:
            return False
        await self.registry.sync_adapters(await asyncio.to_thread(self.repo.list))
        self._seen = version
        return True

    async def run(self) -> None:
        while self.registry.loading:
            await asyncio.sleep(0.2)
        while True:
            try:
                await self.sync_once()
            except SQLAlchemyError as exc:  # the database is away: keep serving what is loaded, look again
                self.errors += 1
                log.warning("adapter registry unreachable: %s", exc)
            await asyncio.sleep(self.interval)
