"""The GBNF grammar a call must follow: the format's tags around a JSON object whose `name` is one of the
offered functions and whose `arguments` match that function's parameters schema. It applies from the first
token (`required`, a named function), or under `auto` from just after the model writes the opening tag
(`after_open=True`: the grammar of the rest of the calls)."""

from __future__ import annotations

import json
import re

from parley.schema_grammar import schema_grammar
from parley.tools.formats import ToolFormat
from parley.tools.spec import Tool


def calls_grammar(fmt: ToolFormat, tools: list[Tool], *, parallel: bool, after_open: bool = False) -> str:
    schema = {"anyOf": [{"type": "object", "properties": {"name": {"const": t.name}, "arguments": t.parameters},
                         "required": ["name", "arguments"], "additionalProperties": False} for t in tools]}
    inner = schema_grammar(schema)
    inner = re.sub(r"^root ::=", "parley-call-json ::=", inner, flags=re.M)
    calls = 'parley-call ("\\n" parley-call)*' if parallel else "parley-call"
    if after_open:
        rest = json.dumps(chr(10)) + " parley-call-json " + json.dumps(chr(10) + fmt.call_close)
        calls = f'{rest} ("\\n" parley-call)*' if parallel else rest
    return (f"root ::= {calls}\n"
            f"parley-call ::= {json.dumps(fmt.call_open + chr(10))} parley-call-json "
            f"{json.dumps(chr(10) + fmt.call_close)}\n{inner}")

