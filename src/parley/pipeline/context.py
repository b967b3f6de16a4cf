"""The services a turn uses, kept beside the turn: the engine its model resolves to, the guards, the caller's
key, and a way to end generation early."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from parley.engines.base import AdapterRef, Engine

if TYPE_CHECKING:
    from parley.guards.service import Guards
    from parley.store.keys import ApiKey


async def _nothing_to_stop() -> None:
    return None


# A model name → the engine that serves it, and the adapter it names (None: the base model).
ResolveModel = Callable[[str], tuple[Engine, AdapterRef | None]]


@dataclass
class TurnContext:
    resolve: ResolveModel
    key: ApiKey | None = None  # None: open mode (no keys exist yet)
    guards: Guards | None = None
    engine: Engine | None = None  # resolved by the input stage
    stop_generation: Callable[[], Awaitable[None]] = _nothing_to_stop  # set once generation starts

    @property
    def key_policy(self) -> str | None:
        """The caller's guard-policy overrides."""
        return self.key.policy if self.key is not None else None

    @property
    def engine_required(self) -> Engine:
        assert self.engine is not None, "the input stage resolves the engine"
        return self.engine
