"""Errors of the routing core.

    RoutingError                 root: anything routing raises on purpose
    ├── InvalidRoute             the caller's `route` object or model name cannot be used (HTTP 400)
    ├── NoRouteCandidate         no deployment meets the hard requirements (HTTP 400, reasons attached)
    └── HealthStoreUnavailable   the shared health store (Redis) did not answer in time or at all

Each class carries a stable `code`; only the proxy's error middleware maps them to HTTP.
"""

from __future__ import annotations

__all__ = ["HealthStoreUnavailable", "InvalidRoute", "NoRouteCandidate", "RoutingError"]


class RoutingError(Exception):
    """Root of the routing errors."""

    code = "routing_error"


class InvalidRoute(RoutingError):
    """The `route` object or the requested model is malformed or names something unknown."""

    code = "invalid_route"

    def __init__(self, message: str, *, param: str = "route") -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class NoRouteCandidate(RoutingError):
    """Every deployment was excluded by a hard requirement; `reasons` says how many fell to each."""

    code = "no_route_candidate"

    def __init__(self, message: str, *, reasons: tuple[str, ...]) -> None:
        super().__init__(message)
        self.message = message
        self.reasons = reasons


class HealthStoreUnavailable(RoutingError):
    """The health store failed; callers may route without health rather than refuse the request."""

    code = "health_store_unavailable"
