"""A chat that may use the tools of MCP servers (a request's `mcp_servers`, or its profile's): Parley offers
the allowed tools to the model beside the client's own, runs each call the model makes to them, and gives the
model the results as `tool` messages, until it answers without calling one.

- Every step is a whole turn through the pipeline: tool results are untrusted input that the input guard scans
  with its `tool_injection` policy, and each step's calls parse and validate by the tools' grammar.
- The loop is bounded: after `max_steps` steps with calls, or once the time budget is spent, the last step
  runs with `tool_choice: none`, so the model answers with what it has.
- A step that calls one of the client's own tools ends the loop: those calls go back to the client (the
  server's calls of that step are not run, and not shown).
- The answer's content is what the model said in every step, whole or streamed alike; usage counts every step.
  Steps with server calls are logged under `<id>-step<N>`, the answer under the response id (rate that).
- The model stage's trace carries `mcp`: the servers, the tools offered, and each step's calls."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from parley.agent.servers import McpServer, ServerTool
from parley.errors import InvalidRequest
from parley.pipeline.turn import Turn
from parley.protocol.openai import ChatCompletion, ChatCompletionChunk, ChatMessage, PromptTokensDetails, Usage

if TYPE_CHECKING:
    from parley.engines.base import ToolCallFragment
    from parley.pipeline.runner import Pipeline, Run
    from parley.store.keys import ApiKey


class ToolLoop:
    def __init__(self, pipeline: Pipeline, turn: Turn, key: ApiKey | None, servers: list[McpServer], *,
                 max_steps: int, time_budget: float,
                 on_call: Callable[[str, str, str], None] = lambda server, tool, outcome: None) -> None:  # fmt: skip
        self.pipeline, self.turn, self.key, self.servers, self.on_call = pipeline, turn, key, servers, on_call
        self.max_steps, self.time_budget = max_steps, time_budget
        self.offered: dict[str, ServerTool] = {}
        self.request = turn.request
        self.messages: list[ChatMessage] = list(turn.request.messages)  # type: ignore[union-attr]
        self.steps: list[dict[str, Any]] = []
        self.usages: list[Usage] = []
        self.started = time.monotonic()
        self.run: Run | None = None
        self.trace: dict[str, Any] = {}

    async def open(self) -> None:
        """List the servers' allowed tools (503 when a server cannot be reached)."""
        client_names = {(t.get("function") or {}).get("name") for t in (self.request.tools or [])
                        if isinstance(t, dict)}  # fmt: skip
        skipped: dict[str, list[str]] = {}
        for server in self.servers:
            tools, unusable = await server.tools()
            if unusable:
                skipped[server.spec.name] = unusable
            for tool in tools:
                if tool.name in client_names:
                    raise InvalidRequest(f"The request's tool {tool.name!r} has the name of a tool of the MCP server "
                                         f"`{server.spec.name}`.", param="tools")  # fmt: skip
                self.offered.setdefault(tool.name, tool)  # the first server that lists a name has it
        self.trace = {"servers": [s.spec.name for s in self.servers],
                      "tools": [f"{t.server}/{t.name}" for t in self.offered.values()],
                      "steps": self.steps}  # fmt: skip
        if skipped:
            self.trace["skipped"] = skipped  # schemas a grammar cannot enforce

    # ---- one step ------------------------------------------------------------------------------

    def _left(self) -> float:
        return self.time_budget - (time.monotonic() - self.started)

    async def _start(self) -> tuple[Turn, Run]:
        step = len(self.steps)
        out_of = "step bound" if step >= self.max_steps else "time budget" if self._left() <= 0 else None
        tools = [*(self.request.tools or []), *(t.openai() for t in self.offered.values())]
        update: dict[str, Any] = {"messages": self.messages, "tools": tools or None}
        if out_of is not None:
            update["tool_choice"] = "none"
        elif step > 0 and isinstance(self.request.tool_choice, (dict, str)) and self.request.tool_choice != "none":
            update["tool_choice"] = "auto"  # `required` or a named tool binds the first step only
        turn = Turn(kind="chat", request=self.request.model_copy(update=update), want_trace=self.turn.want_trace,
                    id=self.turn.id, profile_name=self.turn.profile_name)  # fmt: skip
        turn.server_tools, turn.step = frozenset(self.offered), step
        turn.note("model", mcp={**self.trace, **({"answer_forced_by": out_of} if out_of else {})})
        run = await self.pipeline.start(turn, key=self.key)
        self.run = run
        return turn, run

    def _client_calls(self, turn: Turn) -> list[ToolCallFragment]:
        return [c for c in turn.tool_calls if c.name not in self.offered]

    def _to_run(self, turn: Turn) -> list[ToolCallFragment]:
        """The server's calls to run before another step; none when this step is the answer (it called no server
        tool, it called a client tool, or it was made to answer)."""
        if turn.request.tool_choice == "none" or self._client_calls(turn):
            return []
        return [c for c in turn.tool_calls if c.name in self.offered]

    async def _run_calls(self, turn: Turn, calls: list[ToolCallFragment]) -> None:
        """Run a step's calls side by side; the model gets each result (or what went wrong) as a tool message."""

        async def one(call: ToolCallFragment) -> dict[str, Any]:
            tool = self.offered[call.name or ""]
            server = next(s for s in self.servers if s.spec.name == tool.server)
            start = time.perf_counter()
            outcome = await server.call(tool.name, json.loads(call.arguments or "{}"), max(self._left(), 0.001))
            self.on_call(tool.server, tool.name, outcome.kind)
            return {"server": tool.server, "tool": tool.name, "id": call.id, "arguments": call.arguments,
                    "ok": outcome.ok, "error": outcome.error, "seconds": round(time.perf_counter() - start, 4),
                    "result_chars": len(outcome.text), "_text": outcome.text}  # fmt: skip

        done = await asyncio.gather(*(one(c) for c in calls))
        self.messages.append(ChatMessage(role="assistant", content=turn.text or None, tool_calls=[
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls]))
        for record in done:
            self.messages.append(ChatMessage(role="tool", tool_call_id=record["id"], content=record.pop("_text")))
        self.steps.append({"step": len(self.steps), "calls": done})

    # ---- whole and streamed ---------------------------------------------------------------------

    async def response(self) -> ChatCompletion:
        texts: list[str] = []
        while True:
            turn, run = await self._start()
            response = await run.response()
            assert isinstance(response, ChatCompletion)
            texts.append(turn.text)
            self.usages.append(response.usage)
            if not (calls := self._to_run(turn)):
                break
            await self._run_calls(turn, calls)
        message = response.choices[0].message
        calls = [c for c in (message.tool_calls or []) if c.function.name not in self.offered]
        message = message.model_copy(update={"content": "".join(texts) or (None if calls else ""),
                                             "tool_calls": calls or None})  # fmt: skip
        choice = response.choices[0].model_copy(update={"message": message})
        return response.model_copy(update={"choices": [choice], "usage": summed(self.usages)})

    async def chunks(self) -> AsyncIterator[ChatCompletionChunk]:
        role_sent = False
        while True:
            turn, run = await self._start()
            held: list[ChatCompletionChunk] = []  # the step's end: its finish and usage chunks
            ours: set[int] = set()  # the indexes of the server's calls in this step
            renumber: dict[int, int] = {}  # the client's calls, numbered from 0
            async for chunk in run.chunks():
                assert isinstance(chunk, ChatCompletionChunk)
                if not chunk.choices or chunk.choices[0].finish_reason is not None:
                    held.append(chunk)
                    continue
                delta = chunk.choices[0].delta
                if delta.tool_calls:
                    kept = []
                    for call in delta.tool_calls:
                        if call.function is not None and call.function.name is not None:
                            if call.function.name in self.offered:
                                ours.add(call.index)
                            else:
                                renumber[call.index] = len(renumber)
                        if call.index not in ours:
                            kept.append(call.model_copy(update={"index": renumber[call.index]}))
                    delta.tool_calls = kept or None
                if role_sent:
                    delta.role = None
                if delta.role is None and not delta.content and not delta.tool_calls and not chunk.choices[0].logprobs:
                    continue
                role_sent = True
                yield chunk
            usage = next((c.usage for c in held if c.usage is not None), None)
            if usage is not None:
                self.usages.append(usage)
            if calls := self._to_run(turn):
                await self._run_calls(turn, calls)
                continue
            theirs = self._client_calls(turn)
            for chunk in held:
                if not chunk.choices and chunk.usage is not None:
                    chunk.usage = summed(self.usages)
                elif chunk.choices and chunk.choices[0].finish_reason == "tool_calls" and not theirs:
                    chunk.choices[0].finish_reason = "stop"
                yield chunk
            return

    async def aclose(self) -> None:
        if self.run is not None:
            await self.run.aclose()


def summed(usages: list[Usage | None]) -> Usage | None:
    counted = [u for u in usages if u is not None]
    if not counted:
        return None
    prompt = sum(u.prompt_tokens for u in counted)
    completion = sum(u.completion_tokens for u in counted)
    cached = sum(u.prompt_tokens_details.cached_tokens if u.prompt_tokens_details else 0 for u in counted)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
                 prompt_tokens_details=PromptTokensDetails(cached_tokens=cached))  # fmt: skip
