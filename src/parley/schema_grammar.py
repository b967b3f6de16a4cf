"""A JSON schema as the GBNF grammar that enforces it while decoding: one check for requests
(`response_format`) and profiles (`json_schema`)."""

from __future__ import annotations

import json
from typing import Any


class SchemaInvalid(ValueError):
    """Not a valid JSON schema (Draft 2020-12)."""


class SchemaUnenforceable(ValueError):
    """A valid schema the grammar converter cannot express."""


def schema_grammar(schema: dict[str, Any]) -> str:
    from jsonschema import Draft202012Validator, SchemaError
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise SchemaInvalid(exc.message) from exc
    try:
        return json_schema_to_gbnf(json.dumps(schema))
    except (ValueError, KeyError, TypeError, NotImplementedError, RecursionError) as exc:
        raise SchemaUnenforceable(str(exc)) from exc
