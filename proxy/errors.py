"""API errors, rendered by `error_middleware` as OpenAI-style JSON: {"error": {message, type, code, param}}.

ApiError
├── InvalidRequest        400 invalid_request_error (bad JSON, bad field, over a limit)
│   └── ContextLengthExceeded  400 (code context_length_exceeded)
├── AuthenticationFailed  401 authentication_error
├── CreditShort           402 insufficient_quota (code insufficient_credit: a keyed caller's credit is short)
├── PermissionDenied      403 permission_error
├── NotFound              404 invalid_request_error (unknown model, route)
├── RequestTimeout        408 invalid_request_error (the body arrived too slowly)
├── PayloadTooLarge       413 invalid_request_error
├── RateLimited           429 rate_limit_error
├── UpstreamFailed        502 api_error (every candidate failed)
├── UpstreamUnavailable   503 api_error
└── UpstreamTimeout       504 api_error
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ApiError",
    "AuthenticationFailed",
    "ContextLengthExceeded",
    "CreditShort",
    "InvalidRequest",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "RequestTimeout",
    "UpstreamFailed",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]


class ApiError(Exception):
    status: ClassVar[int] = 500
    error_type: ClassVar[str] = "api_error"
    default_code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "code": self.code,
                "param": self.param,
            }
        }


class InvalidRequest(ApiError):
    status = 400
    error_type = "invalid_request_error"
    default_code = "invalid_request"


class ContextLengthExceeded(InvalidRequest):
    default_code = "context_length_exceeded"


class AuthenticationFailed(ApiError):
    status = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"


class CreditShort(ApiError):
    """A keyed caller's credit does not cover the quote. OpenAI's shape (the openai SDK shows `message`);
    the x402 offer of the shortfall rides in the PAYMENT-REQUIRED header, where paying clients read it."""

    status = 402
    error_type = "insufficient_quota"
    default_code = "insufficient_credit"


class PermissionDenied(ApiError):
    status = 403
    error_type = "permission_error"
    default_code = "permission_denied"


class NotFound(ApiError):
    status = 404
    error_type = "invalid_request_error"
    default_code = "not_found"


class RequestTimeout(ApiError):
    status = 408
    error_type = "invalid_request_error"
    default_code = "request_timeout"


class PayloadTooLarge(ApiError):
    status = 413
    error_type = "invalid_request_error"
    default_code = "request_too_large"


class RateLimited(ApiError):
    status = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class UpstreamFailed(ApiError):
    status = 502
    default_code = "upstream_error"


class UpstreamUnavailable(ApiError):
    status = 503
    default_code = "upstream_unavailable"


class UpstreamTimeout(ApiError):
    status = 504
    default_code = "upstream_timeout"
