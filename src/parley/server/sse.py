"""Server-sent events in OpenAI's framing: `data: {json}` per chunk, then `data: [DONE]`."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from pydantic import BaseModel
from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse

from parley.errors import ParleyError
from parley.protocol.openai import to_wire

log = logging.getLogger(__name__)


def _event(data: object) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


async def _frames(chunks: AsyncIterator[BaseModel]) -> AsyncIterator[str]:
    try:
        async for chunk in chunks:
            yield _event(to_wire(chunk))
    except ParleyError as exc:  # headers are gone: the error travels as an event, as OpenAI does
        yield _event(exc.envelope())
    except Exception:
        log.exception("stream failed")
        yield _event(ParleyError("The server had an error while streaming the response.").envelope())
    yield "data: [DONE]\n\n"


def sse_response(chunks: AsyncIterator[BaseModel], on_close: Callable[[], Awaitable[None]]) -> StreamingResponse:
    """`on_close` runs after the stream, also when the client left before the first byte."""
    return StreamingResponse(
        _frames(chunks),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        background=BackgroundTask(on_close),
    )
