"""Parley as an MCP server (the official `mcp` SDK, streamable HTTP) at `/mcp` on the same app, behind the same
keys and scopes: the door needs a `chat` key, and each tool checks its own scope again. Its tools are the
service's own paths, not copies: `chat` runs the whole pipeline, `moderate` and `embed` the endpoints' logic,
`feedback` the feedback route."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from parley.errors import ParleyError
from parley.pipeline.turn import Turn
from parley.protocol.openai import ChatCompletionRequest

if TYPE_CHECKING:
    from fastapi import FastAPI

MCP_PATH = "/mcp"


class McpDoor:
    """The keys' door in front of the MCP endpoint: no valid `chat` key, no MCP session (the error is
    OpenAI-style JSON with the right status, as on every other endpoint)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            await request.app.state.access.authenticate(request, "chat")
        except ParleyError as exc:
            await JSONResponse(exc.envelope(), status_code=exc.status, headers=exc.headers)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def anticipated(tool: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """A Parley error (a bad argument, a missing scope, a full engine) reaches the MCP client as the tool's error
    text, with its status and code, as the API would say it; the SDK hides other exceptions' text."""

    @functools.wraps(tool)
    async def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return await tool(*args, **kwargs)
        except ParleyError as exc:
            raise ToolError(f"{exc.status} {exc.code or exc.type}: {exc.message}") from exc

    return run


def build_mcp(app: FastAPI) -> MCPServer:
    server = MCPServer("parley", instructions="Parley's chat pipeline (guards, profiles, post-processing) as tools: "
                       "chat, moderate, embed, feedback.")  # fmt: skip

    async def caller(ctx: Context, scope: str) -> tuple[Request, Any]:
        request = ctx.request_context.request
        assert isinstance(request, Request)
        return request, await app.state.access.authenticate(request, scope)

    @server.tool()
    @anticipated
    async def chat(message: str, ctx: Context, model: str | None = None, system: str | None = None,
                   max_tokens: int = 256, temperature: float | None = None, profile: str | None = None) -> dict:
        """Ask the model through Parley's whole pipeline (input guard, profile, post-processing, output guard).
        `model`: a served model or adapter (default: the first); `profile`: a use-case profile's name."""
        _, key = await caller(ctx, "chat")
        registry = app.state.registry
        name = model or next(iter(registry.engines), "")
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": message}]
        request = ChatCompletionRequest(model=name, messages=messages, max_tokens=max_tokens, temperature=temperature)
        turn = Turn(kind="chat", request=request)
        turn.profile_name = profile
        run = await app.state.pipeline.start(turn, key=key)
        response = await run.response()
        choice = response.choices[0]
        return {"id": response.id, "model": response.model, "content": choice.message.content,
                "finish_reason": choice.finish_reason, "usage": response.usage.model_dump()}  # fmt: skip

    @server.tool()
    @anticipated
    async def moderate(text: str, ctx: Context) -> dict:
        """Classify text with Parley's guards: OpenAI's moderation categories and prompt-injection, pii, secrets."""
        from parley.guards.moderation import moderate as run_moderation

        await caller(ctx, "chat")
        guards = app.state.guards.get()
        if guards is None:
            raise ToolError("The guards are off on this server.")
        return (await asyncio.to_thread(run_moderation, guards, [text]))[0]

    @server.tool()
    @anticipated
    async def embed(texts: list[str], ctx: Context, model: str = "all-minilm-l6-v2") -> dict:
        """Sentence embeddings (L2-normalised) of each text."""
        await caller(ctx, "chat")
        vectors, tokens = await asyncio.to_thread(app.state.embeddings.embed, model, texts)
        return {"model": model, "embeddings": [[float(x) for x in v] for v in vectors], "tokens": tokens}

    @server.tool()
    @anticipated
    async def feedback(completion_id: str, rating: str, ctx: Context, correction: str | None = None) -> dict:
        """Rate an answer ("up", "down" or 1-5), optionally with a better answer; the key must have made it."""
        from parley.server.routes.feedback import FeedbackCreate, rate

        request, key = await caller(ctx, "feedback")
        request.state.api_key = key
        value: str | int = int(rating) if rating.isdigit() else rating
        response = await rate(FeedbackCreate(completion_id=completion_id, rating=value, correction=correction),
                              request)  # type: ignore[arg-type]  # fmt: skip
        return json.loads(bytes(response.body))

    return server
