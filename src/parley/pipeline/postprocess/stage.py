"""The post-processing stage: runs its steps' filters incrementally over the stream, each timed as a step.

A filter that wants the answer to end (a loop, a leaked turn marker, a guard's block) stops generation: the
engine is told to stop (not cancelled: the answer is complete), and the stage closes its upstream. Its
`stop_reason` is passed to the later filters' `finish` ("loop", "content_filter", "stop"); the client sees
`content_filter` or `stop`. Reasoning text and tool-call fragments pass through untouched.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping

from parley.engines.base import TokenLogprob
from parley.pipeline.context import TurnContext
from parley.pipeline.stage import FilterStep, TextFilter, aclose, select
from parley.pipeline.turn import Delta, Turn


class TimedFilters:
    """The turn's filters in order, with the time each spends."""

    def __init__(self, filters: list[TextFilter]) -> None:
        self.filters = filters
        self.seconds = [0.0] * len(filters)

    def feed(self, text: str, tokens_left: int) -> str:
        for i, f in enumerate(self.filters):
            start = time.perf_counter()
            text = f.feed(text, tokens_left) if text else ""
            self.seconds[i] += time.perf_counter() - start
        return text

    def stopped_by(self) -> TextFilter | None:
        return next((f for f in self.filters if f.stop), None)

    def finish(self, reason: str, tokens_left: int) -> str:
        tail = ""
        for i, f in enumerate(self.filters):
            start = time.perf_counter()
            tail = (f.feed(tail, tokens_left) if tail else "") + f.finish(reason)
            self.seconds[i] += time.perf_counter() - start
        return tail


class PostprocessStage:
    name = "postprocess"

    def __init__(self, steps: list[FilterStep], catalogue: Mapping[str, FilterStep] | None = None) -> None:
        self.steps = steps
        self.catalogue = catalogue or {s.name: s for s in steps}

    def steps_for(self, turn: Turn) -> list[FilterStep]:
        """The server's steps, or the profile's list; a profile's answer is formatted (step `format`, at the
        end unless the list places it) whichever list applies. A refusal decided before the model is the
        server's own text: nothing to clean or guard."""
        if turn.guard.refusal is not None:
            return []
        if turn.profile is None:
            return self.steps
        names = turn.profile.steps if turn.profile.steps is not None else [s.name for s in self.steps]
        if "format" in self.catalogue and "format" not in names:
            names = [*names, "format"]
        return select(names, self.catalogue, self.name)

    async def process(self, turn: Turn, ctx: TurnContext, upstream: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
        applied = [s for s in self.steps_for(turn) if s.applies(turn, ctx)]
        filters = TimedFilters([s.build(turn, ctx) for s in applied])
        budget = turn.params.max_tokens if turn.params else 0
        used, reason, stopper = 0, None, None
        logprobs: list[TokenLogprob] = []  # the tokens' logprobs travel with the next piece of text that leaves
        try:
            async for delta in upstream:
                used += delta.n_tokens
                logprobs.extend(delta.logprobs)
                text = filters.feed(delta.text, budget - used)
                stopper = filters.stopped_by()
                if text or delta.reasoning or delta.tool_calls:
                    yield Delta(text, reasoning=delta.reasoning, tool_calls=delta.tool_calls, logprobs=logprobs)
                    logprobs = []
                if delta.finish_reason or stopper:
                    reason = delta.finish_reason
                    break
            if stopper is not None and reason is None:
                await ctx.stop_generation()
        finally:
            await aclose(upstream)
        flush = getattr(stopper, "stop_reason", "stop") if stopper else (reason or "stop")
        if stopper is not None:
            reason = "content_filter" if flush == "content_filter" else "stop"
        tail = filters.finish(flush, budget - used)
        if stopper is None and (late := filters.stopped_by()) is not None:  # a guard that decided at the end
            stopper, reason = late, "content_filter" if getattr(late, "stop_reason", "") == "content_filter" else reason
        turn.finish_reason = reason or "stop"
        for step, f, seconds in zip(applied, filters.filters, filters.seconds, strict=True):
            turn.note(step.name, **f.report())
            turn.step_ran(self.name, step.name, seconds)
        turn.note(self.name, stopped_by=stopper.name if stopper else None)
        yield Delta(tail, finish_reason=turn.finish_reason, logprobs=logprobs)
