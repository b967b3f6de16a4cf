"""How a template family writes tool calls: a small table, one entry per family. The model's chat template
decides; a template without tool support (SmolLM2's) gets the documented default, Hermes-style `<tool_call>`
JSON blocks with the tools described in the system prompt, which ChatML models widely know. Adding a family
(Llama 3, Mistral) is one `ToolFormat` in `FORMATS`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from parley.tools.spec import Tool


@dataclass(frozen=True)
class ToolFormat:
    name: str
    marker: str  # a template containing this speaks the format natively ("" for the default)
    call_open: str
    call_close: str
    result_role: str  # the role tool results are given in the prompt
    result_open: str
    result_close: str

    def system_prompt(self, tools: list[Tool], required: bool) -> str:
        signatures = "\n".join(json.dumps({"type": "function", "function": {"name": t.name, "description":
                               t.description, "parameters": t.parameters}}, ensure_ascii=False) for t in tools)
        must = "You must call one of them." if required else "Call one only when it helps answer."
        return (f"You may call functions. Their signatures, one JSON object per line, within <tools></tools>:\n"
                f"<tools>\n{signatures}\n</tools>\n{must} For each call, answer with a JSON object holding the "
                f"function's name and its arguments within {self.call_open}{self.call_close} tags:\n"
                f'{self.call_open}\n{{"name": <function-name>, "arguments": <args-json-object>}}\n{self.call_close}')

    def render_call(self, name: str, arguments: str) -> str:
        try:
            args: Any = json.loads(arguments) if arguments else {}
        except ValueError:
            args = arguments
        body = json.dumps({"name": name, "arguments": args}, ensure_ascii=False)
        return f"{self.call_open}\n{body}\n{self.call_close}"

    def render_result(self, content: str) -> str:
        return f"{self.result_open}\n{content}\n{self.result_close}"


HERMES = ToolFormat("hermes", "<tool_call>", "<tool_call>", "</tool_call>", "tool", "<tool_response>",
                    "</tool_response>")  # fmt: skip

FORMATS: list[ToolFormat] = [HERMES]  # e.g. Qwen 2.5 and Hermes templates carry "<tool_call>"
DEFAULT = HERMES


def format_for(chat_template: str | None) -> ToolFormat:
    """The format the template speaks, or the default for a template without tools."""
    for fmt in FORMATS:
        if fmt.marker and chat_template and fmt.marker in chat_template:
            return fmt
    return DEFAULT
