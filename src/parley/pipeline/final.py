"""Stage 6, final output: the OpenAI response objects, whole or as stream chunks."""

from __future__ import annotations

from parley.engines.base import ToolCallFragment
from parley.pipeline.turn import Turn
from parley.protocol.openai import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChunkChoice,
    ChunkDelta,
    ChunkFunction,
    ChunkToolCall,
    Completion,
    CompletionChoice,
    FunctionCall,
    PromptTokensDetails,
    ToolCall,
    Usage,
)

FINGERPRINT = "parley-0.1"


def chunk_tool_calls(fragments: list[ToolCallFragment]) -> list[ChunkToolCall] | None:
    if not fragments:
        return None
    return [
        ChunkToolCall(index=f.index, id=f.id, type="function" if f.id else None,
                      function=ChunkFunction(name=f.name, arguments=f.arguments))
        for f in fragments
    ]  # fmt: skip


class FinalStage:
    name = "final"

    def usage(self, turn: Turn) -> Usage:
        u = turn.usage
        return Usage(
            prompt_tokens=u.prompt_tokens,
            completion_tokens=u.completion_tokens,
            total_tokens=u.total,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=u.cached_tokens),
        )

    def response(self, turn: Turn) -> ChatCompletion | Completion:
        trace = turn.trace if turn.want_trace else None
        if turn.kind == "completion":
            return Completion(
                id=turn.id, created=turn.created, model=turn.model,
                choices=[CompletionChoice(text=turn.text, finish_reason=turn.finish_reason)],
                usage=self.usage(turn), system_fingerprint=FINGERPRINT, parley_trace=trace,
            )  # fmt: skip
        calls = [ToolCall(id=c.id or f"call_{c.index}", function=FunctionCall(name=c.name or "", arguments=c.arguments))
                 for c in turn.tool_calls]  # fmt: skip
        message = AssistantMessage(
            content=turn.text if turn.text or not calls else None,
            tool_calls=calls or None,
            reasoning_content=turn.reasoning or None,
        )
        return ChatCompletion(
            id=turn.id, created=turn.created, model=turn.model,
            choices=[ChatChoice(message=message, finish_reason=turn.finish_reason)],
            usage=self.usage(turn), system_fingerprint=FINGERPRINT, parley_trace=trace,
        )  # fmt: skip

    def chunk(
        self,
        turn: Turn,
        text: str | None,
        *,
        role: bool = False,
        finish_reason: str | None = None,
        reasoning: str = "",
        tool_calls: list[ToolCallFragment] | None = None,
    ) -> ChatCompletionChunk | Completion:
        if turn.kind == "completion":
            return Completion(
                id=turn.id, created=turn.created, model=turn.model,
                choices=[CompletionChoice(text=text or "", finish_reason=finish_reason)],
                system_fingerprint=FINGERPRINT,
            )  # fmt: skip
        delta = ChunkDelta(
            role="assistant" if role else None, content=text, reasoning_content=reasoning or None,
            tool_calls=chunk_tool_calls(tool_calls or []),
        )  # fmt: skip
        return ChatCompletionChunk(
            id=turn.id, created=turn.created, model=turn.model, system_fingerprint=FINGERPRINT,
            choices=[ChunkChoice(delta=delta, finish_reason=finish_reason)],
        )  # fmt: skip

    def usage_chunk(self, turn: Turn) -> ChatCompletionChunk | Completion:
        if turn.kind == "completion":
            return Completion(
                id=turn.id, created=turn.created, model=turn.model,
                choices=[], usage=self.usage(turn), system_fingerprint=FINGERPRINT,
            )  # fmt: skip
        return ChatCompletionChunk(
            id=turn.id, created=turn.created, model=turn.model, choices=[], usage=self.usage(turn),
            system_fingerprint=FINGERPRINT,
        )  # fmt: skip
