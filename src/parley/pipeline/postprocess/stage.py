"""Stage 5, post-processing: the clean-up filters, run incrementally over the stream.

A filter that wants the answer to end (a loop, a leaked turn marker) stops generation: the stage closes its
upstream, which cancels the request in the engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from parley.guards.output_guard import OutputGuard
from parley.pipeline.cleanup import (
    FenceCloser,
    LeakedTokenStripper,
    RepetitionCutter,
    TextFilter,
    TruncationTrimmer,
)
from parley.pipeline.turn import Delta, Turn


def filters_for(turn: Turn) -> list[TextFilter]:
    """JSON answers are shaped by the grammar, so only leaked tokens are stripped; raw completions are
    continuations, so they are not trimmed to sentences or given closing fences."""
    strip = LeakedTokenStripper(turn.engine_required.special_token_texts())
    guard: list[TextFilter] = []
    if turn.guards is not None:  # security filters apply in every mode; JSON is data, not markdown for a page
        guard = list(turn.guards.output_filters(turn.key_policy, turn.canary, turn.system_prompt,
                                                markdown=turn.grammar is None))  # fmt: skip
    if turn.grammar is not None:
        return [strip, *guard]
    if turn.request.ignore_eos:  # benchmarks ask for exactly max_tokens: only security may end the answer
        strip.ends = set()
        return [strip, *guard]
    if turn.kind == "completion":
        return [strip, *guard, RepetitionCutter()]
    return [strip, *guard, RepetitionCutter(), TruncationTrimmer(), FenceCloser()]


class PostprocessStage:
    name = "postprocess"

    async def process(self, turn: Turn, upstream: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
        filters = filters_for(turn)
        budget = turn.params.max_tokens if turn.params else 0
        used, reason, stopped_by = 0, None, None
        try:
            async for delta in upstream:
                used += delta.n_tokens
                text = delta.text
                for f in filters:
                    text = f.feed(text, budget - used) if text else ""
                    if f.stop and stopped_by is None:
                        stopped_by = f.name
                if text:
                    yield Delta(text)
                if delta.finish_reason or stopped_by:
                    reason = delta.finish_reason
                    break
        finally:
            aclose = getattr(upstream, "aclose", None)
            if aclose is not None:
                await aclose()
        if stopped_by:
            reason = "content_filter" if stopped_by == OutputGuard.name else "stop"
        flush_reason = "loop" if stopped_by == RepetitionCutter.name else (reason or "stop")
        tail = ""
        for f in filters:
            tail = (f.feed(tail, budget - used) if tail else "") + f.finish(flush_reason)
        turn.finish_reason = reason or "stop"
        turn.note(self.name, stopped_by=stopped_by, **{f.name: f.report() for f in filters})
        yield Delta(tail, finish_reason=turn.finish_reason)
