"""The tool-call parser: content and calls split as text streams in any pieces; a call that does not parse, names
a function not offered, or has arguments that do not validate is dropped and counted (under `auto` no grammar
applies, so only valid calls may leave)."""

from __future__ import annotations

import json

from parley.tools.formats import HERMES
from parley.tools.parser import CallParser

SCHEMAS = {"add": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                   "required": ["a", "b"]}}  # fmt: skip


def run(text: str, piece: int) -> tuple[str, list[tuple[str, dict]], int]:
    parser = CallParser(HERMES, SCHEMAS)
    content, fragments = "", []
    for i in range(0, len(text), piece):
        out, more = parser.feed(text[i : i + piece])
        content, fragments = content + out, fragments + more
    rest, more = parser.finish()
    content, fragments = content + rest, fragments + more
    calls: dict[int, list] = {}
    for f in fragments:
        call = calls.setdefault(f.index, [None, ""])
        call[0] = call[0] or f.name
        call[1] += f.arguments
    return content, [(n, json.loads(a)) for n, a in calls.values()], len(parser.failed)


def test_content_and_calls_split_the_same_whatever_the_pieces():
    text = ('Let me add. <tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call>\n'
            '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 1}}\n</tool_call>')  # fmt: skip
    for piece in (1, 2, 3, 7, 1000):
        assert run(text, piece) == ("Let me add. ", [("add", {"a": 2, "b": 3}), ("add", {"a": 1, "b": 1})], 0)


def test_invalid_calls_are_dropped_and_counted():
    bad = ['<tool_call>\n{"name": "add", "arguments": {"a": "two"}}\n</tool_call>',  # does not validate
           '<tool_call>\n{"name": "rm", "arguments": {}}\n</tool_call>',  # not offered
           "<tool_call></tool_call>",  # not JSON
           '<tool_call>\n{"name": "add", "arguments": {"a": 1']  # never closed  # fmt: skip
    for text in bad:
        content, calls, failed = run("Hi " + text, 4)
        assert calls == [] and failed == 1 and content == "Hi "


def test_text_that_only_looks_like_a_tag_is_content():
    assert run("a <tool x> and <tool_cal", 3) == ("a <tool x> and <tool_cal", [], 0)
