"""Engines by model name, built by kind from settings, and the LoRA adapters they serve by name. Loading
happens off the event loop; until it is done the server is not ready."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from parley.config import EngineSpec, LlamaCppSpec, UpstreamSpec
from parley.engines.base import AdapterHost, AdapterRef, Engine
from parley.errors import EngineUnavailable, ModelNotFound

if TYPE_CHECKING:
    from parley.store.adapters import Adapter

log = logging.getLogger(__name__)


def _load_llamacpp(spec: LlamaCppSpec) -> Engine:
    from parley.engines.llamacpp.engine import load_engine  # heavy import, off the CLI's fast path

    return load_engine(spec)


def _load_upstream(spec: UpstreamSpec) -> Engine:
    from parley.engines.upstream.engine import load_engine

    return load_engine(spec)


# How each engine kind is built from its spec. A new kind: its spec in config.py and one line here.
ENGINE_KINDS: dict[str, Callable[[Any], Engine]] = {
    "llamacpp": _load_llamacpp,
    "upstream": _load_upstream,
}


@dataclass(frozen=True)
class ServedAdapter:
    ref: AdapterRef
    base: str  # the id of the engine's model it applies to
    created: datetime


class EngineRegistry:
    def __init__(self) -> None:
        self.engines: dict[str, Engine] = {}
        self.adapters: dict[str, ServedAdapter] = {}
        self.adapter_errors: dict[str, str] = {}
        self.loading = True
        self.errors: list[str] = []

    def add(self, engine: Engine) -> None:
        self.engines[engine.info.id] = engine

    async def load(self, specs: list[EngineSpec]) -> None:
        """Build every declared engine; one that fails is reported and the others still serve."""
        try:
            for spec in specs:
                label = spec.name or str(spec.model or spec.kind)
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

    def resolve(self, name: str | None) -> tuple[Engine, AdapterRef | None]:
        """The engine that serves model `name`, and the adapter `name` is, if it is one; `None`: the default
        model (the first one configured), for a profile that names none."""
        if name is None:
            return self.find(next(iter(self.engines), "")), None
        served = self.adapters.get(name)
        if served is not None and served.base in self.engines:
            return self.engines[served.base], served.ref
        return self.find(name), None

    def find(self, name: str) -> Engine:
        engine = self.engines.get(name)
        if engine is not None:
            return engine
        if self.loading:
            raise EngineUnavailable("The model is still loading.", headers={"Retry-After": "2"})
        if self.error and not self.engines:
            raise EngineUnavailable(f"The model failed to load: {self.error}")
        raise ModelNotFound(f"The model `{name}` does not exist.", param="model")

    async def sync_adapters(self, wanted: Iterable[Adapter]) -> None:
        """Serve exactly the enabled adapters of the registry: load new or retrained ones, unload the rest.
        A file that does not load is reported (`adapter_errors`) and retried at the next change."""
        records = {a.name: a for a in wanted if a.enabled}
        for name, served in list(self.adapters.items()):
            record = records.get(name)
            if record is None or _ref(record) != served.ref:
                del self.adapters[name]  # no new request may name it from here on
                await cast(AdapterHost, self.engines[served.base]).unload_adapter(served.ref)
                log.info("adapter %s unloaded", name)
        for name, record in records.items():
            if name in self.adapters:
                continue
            engine = self.engines.get(record.base_model)
            if name in self.engines:
                self.adapter_errors[name] = "an adapter cannot take the name of a served model"
            elif engine is None or not engine.info.capabilities.adapters:
                self.adapter_errors[name] = f"no served model {record.base_model!r} takes adapters here"
            else:
                peft = engine.info.capabilities.adapter_format == "peft"
                path = (record.peft_path or "") if peft else record.gguf_path
                try:
                    if not path:
                        raise ValueError(f"{engine.info.id} loads PEFT adapters; {name} has no PEFT directory")
                    await cast(AdapterHost, engine).load_adapter(_ref(record), path)
                except ValueError as exc:
                    self.adapter_errors[name] = str(exc)
                    log.error("adapter %s did not load: %s", name, exc)
                    continue
                self.adapters[name] = ServedAdapter(_ref(record), engine.info.id, record.created_at)
                self.adapter_errors.pop(name, None)
                log.info("adapter %s served on %s", name, engine.info.id)

    def close(self) -> None:
        for engine in self.engines.values():
            engine.close()
        self.engines.clear()


def _ref(record: Adapter) -> AdapterRef:
    return AdapterRef(record.name, record.scale, record.updated_at.isoformat())
