"""The Stage seams and the runner that drives a turn through them, timing each stage for the trace."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Protocol

from parley.pipeline.turn import Delta, Turn
from parley.protocol.openai import TraceEntry


class TurnStage(Protocol):
    """A stage that runs once over the whole turn before generation (input, preprocess)."""

    name: str

    def run(self, turn: Turn) -> None: ...


class StreamStage(Protocol):
    """A stage over the answer's stream (output, postprocess): reads deltas, passes deltas on."""

    name: str

    def process(self, turn: Turn, upstream: AsyncIterator[Delta]) -> AsyncIterator[Delta]: ...


class StageClock:
    """Time spent inside one stream's `__anext__`, i.e. the stage plus everything upstream of it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.inclusive = 0.0

    async def wrap(self, stream: AsyncIterator[Delta]) -> AsyncGenerator[Delta, None]:
        try:
            while True:
                start = time.perf_counter()
                try:
                    item = await anext(stream)
                except StopAsyncIteration:
                    return
                finally:
                    self.inclusive += time.perf_counter() - start
                yield item
        finally:
            await _aclose(stream)


async def _aclose(stream: AsyncIterator[Delta]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


def run_timed(stage: TurnStage, turn: Turn) -> None:
    start = time.perf_counter()
    try:
        stage.run(turn)
    finally:
        record(turn, stage.name, time.perf_counter() - start)


def record(turn: Turn, stage: str, seconds: float) -> None:
    turn.trace.append(
        TraceEntry(stage=stage, duration_ms=round(seconds * 1000, 3), detail=turn.notes.get(stage, {}))
    )


def record_streams(turn: Turn, clocks: list[StageClock]) -> None:
    """Stream stages nest, so a stage's own time is its inclusive time less its upstream's."""
    upstream = 0.0
    for clock in clocks:
        record(turn, clock.name, max(clock.inclusive - upstream, 0.0))
        upstream = clock.inclusive
