"""GET /v1/usage and /v1/usage/{request_id}: how each of the caller's requests was charged, and why.

Keyed (the key's wallet sees its own requests only). Each event carries tokens by kind, the prices used,
the catalog version, the quote held, the cost captured, the route taken and every attempt.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from proxy.api.app_keys import USAGE_LOG
from proxy.api.auth import require_bearer
from proxy.errors import InvalidRequest, NotFound
from proxy.serving.usage_log import USAGE_EVENTS_LISTED_MAX, UsageEvent

__all__ = ["routes", "usage_json"]

routes = web.RouteTableDef()
USAGE_EVENTS_LISTED_DEFAULT = 50


def usage_json(event: UsageEvent) -> dict[str, Any]:
    return {"object": "usage_event", **event.model_dump(mode="json")}


@routes.get("/v1/usage")
async def list_usage(request: web.Request) -> web.Response:
    principal = await require_bearer(request)
    raw_limit = request.query.get("limit", str(USAGE_EVENTS_LISTED_DEFAULT))
    # isdigit() alone admits "²" and "٣", which int() then refuses (a 500); the length bounds int()'s work.
    digits = raw_limit.isascii() and raw_limit.isdigit() and len(raw_limit) <= 6
    if not digits or not 1 <= int(raw_limit) <= USAGE_EVENTS_LISTED_MAX:
        raise InvalidRequest(
            f"limit must be 1..{USAGE_EVENTS_LISTED_MAX}", code="invalid_value", param="limit"
        )
    events = await request.app[USAGE_LOG].recent(payer_account=principal.credit_account, limit=int(raw_limit))
    return web.json_response({"object": "list", "data": [usage_json(event) for event in events]})


@routes.get("/v1/usage/{request_id}")
async def get_usage(request: web.Request) -> web.Response:
    principal = await require_bearer(request)
    request_id = request.match_info["request_id"]
    events = [
        event
        for event in await request.app[USAGE_LOG].for_request(request_id)
        if event.payer_account == principal.credit_account
    ]
    if not events:
        raise NotFound(f"no usage of yours for request '{request_id}'", code="usage_not_found")
    return web.json_response({"object": "list", "data": [usage_json(event) for event in events]})
