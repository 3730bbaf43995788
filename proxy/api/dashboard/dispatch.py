"""Asks another route of this same app for JSON, in process, as the signed-in operator.

The dashboard reads analytics and alerts through their public API (`GET /v1/analytics`, `GET /v1/alerts`)
rather than through their internals, so it sees exactly what a caller with the admin key sees and keeps
working when those modules change. A route that is not there (a deployment without the feature) answers
None, and the dashboard hides or empties the panel.

The sub-request is the dashboard request cloned with another URL and only the admin key's Authorization
header (never the browser's cookie or headers), resolved by the app's router and run by its handler;
aiohttp has no public call for this, so it sets the match info the way `Application._handle` does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from proxy.errors import ApiError, NotFound

__all__ = ["route_exists", "sub_request_json"]

_RESPONSE_BYTES_MAX = 8 * 1024 * 1024


def route_exists(app: web.Application, path: str) -> bool:
    """True when some GET route of `app` serves exactly `path` (a plain resource)."""
    return any(
        resource.canonical == path and any(route.method == "GET" for route in resource)
        for resource in app.router.resources()
    )


async def sub_request_json(
    request: web.Request, path: str, *, query: Mapping[str, str], bearer: str | None
) -> dict[str, Any] | None:
    """The JSON body `GET path?query` answers with status 200, or None when no route serves it (404).
    Any other error status raises the route's own ApiError, to be shown as it is."""
    assert path.startswith("/v1/")
    if not route_exists(request.app, path):
        return None
    headers = CIMultiDict[str]({"Accept": "application/json"})
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    sub = request.clone(method="GET", rel_url=URL(path).with_query(dict(query)), headers=headers)
    match_info = await request.app.router.resolve(sub)
    match_info.add_app(request.app)
    match_info.freeze()
    sub._match_info = match_info
    try:
        response = await match_info.handler(sub)
    except (NotFound, web.HTTPNotFound):
        return None
    assert isinstance(response, web.Response)
    body = response.body
    assert isinstance(body, bytes)
    assert len(body) <= _RESPONSE_BYTES_MAX
    if response.status == 404:
        return None
    if response.status != 200:
        raise ApiError(f"GET {path} answered {response.status}", code="dashboard_source_failed")
    parsed = json.loads(body)
    assert isinstance(parsed, dict)
    return parsed
