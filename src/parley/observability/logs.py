"""Logs: one line per event, as text or JSON (`--log-format json`), each carrying the request id of the request
it belongs to.

`RequestContext` (ASGI middleware) takes the caller's `X-Request-ID` when it is sane (else makes one), keeps it
in a context variable for everything that runs for the request (threads started with `asyncio.to_thread` copy
it), returns it in the `X-Request-ID` response header, and writes one access line when the response ends.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parley.asgi import on_response_start
from parley.pipeline.context import TurnContext
from parley.pipeline.turn import Turn

request_id: ContextVar[str | None] = ContextVar("parley_request_id", default=None)
traceparent: ContextVar[str | None] = ContextVar("parley_traceparent", default=None)  # W3C trace context

HEADER = "x-request-id"
SANE_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")  # printable, no spaces or quotes: safe in logs and headers
access_log = logging.getLogger("parley.access")

# LogRecord's own attributes; anything else on a record came from `extra=` and goes into the JSON line.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "request_id",
                                                                            "color_message"}  # uvicorn's ANSI copy


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, and any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid is not None:
            line["request_id"] = rid
        for name, value in record.__dict__.items():
            if name not in _STANDARD and not name.startswith("_"):
                line[name] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        rid = getattr(record, "request_id", None)
        return f"{text} [{rid}]" if rid else text


def configure_logging(level: str = "info", fmt: str = "text") -> None:
    """The root logger writes to stderr in `fmt`; uvicorn's loggers go through it (their own handlers off)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # `parley.access` carries the request id instead


def new_request_id() -> str:
    return f"req_{uuid.uuid4().hex}"


class RequestContext:
    """ASGI middleware: the request id (and trace context) of each HTTP request, and its access log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1").strip()
        rid = given if SANE_ID.fullmatch(given) else new_request_id()
        token = request_id.set(rid)
        parent = headers.get(b"traceparent")
        trace_token = traceparent.set(parent.decode("latin-1") if parent else None)
        start = time.perf_counter()
        status = 0

        def add_id(message: Message) -> None:
            nonlocal status
            status = message["status"]
            message["headers"].append((HEADER.encode(), rid.encode()))

        try:
            await self.app(scope, receive, on_response_start(send, add_id))
        finally:
            client = scope.get("client")
            access_log.info(
                '%s %s %s', scope["method"], scope["path"], status,
                extra={"method": scope["method"], "path": scope["path"], "status": status,
                       "duration_ms": round((time.perf_counter() - start) * 1000, 3),
                       "client": client[0] if client else None},
            )  # fmt: skip
            traceparent.reset(trace_token)
            request_id.reset(token)


turn_log = logging.getLogger("parley.turn")


async def log_turn(turn: Turn, ctx: TurnContext) -> None:
    """Turn-end observer: one line per turn, tying the request id to the completion id and its figures."""
    timing = turn.timing
    turn_log.info(
        "%s %s %s", turn.id, turn.outcome, turn.finish_reason or "-",
        extra={"completion_id": turn.id, "model": turn.model, "outcome": turn.outcome,
               "finish_reason": turn.finish_reason, "prompt_tokens": turn.usage.prompt_tokens,
               "completion_tokens": turn.usage.completion_tokens, "cached_tokens": turn.usage.cached_tokens,
               "ttft_ms": None if timing.ttft_s is None else round(timing.ttft_s * 1000, 3),
               "latency_ms": None if timing.latency_s is None else round(timing.latency_s * 1000, 3),
               "error": None if turn.error is None else f"{type(turn.error).__name__}: {turn.error}"[:300]},
    )  # fmt: skip
