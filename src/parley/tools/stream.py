"""An engine stream whose text may hold tool calls, as chunks with content and tool-call fragments."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from parley.engines.base import Chunk, GenerationStream
from parley.tools.parser import CallParser


class ToolCallStream:
    def __init__(self, chunks: GenerationStream, parser: CallParser,
                 on_finish: Callable[[CallParser], None] = lambda parser: None) -> None:  # fmt: skip
        self.chunks, self.parser, self.on_finish = chunks, parser, on_finish
        self.raw: list[str] = []  # the model's text as generated, calls included (for the trace)

    def __aiter__(self) -> ToolCallStream:
        return self

    async def __anext__(self) -> Chunk:
        chunk = await anext(self.chunks)
        self.raw.append(chunk.text)
        text, fragments = self.parser.feed(chunk.text)
        finish = chunk.finish_reason
        if finish is not None:
            rest, more = self.parser.finish()
            text, fragments = text + rest, fragments + more
            if self.parser.calls and finish == "stop":
                finish = "tool_calls"
            self.on_finish(self.parser)
        return replace(chunk, text=text, tool_calls=[*chunk.tool_calls, *fragments], finish_reason=finish)

    async def stop(self) -> None:
        await self.chunks.stop()

    async def aclose(self) -> None:
        await self.chunks.aclose()
