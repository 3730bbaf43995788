"""GET /metrics: the app's Prometheus metrics (text exposition format).

Open by default; with `metrics_bearer_token` set, only to `Authorization: Bearer <token>`; absent (404)
when `metrics_enabled` is false.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from proxy.api.app_keys import METRICS, SETTINGS
from proxy.errors import AuthenticationFailed, NotFound
from proxy.observability.metrics import METRICS_CONTENT_TYPE

__all__ = ["routes"]

routes = web.RouteTableDef()


def _authorize(request: web.Request) -> None:
    token = request.app[SETTINGS].metrics_bearer_token
    if token is None:
        return
    expected = f"Bearer {token.get_secret_value()}".encode()
    given = request.headers.get("Authorization", "").encode()
    if not hmac.compare_digest(given, expected):
        raise AuthenticationFailed(
            "GET /metrics requires the metrics bearer token", code="invalid_metrics_token"
        )


@routes.get("/metrics")
async def get_metrics(request: web.Request) -> web.Response:
    metrics = request.app.get(METRICS)
    if metrics is None:
        raise NotFound("metrics are disabled on this server", code="metrics_disabled")
    _authorize(request)
    await metrics.refresh()
    return web.Response(body=metrics.render(), headers={"Content-Type": METRICS_CONTENT_TYPE})
