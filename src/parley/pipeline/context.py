"""The services a turn uses, kept beside the turn: the engine its model resolves to, the guards, the caller's
key, and a way to end generation early."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from parley.engines.base import AdapterRef, Engine

if TYPE_CHECKING:
    from parley.guards.service import Guards
    from parley.params.tuner import Tuner
    from parley.profiles import Profiles
    from parley.store.keys import ApiKey


async def _nothing_to_stop() -> None:
    return None


# A model name → the engine that serves it, and the adapter it names (None: the base model).
ResolveModel = Callable[[str | None], tuple[Engine, AdapterRef | None]]


@dataclass
class TurnContext:
    resolve: ResolveModel
    key: ApiKey | None = None  # None: open mode (no keys exist yet)
    guards: Guards | None = None
    engine: Engine | None = None  # resolved by the input stage
    profiles: Profiles | None = None
    profile_policy: str = ""  # the chosen profile's guard-policy overrides
    tuner: Tuner | None = None  # parameters learnt from ratings, for adaptive profiles
    stop_generation: Callable[[], Awaitable[None]] = _nothing_to_stop  # set once generation starts

    @property
    def key_policy(self) -> str | None:
        """The guard-policy overrides for this turn: the profile's, then the caller's key's (which win)."""
        parts = [self.profile_policy, self.key.policy if self.key is not None else ""]
        return ",".join(p for p in parts if p) or None

    @property
    def engine_required(self) -> Engine:
        assert self.engine is not None, "the input stage resolves the engine"
        return self.engine
