"""The step seams, how a stage runs its list of steps, and the clocks that time streaming stages.

A stage is an ordered list of small steps. A `TurnStep` runs once over the turn before generation (normalise,
guard the input, render the template…); a `FilterStep` builds an incremental text filter that post-processing
runs over the answer's stream (cut a loop, close a fence, guard the output…). Each step decides whether it
applies to a turn, writes its own trace entry with `turn.note(step.name, ...)`, and is timed by the runner.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any, Protocol, TypeVar

from parley.pipeline.context import TurnContext
from parley.pipeline.turn import Delta, Turn


class TurnStep(Protocol):
    name: str
    default: bool  # in the pipeline unless settings or a profile leave it out

    def applies(self, turn: Turn, ctx: TurnContext) -> bool: ...

    def run(self, turn: Turn, ctx: TurnContext) -> None: ...


class TextFilter(Protocol):
    """An incremental filter over answer text: holds back only what it may still have to change."""

    name: str
    stop: bool  # the filter wants generation to end

    def feed(self, text: str, tokens_left: int) -> str: ...

    def finish(self, reason: str) -> str: ...

    def report(self) -> dict[str, Any]: ...


class FilterStep(Protocol):
    name: str
    default: bool

    def applies(self, turn: Turn, ctx: TurnContext) -> bool: ...

    def build(self, turn: Turn, ctx: TurnContext) -> TextFilter: ...


class BaseStep:
    """Defaults for a step: in the pipeline by default, applies to every turn. Steps override what differs."""

    name: str
    default = True

    def applies(self, turn: Turn, ctx: TurnContext) -> bool:
        return True


S = TypeVar("S", TurnStep, FilterStep)


def select(names: list[str] | None, catalogue: Mapping[str, S], stage: str) -> list[S]:
    """The steps named, in that order; `None`: every default step of the catalogue, in catalogue order."""
    if names is None:
        return [step for step in catalogue.values() if step.default]
    unknown = [n for n in names if n not in catalogue]
    if unknown:
        raise ValueError(f"unknown {stage} step(s) {', '.join(unknown)}; there are: {', '.join(catalogue)}")
    return [catalogue[n] for n in names]


def run_steps(stage: str, steps: list[TurnStep], turn: Turn, ctx: TurnContext) -> None:
    """Run the steps that apply, in order, timing each as a step of `stage`."""
    for step in steps:
        if not step.applies(turn, ctx):
            continue
        start = time.perf_counter()
        try:
            step.run(turn, ctx)
        finally:
            end = time.perf_counter()
            turn.step_ran(stage, step.name, end - start, (start, end))


def run_stage(stage: str, steps: list[TurnStep], turn: Turn, ctx: TurnContext) -> None:
    """`run_steps`, then the stage's trace entry, closed even when a step raises."""
    start = time.perf_counter()
    try:
        run_steps(stage, steps, turn, ctx)
    finally:
        end = time.perf_counter()
        turn.record(stage, end - start, (start, end))


class StageClock:
    """Time spent inside one stream's `__anext__`, i.e. the stage plus everything upstream of it, and the
    window from the first call's start to the last call's end."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.inclusive = 0.0
        self.first: float | None = None
        self.last: float | None = None

    def add(self, start: float, end: float) -> None:
        self.inclusive += end - start
        if self.first is None:
            self.first = start
        self.last = end

    async def wrap(self, stream: AsyncIterator[Delta]) -> AsyncGenerator[Delta, None]:
        try:
            while True:
                start = time.perf_counter()
                try:
                    item = await anext(stream)
                except StopAsyncIteration:
                    return
                finally:
                    self.add(start, time.perf_counter())
                yield item
        finally:
            await aclose(stream)


async def aclose(stream: AsyncIterator[Any]) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


def record_streams(turn: Turn, clocks: list[StageClock]) -> None:
    """Stream stages nest, so a stage's own time is its inclusive time less its upstream's."""
    upstream = 0.0
    for clock in clocks:
        window = (clock.first, clock.last) if clock.first is not None and clock.last is not None else None
        turn.record(clock.name, max(clock.inclusive - upstream, 0.0), window)
        upstream = clock.inclusive
