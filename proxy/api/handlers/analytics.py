"""GET /v1/analytics: spend, tokens, requests, errors and latency percentiles over hour or day buckets,
grouped by up to three of model, provider, strategy, key, wallet, org, unit and member.

Answered from the hourly roll-ups (proxy/serving/analytics.py). Who sees what: the operator's admin token
sees every row; a wallet's API key sees its wallet's account (every key of that wallet) and, where the
wallet's org role allows reading the org's spend (owner, admin, billing, viewer on the root), every org key
request of that organization. An org key is refused (403 wallet_key_required), as on the other account
endpoints: a developer's service key must not read its whole organization's spend.
"""

from __future__ import annotations

import hmac

from aiohttp import web
from pydantic import ValidationError

from proxy.api.app_keys import DB_ENGINE, ORGANIZATIONS, SETTINGS
from proxy.api.auth import require_bearer
from proxy.errors import InvalidRequest
from proxy.governance.roles import Action
from proxy.serving.analytics import (
    DIMENSIONS,
    GROUP_BY_MAX,
    AnalyticsQuery,
    AnalyticsScope,
    AnalyticsTooLarge,
    run_analytics,
)

__all__ = ["analytics_scope", "parse_analytics_query", "routes"]

routes = web.RouteTableDef()
_PARAMETERS = frozenset({"start", "end", "bucket", "group_by", "model", "provider", "key"})
_INTEGER_DIGITS_MAX = 12  # Unix seconds until the year 33658; bounds int()'s work on hostile input.


def _is_admin(request: web.Request) -> bool:
    token = request.app[SETTINGS].admin_token
    if token is None:
        return False
    expected = f"Bearer {token.get_secret_value()}".encode()
    return hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected)


async def analytics_scope(request: web.Request) -> AnalyticsScope:
    """The rows the caller may see: everything for the operator; a wallet key's own account, ORed with the
    organizations whose spend its wallet's role may read."""
    if _is_admin(request):
        return AnalyticsScope(everything=True)
    principal = await require_bearer(request)
    organizations = request.app.get(ORGANIZATIONS)
    org_ids = (
        []
        if organizations is None
        else await organizations.orgs_allowing(principal.wallet, Action.SPEND_READ)
    )
    return AnalyticsScope(
        payer_accounts=frozenset({principal.credit_account}), org_ids=frozenset(str(org) for org in org_ids)
    )


def _integer(request: web.Request, name: str, *, required: bool) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        if required:
            raise InvalidRequest(f"'{name}' is required (unix seconds)", code="missing_parameter", param=name)
        return None
    # isdigit() alone admits "²" and "٣", which int() then refuses.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= _INTEGER_DIGITS_MAX):
        raise InvalidRequest(f"'{name}' must be a non-negative integer", code="invalid_value", param=name)
    return int(raw)


def _group_by(request: web.Request) -> tuple[str, ...]:
    raw = request.query.get("group_by", "")
    names = tuple(part.strip() for part in raw.split(",")) if raw else ()
    for name in names:
        if name not in DIMENSIONS:
            raise InvalidRequest(
                f"unknown group_by dimension '{name[:40]}'; one of: {', '.join(DIMENSIONS)}",
                code="invalid_value",
                param="group_by",
            )
    if len(names) > GROUP_BY_MAX:
        raise InvalidRequest(
            f"group_by takes at most {GROUP_BY_MAX} dimensions", code="invalid_value", param="group_by"
        )
    if len(set(names)) != len(names):
        raise InvalidRequest("group_by names a dimension twice", code="invalid_value", param="group_by")
    return names


def parse_analytics_query(request: web.Request) -> AnalyticsQuery:
    """The query string as an AnalyticsQuery; an OpenAI-style 400 naming the parameter otherwise."""
    for name in request.query:
        if name not in _PARAMETERS:
            raise InvalidRequest(
                f"unknown parameter '{name[:40]}'", code="unknown_parameter", param=name[:40]
            )
    if len(request.query) != len(set(request.query)):
        raise InvalidRequest("a parameter is given twice", code="invalid_value")
    bucket = request.query.get("bucket", "hour")
    if bucket not in ("hour", "day"):
        raise InvalidRequest("bucket must be 'hour' or 'day'", code="invalid_value", param="bucket")
    try:
        return AnalyticsQuery.model_validate(
            {
                "start_unix_s": _integer(request, "start", required=True),
                "end_unix_s": _integer(request, "end", required=True),
                "bucket": bucket,
                "group_by": _group_by(request),
                "model": request.query.get("model"),
                "provider": request.query.get("provider"),
                "api_key_id": _integer(request, "key", required=False),
            }
        )
    except ValidationError as error:
        issue = error.errors()[0]
        location = str(issue["loc"][0]) if issue["loc"] else None
        param = {"start_unix_s": "start", "end_unix_s": "end", "api_key_id": "key"}.get(
            location or "", location
        )
        message = issue["msg"].removeprefix("Value error, ")
        raise InvalidRequest(f"{param or 'query'}: {message}", code="invalid_value", param=param) from error


@routes.get("/v1/analytics")
async def get_analytics(request: web.Request) -> web.Response:
    scope = await analytics_scope(request)
    query = parse_analytics_query(request)
    try:
        report = await run_analytics(request.app[DB_ENGINE], query, scope)
    except AnalyticsTooLarge as error:
        raise InvalidRequest(
            f"the answer has {error}: narrow the range, group_by or filters", code="result_too_large"
        ) from error
    return web.json_response(report)
