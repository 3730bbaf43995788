"""Errors of the provider adapters.

    ProviderError             root: anything an adapter raises on purpose
    ├── UpstreamError         the upstream failed or refused: `kind` says how, `failover_allowed` what next
    └── UnsupportedRequest    the request uses something this adapter cannot translate (caller error)

Every adapter maps every failure of the upstream (HTTP status, provider error body, timeout, broken
connection, garbage body, stream cut short) to one `UpstreamError`, so the router needs one except clause.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "FAILOVER_KINDS",
    "ProviderError",
    "UnsupportedRequest",
    "UpstreamError",
    "UpstreamErrorKind",
]

UpstreamErrorKind = Literal[
    "rate_limited",  # 429: the upstream wants us to slow down; `retry_after_s` when it said so.
    "overloaded",  # Anthropic 529 and similar "try later" answers.
    "server_error",  # 5xx.
    "timeout",  # no answer (or no next stream event) within our bound.
    "connection",  # refused, reset, DNS: no HTTP answer at all.
    "invalid_response",  # 2xx with a body we cannot parse: the upstream is broken, not the caller.
    "stream_interrupted",  # a stream ended without its final event.
    "bad_request",  # 400/422: the caller's request is wrong; another provider would refuse it too.
    "auth",  # 401: the upstream refused our credentials.
    "permission",  # 403.
    "not_found",  # 404: unknown model or path.
    "payload_too_large",  # 413.
    "context_length",  # the prompt (plus max tokens) does not fit the model's context window.
]

# Kinds where another deployment may well succeed. Caller errors are not among them: retrying elsewhere
# would only repeat the refusal and spend time. Whether failover is still possible after bytes reached the
# client is the router's decision, not ours.
FAILOVER_KINDS: frozenset[str] = frozenset(
    {
        "rate_limited",
        "overloaded",
        "server_error",
        "timeout",
        "connection",
        "invalid_response",
        "stream_interrupted",
    }
)
assert set(get_args(UpstreamErrorKind)) >= FAILOVER_KINDS


class ProviderError(Exception):
    """Root of the adapter errors."""

    code = "provider_error"


class UpstreamError(ProviderError):
    """The upstream failed or refused. `status` is its HTTP status (None when there was no answer)."""

    code = "upstream_error"

    def __init__(
        self,
        kind: UpstreamErrorKind,
        message: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
        provider_code: str | None = None,
    ) -> None:
        assert kind in get_args(UpstreamErrorKind)
        assert retry_after_s is None or retry_after_s >= 0
        super().__init__(f"{kind}: {message}")
        self.kind: UpstreamErrorKind = kind
        self.message = message
        self.status = status
        self.retry_after_s = retry_after_s
        self.provider_code = provider_code  # The provider's own error code or type, for logs.

    @property
    def failover_allowed(self) -> bool:
        return self.kind in FAILOVER_KINDS

    def __repr__(self) -> str:
        return (
            f"UpstreamError(kind={self.kind!r}, status={self.status!r}, "
            f"retry_after_s={self.retry_after_s!r}, message={self.message!r})"
        )


class UnsupportedRequest(ProviderError):
    """The request uses a feature this adapter cannot translate (e.g. audio input to Anthropic)."""

    code = "unsupported_request"
