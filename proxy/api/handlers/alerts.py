"""GET /v1/alerts and /v1/alerts/{alert_id}: the alert history with each alert's delivery state;
POST /v1/alerts/test: raise a `test` alert, delivered like any other (to check a receiver end to end).

Admin key only. Newest first; `limit` (1..100, default 20), `after` (the last id of the previous page) and
`kind` filter and page, as OpenAI's list endpoints do.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from aiohttp import web

from proxy.api.admin_auth import require_admin
from proxy.api.app_keys import ALERTS
from proxy.errors import InvalidRequest, NotFound
from proxy.observability.alerts import ALERTS_LISTED_MAX, AlertKind, AlertRecord

__all__ = ["alert_json", "routes"]

routes = web.RouteTableDef()
ALERTS_LISTED_DEFAULT = 20
MS_PER_S = 1000
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_ALERT_ID = re.compile(r"^alert_[0-9a-f]{32}$")


def alert_json(record: AlertRecord) -> dict[str, Any]:
    delivery = record.delivery
    return {
        "id": record.id,
        "object": "alert",
        "kind": record.kind,
        "subject": record.subject,
        "created_at": record.created_at_unix_ms // MS_PER_S,
        "payload": record.payload,
        "delivery": {
            "state": delivery.state,
            "attempts": delivery.attempts,
            "last_error": delivery.last_error,
            "endpoints": [endpoint.model_dump(mode="json") for endpoint in delivery.endpoints],
        },
    }


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", str(ALERTS_LISTED_DEFAULT))
    digits = raw.isascii() and raw.isdigit() and len(raw) <= 6
    if not digits or not 1 <= int(raw) <= ALERTS_LISTED_MAX:
        raise InvalidRequest(f"limit must be 1..{ALERTS_LISTED_MAX}", code="invalid_value", param="limit")
    return int(raw)


@routes.get("/v1/alerts")
async def list_alerts(request: web.Request) -> web.Response:
    require_admin(request)
    limit = _limit(request)
    kind = request.query.get("kind")
    if kind is not None and not _KIND.match(kind):
        raise InvalidRequest(
            "kind must be an alert kind such as spend_anomaly", code="invalid_value", param="kind"
        )
    after = request.query.get("after")
    if after is not None and not _ALERT_ID.match(after):
        raise InvalidRequest("after must be an alert id (alert_…)", code="invalid_value", param="after")
    alerts = request.app[ALERTS]
    if after is not None and await alerts.get(after) is None:
        raise NotFound(f"no alert '{after}'", code="alert_not_found", param="after")
    page = await alerts.history(kind=kind, after=after, limit=limit)
    data = [alert_json(record) for record in page.data]
    return web.json_response(
        {
            "object": "list",
            "data": data,
            "has_more": page.has_more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    )


@routes.get("/v1/alerts/{alert_id}")
async def get_alert(request: web.Request) -> web.Response:
    require_admin(request)
    alert_id = request.match_info["alert_id"]
    record = await request.app[ALERTS].get(alert_id) if _ALERT_ID.match(alert_id) else None
    if record is None:
        raise NotFound(f"no alert '{alert_id}'", code="alert_not_found")
    return web.json_response(alert_json(record))


@routes.post("/v1/alerts/test")
async def raise_test_alert(request: web.Request) -> web.Response:
    require_admin(request)
    alerts = request.app[ALERTS]
    raised = await alerts.raise_alert(
        AlertKind.TEST,
        uuid.uuid4().hex,
        "megarouter",
        {"message": "A test alert, raised through POST /v1/alerts/test."},
    )
    record = await alerts.get(raised.id)
    assert record is not None
    return web.json_response(alert_json(record), status=201)
