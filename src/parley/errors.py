"""The error hierarchy. Each error knows its HTTP status and OpenAI error type; one handler renders them."""

from __future__ import annotations


class ParleyError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def envelope(self) -> dict[str, object]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class InvalidRequest(ParleyError):
    status = 400
    type = "invalid_request_error"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class ContentFiltered(InvalidRequest):
    """A prompt the input guard blocked (Azure OpenAI's convention: 400 with code content_filter)."""

    code = "content_filter"


class AuthenticationFailed(ParleyError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(ParleyError):
    status = 403
    type = "invalid_request_error"
    code = "insufficient_permissions"


class RateLimited(ParleyError):
    status = 429
    type = "requests"  # OpenAI names the exhausted limit here: "requests" or "tokens"
    code = "rate_limit_exceeded"


class NotFound(ParleyError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class ProfileNotFound(NotFound):
    code = "profile_not_found"


class MethodNotAllowed(ParleyError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class PayloadTooLarge(ParleyError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class ServiceUnavailable(ParleyError):
    """A part of the server cannot take the request now. Clients should retry."""

    status = 503
    type = "server_error"
    code = "service_unavailable"


class EngineUnavailable(ServiceUnavailable):
    """The engine cannot take the request now (loading, or its queue is full)."""

    code = "engine_unavailable"


class GuardsUnavailable(ServiceUnavailable):
    """The guards are still loading, or failed to load: no request is served unguarded."""

    code = "guards_unavailable"


class EngineOverloaded(EngineUnavailable):
    code = "server_overloaded"


class EngineFailed(ParleyError):
    status = 500
    type = "server_error"
    code = "engine_error"
