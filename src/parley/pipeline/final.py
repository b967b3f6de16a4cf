"""Stage 6, final output: the OpenAI response objects, whole or as stream chunks."""

from __future__ import annotations

from typing import Any

from parley.engines.base import TokenLogprob, ToolCallFragment
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


def chat_logprobs(entries: list[TokenLogprob]) -> dict[str, Any]:
    """OpenAI's chat `logprobs`: one entry per generated token, with its alternatives."""

    def one(e: TokenLogprob) -> dict[str, Any]:
        return {"token": e.token, "logprob": e.logprob, "bytes": e.bytes}

    return {"content": [{**one(e), "top_logprobs": [one(t) for t in e.top_logprobs]} for e in entries],
            "refusal": None}  # fmt: skip


def completion_logprobs(entries: list[TokenLogprob], offset: int) -> dict[str, Any]:
    """The completions API's (legacy) `logprobs`: parallel lists, `text_offset` counted from `offset`."""
    offsets = []
    for e in entries:
        offsets.append(offset)
        offset += len(e.token)
    return {"tokens": [e.token for e in entries], "token_logprobs": [e.logprob for e in entries],
            "top_logprobs": [{t.token: t.logprob for t in e.top_logprobs} if e.logprob is not None else None
                             for e in entries],
            "text_offset": offsets}  # fmt: skip


def joined(entries: list[TokenLogprob]) -> str:
    return "".join(e.token for e in entries)


def wants_logprobs(turn: Turn) -> bool:
    return turn.params is not None and turn.params.logprobs is not None


def echo_prefix(turn: Turn) -> str:
    """A text completion with `echo`: the prompt, before the answer."""
    return turn.prompt if turn.kind == "completion" and getattr(turn.request, "echo", False) else ""


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
            echo = echo_prefix(turn)
            logprobs = None
            if wants_logprobs(turn):  # with echo, the prompt's tokens first: their text is the echoed prompt
                prompt = turn.prompt_logprobs if echo else []
                logprobs = completion_logprobs(prompt + turn.logprobs, len(echo) - len(joined(prompt)))
            return Completion(
                id=turn.id, created=turn.created, model=turn.model,
                choices=[CompletionChoice(text=echo + turn.text, finish_reason=turn.finish_reason, logprobs=logprobs)],
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
            choices=[ChatChoice(message=message, finish_reason=turn.finish_reason,
                                logprobs=chat_logprobs(turn.logprobs) if wants_logprobs(turn) else None)],
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
        logprobs: list[TokenLogprob] | None = None,
        offset: int = 0,
    ) -> ChatCompletionChunk | Completion:
        """`logprobs`: the tokens this chunk carries (with `offset`, where their text starts, for completions)."""
        if turn.kind == "completion":
            legacy = completion_logprobs(logprobs, offset) if logprobs else None
            return Completion(
                id=turn.id, created=turn.created, model=turn.model,
                choices=[CompletionChoice(text=text or "", finish_reason=finish_reason, logprobs=legacy)],
                system_fingerprint=FINGERPRINT,
            )  # fmt: skip
        delta = ChunkDelta(
            role="assistant" if role else None, content=text, reasoning_content=reasoning or None,
            tool_calls=chunk_tool_calls(tool_calls or []),
        )  # fmt: skip
        return ChatCompletionChunk(
            id=turn.id, created=turn.created, model=turn.model, system_fingerprint=FINGERPRINT,
            choices=[ChunkChoice(delta=delta, finish_reason=finish_reason,
                                 logprobs=chat_logprobs(logprobs) if logprobs else None)],
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
