"""Step `response_format`: JSON output (`json_object`, `json_schema`) compiled to a grammar for constrained
decoding, and the prompt asked for JSON too (small models follow the grammar better when asked)."""

from __future__ import annotations

import json
from typing import Any

from llama_cpp.llama_grammar import JSON_GBNF

from parley.errors import InvalidRequest
from parley.pipeline.context import TurnContext
from parley.pipeline.stage import BaseStep
from parley.pipeline.turn import Message, Turn
from parley.protocol.openai import ChatCompletionRequest
from parley.schema_grammar import SchemaInvalid, SchemaUnenforceable, schema_grammar

JSON_INSTRUCTION = "Respond only with a JSON object."


def json_instruction(schema: dict[str, Any] | None) -> str:
    """What the prompt says of a JSON answer (small models follow the grammar better when also asked)."""
    if schema is None:
        return JSON_INSTRUCTION
    return f"{JSON_INSTRUCTION} It must match this JSON schema: " + json.dumps(schema, separators=(",", ":"))


class ResponseFormat(BaseStep):
    name = "response_format"

    def applies(self, turn: Turn, ctx: TurnContext) -> bool:
        req = turn.request
        return isinstance(req, ChatCompletionRequest) and req.response_format is not None

    def run(self, turn: Turn, ctx: TurnContext) -> None:
        req = turn.request
        assert isinstance(req, ChatCompletionRequest) and req.response_format is not None
        fmt = req.response_format
        turn.note(self.name, type=fmt.type)
        if fmt.type == "text":
            return
        if not ctx.engine_required.info.capabilities.grammar:
            raise InvalidRequest(
                f"The model `{turn.model}` cannot constrain its output to JSON.", param="response_format"
            )
        turn.response_format = fmt.type
        if fmt.type == "json_object":
            turn.grammar, turn.json_schema = JSON_GBNF, None  # the request's format, not a profile's schema
        else:
            if fmt.json_schema is None or not fmt.json_schema.schema_:
                raise InvalidRequest("json_schema.schema is required.", param="response_format.json_schema")
            schema = fmt.json_schema.schema_
            try:
                turn.grammar = schema_grammar(schema)
            except SchemaInvalid as exc:
                raise InvalidRequest(f"Invalid JSON schema: {exc}", param="response_format") from exc
            except SchemaUnenforceable as exc:
                raise InvalidRequest(f"This JSON schema cannot be enforced: {exc}", param="response_format") from exc
            turn.json_schema = schema
        instruction = json_instruction(turn.json_schema)
        if turn.messages and turn.messages[0].role == "system":
            turn.messages[0].content = f"{turn.messages[0].content}\n\n{instruction}".strip()
        else:
            turn.messages.insert(0, Message("system", instruction))
