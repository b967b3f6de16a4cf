"""Engines by model name, built by kind from settings. Loading happens off the event loop; until it is done
the server is not ready."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from parley.config import EngineSpec, LlamaCppSpec
from parley.engines.base import Engine
from parley.errors import EngineUnavailable, ModelNotFound

log = logging.getLogger(__name__)


def _load_llamacpp(spec: LlamaCppSpec) -> Engine:
    from parley.engines.llamacpp.engine import load_engine  # heavy import, off the CLI's fast path

    return load_engine(spec)


# How each engine kind is built from its spec. A new kind: its spec in config.py and one line here.
ENGINE_KINDS: dict[str, Callable[[EngineSpec], Engine]] = {
    "llamacpp": _load_llamacpp,
}


class EngineRegistry:
    def __init__(self) -> None:
        self.engines: dict[str, Engine] = {}
        self.loading = True
        self.errors: list[str] = []

    def add(self, engine: Engine) -> None:
        self.engines[engine.info.id] = engine

    async def load(self, specs: list[EngineSpec]) -> None:
        """Build every declared engine; one that fails is reported and the others still serve."""
        try:
            for spec in specs:
                label = spec.name or spec.model or spec.kind
                try:
                    engine = await asyncio.to_thread(ENGINE_KINDS[spec.kind], spec)
                except Exception as exc:  # a bad model path must leave a server that says why, not a crash loop
                    log.exception("engine %s failed to load", label)
                    self.errors.append(f"{label}: {type(exc).__name__}: {exc}")
                    continue
                self.add(engine)
                log.info("model %s ready (%s engine, %s)", engine.info.id, engine.info.kind, engine.info.source)
        finally:
            self.loading = False

    @property
    def ready(self) -> bool:
        return bool(self.engines) and not self.loading

    @property
    def error(self) -> str | None:
        return "; ".join(self.errors) or None

    def find(self, name: str) -> Engine:
        engine = self.engines.get(name)
        if engine is not None:
            return engine
        if self.loading:
            raise EngineUnavailable("The model is still loading.", headers={"Retry-After": "2"})
        if self.error and not self.engines:
            raise EngineUnavailable(f"The model failed to load: {self.error}")
        raise ModelNotFound(f"The model `{name}` does not exist.", param="model")

    def close(self) -> None:
        for engine in self.engines.values():
            engine.close()
        self.engines.clear()
