"""The MCP servers of the settings, as the official SDK's client sees them. Each server has one session, held
open by its own task (the SDK's sessions end in the task that opened them) and shared by every request; a
session that fails is dropped and the next use opens a new one. Only the tools its `allow` list names are
ever offered or called."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from parley.config import McpServerSpec
from parley.errors import InvalidRequest, ServiceUnavailable
from parley.schema_grammar import SchemaInvalid, SchemaUnenforceable, schema_grammar

log = logging.getLogger(__name__)

TOOLS_TTL = 30.0  # seconds a server's tool list is reused before it is asked again


class ToolServerUnavailable(ServiceUnavailable):
    code = "tool_server_unavailable"


@dataclass(frozen=True)
class ServerTool:
    server: str
    name: str
    description: str
    parameters: dict[str, Any]

    def openai(self) -> dict[str, Any]:
        function = {"name": self.name, "description": self.description, "parameters": self.parameters}
        return {"type": "function", "function": function}


@dataclass
class CallOutcome:
    text: str  # what the model is given
    ok: bool
    error: str | None = None
    kind: str = "ok"  # ok | error | timeout | unavailable (the metric's outcome)


class McpServer:
    def __init__(self, spec: McpServerSpec) -> None:
        self.spec = spec
        self._client: Client | None = None
        self._holder: asyncio.Task[None] | None = None
        self._ready: asyncio.Event | None = None
        self._release: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._lock = asyncio.Lock()
        self._tools: tuple[float, list[ServerTool], list[str]] | None = None  # (when, usable, skipped)

    def _target(self) -> Any:
        spec = self.spec
        if spec.command is not None:
            return StdioServerParameters(command=spec.command[0], args=spec.command[1:], env=spec.env or None)
        assert spec.url is not None
        http = httpx2.AsyncClient(headers=spec.http_headers(), timeout=httpx2.Timeout(spec.call_timeout + 5))
        return streamable_http_client(spec.url, http_client=http)

    async def _hold(self) -> None:
        assert self._ready is not None and self._release is not None
        try:
            async with Client(self._target(), read_timeout_seconds=self.spec.call_timeout) as client:
                self._client = client
                self._ready.set()
                await self._release.wait()
        except BaseException as exc:  # noqa: BLE001 - recorded; the next use reconnects
            self._failure = exc
            if not isinstance(exc, asyncio.CancelledError):
                log.warning("MCP server %s: %s", self.spec.name, exc)
        finally:
            self._client = None
            self._ready.set()

    async def client(self) -> Client:
        async with self._lock:
            if self._client is None or self._holder is None or self._holder.done():
                await self._drop()
                self._ready, self._release, self._failure = asyncio.Event(), asyncio.Event(), None
                self._holder = asyncio.create_task(self._hold(), name=f"mcp-{self.spec.name}")
                try:
                    await asyncio.wait_for(self._ready.wait(), self.spec.connect_timeout)
                except TimeoutError:
                    await self._drop()
                    raise ToolServerUnavailable(f"The MCP server `{self.spec.name}` did not answer in "
                                                f"{self.spec.connect_timeout:g} s.") from None  # fmt: skip
            if self._client is None:
                raise ToolServerUnavailable(f"The MCP server `{self.spec.name}` is unavailable: {self._failure}")
            return self._client

    async def tools(self) -> tuple[list[ServerTool], list[str]]:
        """The allowed tools whose schemas can be enforced, and the names of allowed ones that cannot."""
        if self._tools is not None and time.monotonic() - self._tools[0] < TOOLS_TTL:
            return self._tools[1], self._tools[2]
        client = await self.client()
        try:
            listing = await asyncio.wait_for(client.list_tools(), self.spec.connect_timeout)
        except Exception as exc:
            await self._drop()
            raise ToolServerUnavailable(f"The MCP server `{self.spec.name}` could not list its tools: {exc}") from exc
        usable, skipped = [], []
        for tool in listing.tools:
            if not self.spec.allows(tool.name):
                continue
            schema = dict(tool.input_schema or {"type": "object", "properties": {}})
            try:
                schema_grammar(schema)
            except (SchemaInvalid, SchemaUnenforceable):
                skipped.append(tool.name)
                continue
            usable.append(ServerTool(self.spec.name, tool.name, tool.description or "", schema))
        self._tools = (time.monotonic(), usable, skipped)
        return usable, skipped

    async def call(self, name: str, arguments: dict[str, Any], timeout: float) -> CallOutcome:
        if not self.spec.allows(name):  # the model is never offered it; this guards the door anyway
            return CallOutcome(f"Error: the tool {name} is not allowed.", False, "not allowed", "error")
        try:
            client = await self.client()
            result = await asyncio.wait_for(client.call_tool(name, arguments), min(timeout, self.spec.call_timeout))
        except TimeoutError:
            return CallOutcome(f"Error: the tool {name} did not answer in time.", False, "timeout", "timeout")
        except ToolServerUnavailable as exc:
            return CallOutcome(f"Error: the tool {name} is unavailable.", False, exc.message, "unavailable")
        except Exception as exc:  # noqa: BLE001 - the model is told; the session is renewed next time
            await self._drop()
            return CallOutcome(f"Error: the tool {name} failed.", False, f"{type(exc).__name__}: {exc}", "unavailable")
        text = result_text(result)
        if len(text) > self.spec.max_result_chars:
            text = text[: self.spec.max_result_chars] + " [cut]"
        if result.is_error:
            return CallOutcome(f"Error: {text}", False, "the tool reported an error", "error")
        return CallOutcome(text, True)

    async def _drop(self) -> None:
        holder, self._holder = self._holder, None
        if holder is not None and not holder.done():
            assert self._release is not None
            self._release.set()
            try:
                await asyncio.wait_for(asyncio.shield(holder), 5)
            except (TimeoutError, Exception):  # noqa: BLE001 - closing a broken session may fail; it is gone anyway
                holder.cancel()
        self._client, self._tools = None, None

    async def close(self) -> None:
        async with self._lock:
            await self._drop()


def result_text(result: Any) -> str:
    """A tool result as text for the model: its text items, structured content as JSON, other items named."""
    parts = []
    for item in result.content or []:
        kind = getattr(item, "type", "")
        if kind == "text":
            parts.append(item.text)
        elif kind == "resource" and getattr(item.resource, "text", None) is not None:
            parts.append(item.resource.text)
        else:
            parts.append(f"[{kind or 'item'} omitted]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


class McpServers:
    """Every configured server, by name."""

    def __init__(self, specs: list[McpServerSpec]) -> None:
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError("two MCP servers share a name")
        self.by_name = {s.name: McpServer(s) for s in specs}

    def pick(self, names: list[str], param: str) -> list[McpServer]:
        unknown = [n for n in names if n not in self.by_name]
        if unknown:
            raise InvalidRequest(f"No MCP server is named {unknown[0]!r}; this server has: "
                                 f"{', '.join(self.by_name) or 'none'}.", param=param)  # fmt: skip
        return [self.by_name[n] for n in dict.fromkeys(names)]

    async def close(self) -> None:
        for server in self.by_name.values():
            with contextlib.suppress(Exception):
                await server.close()
