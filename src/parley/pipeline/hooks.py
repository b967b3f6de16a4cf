"""The turn-end hook: the one place where observers run when a turn ends, whole or streamed, finished, failed
or cancelled, exactly once per turn that entered the pipeline.

An observer is `async def observer(turn, ctx) -> None`; `turn.outcome`, `turn.error`, `turn.usage` and
`turn.timing` are final when it runs. Observers run in order on the request's task: keep them quick (queue any
I/O for a worker). One that raises is logged and counted, and never changes the answer or stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from parley.pipeline.context import TurnContext
from parley.pipeline.turn import Turn

log = logging.getLogger(__name__)

TurnObserver = Callable[[Turn, TurnContext], Awaitable[None]]


class TurnEndHook:
    def __init__(self) -> None:
        self.observers: list[TurnObserver] = []
        self.failures = 0  # observers that raised

    def add(self, observer: TurnObserver) -> None:
        self.observers.append(observer)

    async def fire(self, turn: Turn, ctx: TurnContext) -> None:
        for observer in self.observers:
            try:
                await observer(turn, ctx)
            except Exception:
                self.failures += 1
                log.exception("turn-end observer %s failed for %s", getattr(observer, "__name__", observer), turn.id)
