"""Generated text → content and tool calls, as the text streams. Content before a call streams as it comes
(holding back only what could be the start of the opening tag); a call is given out when its closing tag
arrives: first a fragment with its id and name, then its arguments as one JSON string. Whole answers go
through the same parser, so streamed and whole calls are the same by construction."""

from __future__ import annotations

import json
import uuid

import jsonschema

from parley.engines.base import ToolCallFragment
from parley.tools.formats import ToolFormat


class CallParser:
    """`schemas`: the offered functions' parameter schemas; a call to another function, or with arguments that
    do not validate, is dropped and counted in `failed` (a grammar makes that impossible where one applies)."""

    def __init__(self, fmt: ToolFormat, schemas: dict[str, dict] | None = None) -> None:
        self.fmt = fmt
        self.schemas = schemas
        self.buffer = ""
        self.in_call = False
        self.calls = 0
        self.failed: list[str] = []  # blocks that did not parse (only possible without a grammar)

    def feed(self, text: str) -> tuple[str, list[ToolCallFragment]]:
        self.buffer += text
        out, fragments = [], []
        while True:
            if not self.in_call:
                at = self.buffer.find(self.fmt.call_open)
                if at < 0:
                    keep = _partial_suffix(self.buffer, self.fmt.call_open)
                    if self.calls and not self.buffer[: len(self.buffer) - keep].strip():
                        break  # after a call, whitespace may separate it from the next: hold it
                    out.append(self.buffer[: len(self.buffer) - keep])
                    self.buffer = self.buffer[len(self.buffer) - keep :]
                    break
                before = self.buffer[:at]
                out.append(before if not self.calls else before.strip())  # between calls: only the separator
                self.buffer, self.in_call = self.buffer[at + len(self.fmt.call_open) :], True
            else:
                end = self.buffer.find(self.fmt.call_close)
                if end < 0:
                    break
                body, self.buffer = self.buffer[:end], self.buffer[end + len(self.fmt.call_close) :]
                self.in_call = False
                fragments += self._call(body)
        return "".join(out), fragments

    def finish(self) -> tuple[str, list[ToolCallFragment]]:
        """The end of the text: what was held back is content (an unfinished call is dropped, and counted)."""
        rest, self.buffer = self.buffer, ""
        if self.in_call:
            self.failed.append(rest)
            return "", []
        return (rest if rest.strip() or not self.calls else ""), []

    def _call(self, body: str) -> list[ToolCallFragment]:
        try:
            call = json.loads(body)
            name, arguments = call["name"], call.get("arguments", {})
            if not isinstance(name, str) or not isinstance(arguments, dict):
                raise ValueError("name and arguments")
            if self.schemas is not None:
                jsonschema.validate(arguments, self.schemas[name])
        except (ValueError, KeyError, TypeError, jsonschema.ValidationError):
            self.failed.append(body)
            return []
        index = self.calls
        self.calls += 1
        call_id = f"call_{uuid.uuid4().hex[:24]}"
        return [ToolCallFragment(index, call_id, name, ""),
                ToolCallFragment(index, None, None, json.dumps(arguments, ensure_ascii=False))]  # fmt: skip


def _partial_suffix(text: str, tag: str) -> int:
    """How many characters at the end of `text` could begin `tag`."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0
