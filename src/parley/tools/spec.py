"""The tools a request offers and what it asks of them (`tool_choice`, `parallel_tool_calls`), validated."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from parley.errors import InvalidRequest
from parley.schema_grammar import SchemaInvalid, SchemaUnenforceable, schema_grammar

NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # OpenAI's rule for function names
MAX_TOOLS = 128


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass
class ToolRequest:
    tools: list[Tool]
    choice: str  # "auto" | "required" | "none" | "function" (one named function)
    function: str | None = None  # the named function
    parallel: bool = True
    by_name: dict[str, Tool] = field(default_factory=dict)

    def offered(self) -> list[Tool]:
        """The tools the model may call: all, or the one named."""
        return [self.by_name[self.function]] if self.function else self.tools


def parse_tools(tools: list[dict[str, Any]], tool_choice: Any, parallel: bool | None) -> ToolRequest:
    if len(tools) > MAX_TOOLS:
        raise InvalidRequest(f"At most {MAX_TOOLS} tools are allowed.", param="tools")
    parsed: list[Tool] = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
            raise InvalidRequest("Each tool is {\"type\": \"function\", \"function\": {...}}.", param=where)
        name = function.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise InvalidRequest("A function name is 1-64 letters, digits, '_' or '-'.", param=f"{where}.function.name")
        if any(t.name == name for t in parsed):
            raise InvalidRequest(f"Two tools are named {name!r}.", param=f"{where}.function.name")
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(parameters, dict) or parameters.get("type", "object") != "object":
            raise InvalidRequest("parameters must be a JSON schema of an object.", param=f"{where}.function.parameters")
        try:
            schema_grammar(parameters)
        except (SchemaInvalid, SchemaUnenforceable) as exc:
            raise InvalidRequest(f"The parameters schema cannot be enforced: {exc}",
                                 param=f"{where}.function.parameters") from exc  # fmt: skip
        parsed.append(Tool(name, str(function.get("description") or ""), parameters))
    request = ToolRequest(parsed, "auto", parallel=parallel is not False, by_name={t.name: t for t in parsed})
    if tool_choice is None or tool_choice in ("auto", "required", "none"):
        request.choice = tool_choice or "auto"
    elif isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        name = (tool_choice.get("function") or {}).get("name")
        if name not in request.by_name:
            raise InvalidRequest(f"tool_choice names {name!r}, which is not among the tools.", param="tool_choice")
        request.choice, request.function = "function", name
    else:
        raise InvalidRequest("tool_choice is 'none', 'auto', 'required' or a named function.", param="tool_choice")
    return request
