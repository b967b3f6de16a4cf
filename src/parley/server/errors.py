"""Every failure leaves as OpenAI's error envelope with the right status; never a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from parley.errors import InvalidRequest, MethodNotAllowed, NotFound, ParleyError

log = logging.getLogger(__name__)

UNION_TAGS = {"str", "int", "float", "bool", "none"}


def error_response(exc: ParleyError) -> JSONResponse:
    return JSONResponse(exc.envelope(), status_code=exc.status, headers=exc.headers)


def _param(loc: tuple[object, ...]) -> str | None:
    """('body', 'messages', 0, 'role') → 'messages[0].role', as OpenAI names parameters."""
    parts = [p for p in loc if p != "body"]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif not out:
            out = str(p)
        elif str(p) in UNION_TAGS or "[" in str(p) or "-" in str(p):  # pydantic's union member tags
            continue
        else:
            out += f".{p}"
    return out or None


def validation_error(exc: RequestValidationError) -> InvalidRequest:
    errors = exc.errors()
    first = errors[0] if errors else {"msg": "Invalid request.", "loc": ()}
    if first.get("type") == "json_invalid":
        return InvalidRequest(f"We could not parse the JSON body of your request: {first['msg']}")
    if first.get("type") == "invalid_unicode":
        details = first.get("ctx")
        where = details.get("param") if isinstance(details, dict) else None
        return InvalidRequest(f"Invalid value for '{where}': {first['msg']}.", param=where, code="invalid_value")
    param = _param(tuple(first.get("loc", ())))
    if first.get("type") == "missing":
        return InvalidRequest(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
    message = f"Invalid value for '{param}': {first['msg']}." if param else f"Invalid request: {first['msg']}."
    return InvalidRequest(message, param=param, code="invalid_value")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ParleyError)
    async def parley_error(request: Request, exc: ParleyError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            err: ParleyError = NotFound(f"Unknown path: {request.method} {request.url.path}")
        elif exc.status_code == 405:
            err = MethodNotAllowed(f"Method {request.method} is not allowed on {request.url.path}.")
        else:
            err = ParleyError(str(exc.detail))
            err.status = exc.status_code
            err.type = "invalid_request_error" if exc.status_code < 500 else "server_error"
        err.headers.update(exc.headers or {})
        return error_response(err)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(ParleyError("The server had an error while processing your request."))
