"""The OpenAPI description as the server behaves: every operation documents the OpenAI-style error statuses it
can answer with (the `ErrorResponse` envelope), not FastAPI's 422, which Parley never sends (validation errors
are 400s); streaming endpoints document their `text/event-stream` answer too. Schemathesis checks responses
against this (tests/server/test_schemathesis.py)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERRORS = {
    "400": "Invalid request (OpenAI's error envelope; `param` names the field)",
    "401": "No key, or a bad, revoked or expired one",
    "403": "The key lacks the scope",
    "404": "Not found",
    "413": "The body is larger than the server takes",
    "429": "A rate limit (`Retry-After` says when to retry)",
    "503": "Not ready, overloaded, shutting down, or a part it needs is unavailable (`Retry-After` when known)",
}
STREAMING = ("/v1/chat/completions", "/v1/completions")


def document_errors(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        error = {"$ref": "#/components/schemas/ErrorResponse"}
        if "ErrorResponse" not in components:
            from parley.protocol.openai import ErrorResponse

            model = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(model.pop("$defs", {}))
            components["ErrorResponse"] = model
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                for status, description in ERRORS.items():
                    responses.setdefault(status, {"description": description,
                                                  "content": {"application/json": {"schema": error}}})  # fmt: skip
                if path == "/metrics" and "200" in responses:  # Prometheus' text format
                    responses["200"]["content"] = {"text/plain": {"schema": {"type": "string"}}}
                if path in STREAMING and "200" in responses:
                    content = responses["200"].setdefault("content", {})
                    content["text/event-stream"] = {"schema": {"type": "string", "description": "with `stream: true`: "
                                                    "`data: {chunk}` events, then `data: [DONE]`"}}  # fmt: skip
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
