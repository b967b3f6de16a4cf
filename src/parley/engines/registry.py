"""Engines by model name. Loading happens off the event loop; until it is done the server is not ready."""

from __future__ import annotations

import asyncio
import logging

from parley.config import Settings
from parley.engines.base import Engine
from parley.errors import EngineUnavailable, ModelNotFound

log = logging.getLogger(__name__)


class EngineRegistry:
    def __init__(self) -> None:
        self.engines: dict[str, Engine] = {}
        self.loading = True
        self.error: str | None = None

    def add(self, engine: Engine) -> None:
        self.engines[engine.info.id] = engine
        self.loading = False

    async def load(self, settings: Settings) -> None:
        from parley.engines.llamacpp.engine import load_engine  # heavy import, off the CLI's fast path

        try:
            engine = await asyncio.to_thread(load_engine, settings)
        except Exception as exc:  # a bad model path must leave a server that says why, not a crash loop
            log.exception("model failed to load")
            self.error = f"{type(exc).__name__}: {exc}"
            self.loading = False
            return
        self.add(engine)
        log.info("model %s ready (%s)", engine.info.id, engine.info.path)

    @property
    def ready(self) -> bool:
        return bool(self.engines)

    def find(self, name: str) -> Engine:
        engine = self.engines.get(name)
        if engine is not None:
            return engine
        if self.loading:
            raise EngineUnavailable("The model is still loading.", headers={"Retry-After": "2"})
        if self.error:
            raise EngineUnavailable(f"The model failed to load: {self.error}")
        raise ModelNotFound(f"The model `{name}` does not exist.", param="model")

    def close(self) -> None:
        for engine in self.engines.values():
            engine.close()
        self.engines.clear()
