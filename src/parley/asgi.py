"""The one ASGI pattern three middlewares share: look at (and add headers to) a response's start message."""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import Message, Send


def on_response_start(send: Send, see: Callable[[Message], None]) -> Send:
    """`send`, calling `see(message)` on the `http.response.start` message before it goes out (`see` may add to
    `message["headers"]`)."""

    async def watched(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = list(message.get("headers", []))
            see(message)
        await send(message)

    return watched
