"""Stage 4, output: keep the raw model text, why it stopped and the exact token counts, for the trace."""

from __future__ import annotations

from collections.abc import AsyncIterator

from parley.pipeline.turn import Delta, Turn


class OutputStage:
    name = "output"

    async def process(self, turn: Turn, upstream: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
        turn.usage.prompt_tokens = len(turn.prompt_tokens)
        pieces: list[str] = []
        try:
            async for delta in upstream:
                pieces.append(delta.text)
                turn.usage.completion_tokens += delta.n_tokens
                if delta.finish_reason:
                    turn.finish_reason = delta.finish_reason
                yield delta
        finally:
            turn.raw_text = "".join(pieces)
            turn.note(
                self.name,
                finish_reason=turn.finish_reason,
                completion_tokens=turn.usage.completion_tokens,
                raw_chars=len(turn.raw_text),
                raw_text=turn.raw_text if turn.want_trace else None,
            )
