"""Maps a provider failure to the API error the caller sees, keeping 429 and its Retry-After."""

from __future__ import annotations

from proxy.errors import (
    ApiError,
    ContextLengthExceeded,
    InvalidRequest,
    RateLimited,
    UpstreamFailed,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from proxy.providers.errors import UpstreamError

__all__ = ["api_error_for_upstream"]


def api_error_for_upstream(error: UpstreamError, *, headers: dict[str, str] | None = None) -> ApiError:
    headers = dict(headers or {})
    message = f"upstream {error.kind}: {error.message}"
    if error.kind == "rate_limited":
        if error.retry_after_s is not None:
            headers["Retry-After"] = str(max(1, round(error.retry_after_s)))
        return RateLimited(message, code="upstream_rate_limited", headers=headers)
    if error.kind == "timeout":
        return UpstreamTimeout(message, headers=headers)
    if error.kind == "context_length":
        return ContextLengthExceeded(message, param="messages", headers=headers)
    if error.kind == "bad_request":
        return InvalidRequest(message, code="upstream_rejected_request", headers=headers)
    if error.kind in ("server_error", "connection", "overloaded"):
        return UpstreamUnavailable(message, headers=headers)
    return UpstreamFailed(message, headers=headers)
