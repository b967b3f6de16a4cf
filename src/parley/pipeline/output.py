"""Stage 4, output: keep the raw model text (and reasoning and tool calls), why it stopped and the exact token
counts, for the trace; note when the first token arrived."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from parley.engines.base import ToolCallFragment
from parley.pipeline.turn import Delta, Turn


def merge_tool_calls(calls: list[ToolCallFragment], fragments: list[ToolCallFragment]) -> None:
    """Fold streamed fragments into whole calls, one per index (id and name from the first fragment)."""
    by_index = {c.index: c for c in calls}
    for f in fragments:
        call = by_index.get(f.index)
        if call is None:
            call = by_index[f.index] = ToolCallFragment(f.index, f.id, f.name, "")
            calls.append(call)
        call.id = call.id or f.id
        call.name = call.name or f.name
        call.arguments += f.arguments


class OutputStage:
    name = "output"

    async def process(self, turn: Turn, upstream: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
        turn.usage.prompt_tokens = len(turn.prompt_tokens)
        pieces: list[str] = []
        reasoning: list[str] = []
        try:
            async for delta in upstream:
                if delta.n_tokens or delta.text or delta.tool_calls:
                    if turn.timing.first_token is None:
                        turn.guard.start_readings()  # the prefill is done: the guards' readings may run
                    turn.timing.tokens_arrived(delta.n_tokens, time.perf_counter())
                pieces.append(delta.text)
                reasoning.append(delta.reasoning)
                merge_tool_calls(turn.tool_calls, delta.tool_calls)
                turn.logprobs.extend(delta.logprobs)
                turn.usage.completion_tokens += delta.n_tokens
                if delta.finish_reason:
                    turn.finish_reason = delta.finish_reason
                yield delta
        finally:
            turn.raw_text, turn.reasoning = "".join(pieces), "".join(reasoning)
            turn.note(
                self.name,
                finish_reason=turn.finish_reason,
                completion_tokens=turn.usage.completion_tokens,
                raw_chars=len(turn.raw_text),
                raw_text=turn.raw_text if turn.want_trace else None,
                **({"reasoning_chars": len(turn.reasoning)} if turn.reasoning else {}),
                **({"tool_calls": len(turn.tool_calls)} if turn.tool_calls else {}),
            )
