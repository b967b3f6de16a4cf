"""The GBNF grammar a call must follow: the format's tags around a JSON object whose `name` is one of the
offered functions and whose `arguments` match that function's parameters schema. With `required` or a named
function it applies from the first token; with `auto` it applies lazily, from the moment the model writes the
format's opening tag (llama.cpp's lazy grammar)."""

from __future__ import annotations

import json
import re

from parley.schema_grammar import schema_grammar
from parley.tools.formats import ToolFormat
from parley.tools.spec import Tool


def calls_grammar(fmt: ToolFormat, tools: list[Tool], *, parallel: bool) -> str:
    schema = {"anyOf": [{"type": "object", "properties": {"name": {"const": t.name}, "arguments": t.parameters},
                         "required": ["name", "arguments"], "additionalProperties": False} for t in tools]}
    inner = schema_grammar(schema)
    inner = re.sub(r"^root ::=", "parley-call-json ::=", inner, flags=re.M)
    calls = 'parley-call ("\\n" parley-call)*' if parallel else "parley-call"
    return (f"root ::= {calls}\n"
            f"parley-call ::= {json.dumps(fmt.call_open + chr(10))} parley-call-json "
            f"{json.dumps(chr(10) + fmt.call_close)}\n{inner}")


def lazy_trigger(fmt: ToolFormat) -> str:
    """The pattern that switches the lazy grammar on: llama.cpp applies the grammar from the first group."""
    return r"[\s\S]*?(" + re.escape(fmt.call_open) + r")[\s\S]*"
