"""`n > 1`: n answers to one request, as n turns of the same request run side by side. They reach the engine
together with the same prompt tokens, so the engine computes the prompt once and the others copy its cache
(prefix sharing). Each turn is logged on its own (choice i's id is the response id with `-i` after it, so each
can be rated); the response carries them as `choices[i]`, whole or as one interleaved stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from parley.protocol.openai import ChatCompletion, ChatCompletionChunk, Completion, PromptTokensDetails, Usage

if TYPE_CHECKING:
    from parley.pipeline.runner import Run

MAX_N = 16


def choice_id(base: str, i: int) -> str:
    return base if i == 0 else f"{base}-{i}"


def merge_responses(responses: list[ChatCompletion | Completion]) -> ChatCompletion | Completion:
    """One response with every turn's answer as `choices[i]`; usage counts the prompt once."""
    first = responses[0]
    choices = []
    for i, response in enumerate(responses):
        choice = response.choices[0].model_copy(update={"index": i})
        choices.append(choice)
    return first.model_copy(update={"choices": choices, "usage": merged_usage(responses)})


def merged_usage(responses: list[ChatCompletion | Completion | ChatCompletionChunk]) -> Usage | None:
    usages = [r.usage for r in responses if r.usage is not None]
    if not usages:
        return None
    prompt = usages[0].prompt_tokens
    completion = sum(u.completion_tokens for u in usages)
    # the prompt is counted once; of it, as many tokens as any choice found computed (by another choice or before)
    cached = max((u.prompt_tokens_details.cached_tokens if u.prompt_tokens_details else 0) for u in usages)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
                 prompt_tokens_details=PromptTokensDetails(cached_tokens=cached))  # fmt: skip


async def merged_chunks(runs: list[Run], response_id: str) -> AsyncIterator[ChatCompletionChunk | Completion]:
    """The turns' stream chunks as they come, each under the response's id with its choice's index; the
    usage chunks (`stream_options.include_usage`) become one, last."""
    queue: asyncio.Queue[tuple[int, ChatCompletionChunk | Completion | BaseException | None]] = asyncio.Queue()

    async def pump(i: int, run: Run) -> None:
        try:
            async for chunk in run.chunks():
                await queue.put((i, chunk))
        except BaseException as exc:  # noqa: BLE001 (handed to the consumer, which re-raises it)
            await queue.put((i, exc))
        finally:
            await queue.put((i, None))

    tasks = [asyncio.create_task(pump(i, run)) for i, run in enumerate(runs)]
    usage_chunks: list[ChatCompletionChunk | Completion] = []
    open_streams = len(runs)
    try:
        while open_streams:
            i, item = await queue.get()
            if item is None:
                open_streams -= 1
                continue
            if isinstance(item, BaseException):
                raise item
            if not item.choices and item.usage is not None:
                usage_chunks.append(item)
                continue
            for choice in item.choices:
                choice.index = i
            item.id = response_id
            yield item
        if usage_chunks:
            last = usage_chunks[0].model_copy(update={"usage": merged_usage(usage_chunks), "id": response_id})
            yield last
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for run in runs:
            await run.aclose()
