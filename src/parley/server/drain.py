"""Graceful shutdown (issue 17): on SIGTERM (or a first Ctrl-C) the server drains. Requests in flight, streams
included, run to their end; new ones get a 503 with `Retry-After` (and `/ready` says so, so a load balancer
stops sending); once nothing is in flight, or after `drain_seconds`, the server exits. A second signal exits at
once."""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass
from types import FrameType

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

OPEN_PATHS = ("/health", "/metrics")  # probes and scrapes keep answering while draining


@dataclass
class DrainState:
    since: float | None = None  # when the drain began
    in_flight: int = 0

    @property
    def draining(self) -> bool:
        return self.since is not None


class Drain:
    """ASGI middleware: counts the HTTP requests in flight (until their last body byte is sent) and refuses
    new ones while draining."""

    def __init__(self, app: ASGIApp, state: DrainState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        if self.state.draining:
            body = json.dumps({"error": {"message": "The server is shutting down; retry on another replica or "
                                         "shortly.", "type": "server_error", "param": None,
                                         "code": "shutting_down"}}).encode()  # fmt: skip
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"application/json"), (b"retry-after", b"5"),
                                    (b"content-length", str(len(body)).encode())]})  # fmt: skip
            await send({"type": "http.response.body", "body": body})
            return
        self.state.in_flight += 1
        done = False

        async def counted(message: Message) -> None:
            nonlocal done
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False) and not done:
                done = True
                self.state.in_flight -= 1

        try:
            await self.app(scope, receive, counted)
        finally:
            if not done:
                self.state.in_flight -= 1


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: DrainState, drain_seconds: float) -> None:
        super().__init__(config)
        self.state, self.drain_seconds = state, drain_seconds

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.state.draining or sig not in (signal.SIGTERM, signal.SIGINT):
            super().handle_exit(sig, frame)  # a second signal: exit now
            if self.state.draining:
                self.force_exit = True
            return
        self.state.since = time.monotonic()

    async def on_tick(self, counter: int) -> bool:
        if self.state.since is not None and (
            self.state.in_flight == 0 or time.monotonic() - self.state.since > self.drain_seconds
        ):
            self.should_exit = True
        return await super().on_tick(counter)
