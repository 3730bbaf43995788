"""/dashboard/api/*: the JSON the dashboard's pages draw, for the signed-in principal only.

The operator sees everything; a wallet sees its own requests, credit and analytics, and the deployments'
health (public anyway at /v1/deployments). Analytics come from the roll-ups (proxy.serving.analytics) under
the principal's scope, as GET /v1/analytics answers them. Alerts are read through their /v1 route with the
admin token (see dispatch.py), so the dashboard shows what that module serves, if any; budgets are every
organization's, with their current period's spend, read from the org store.
Amounts stay integers in nano-USD, with exact decimal USD strings beside them for display.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from ledger import chart
from ledger.reconcile import list_runs, run_breaks
from proxy.accounts.credits import credit_view, nano_usd_to_usd_string
from proxy.api.app_keys import (
    CATALOG,
    DB_ENGINE,
    HEALTH_TRACKER,
    LEDGER,
    METRICS,
    ORG_BUDGET_LEDGER,
    ORGANIZATIONS,
    SETTINGS,
    UPSTREAMS,
    USAGE_LOG,
)
from proxy.api.dashboard.access import require_operator, require_principal, secure_headers
from proxy.api.dashboard.dispatch import route_exists, sub_request_json
from proxy.db.tables import account_api_keys
from proxy.errors import InvalidRequest, NotFound
from proxy.serving.analytics import AnalyticsQuery, AnalyticsScope, AnalyticsTooLarge, run_analytics

__all__ = ["ALERTS_PATH", "routes"]

routes = web.RouteTableDef()
ALERTS_PATH = "/v1/alerts"
_USAGE_LIMIT_MAX = 500
_CREDIT_POINTS_MAX = 500
_BALANCES_SHOWN_MAX = 200
_BREAKS_SHOWN_MAX = 50
_ALERTS_SHOWN_MAX = 50
# Only these families of /metrics are summarized: state, not money (spend comes from analytics as integers).
_METRIC_FAMILIES = (
    "megarouter_open_holds",
    "megarouter_open_holds_nano_usd",
    "megarouter_settlement_intents",
    "megarouter_failovers",
    "megarouter_deployment_breaker_state",
    "megarouter_requests",
)


def _json(payload: dict[str, Any]) -> web.Response:
    response = web.json_response(payload)
    secure_headers(response)
    return response


def _admin_key(request: web.Request) -> str | None:
    key = request.app[SETTINGS].admin_token
    return None if key is None else key.get_secret_value()


def _unix_s(request: web.Request, name: str) -> str:
    raw = request.query.get(name, "")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 12):
        raise InvalidRequest(f"{name} must be a unix time in seconds", code="invalid_value", param=name)
    return raw


@routes.get("/dashboard/api/session")
async def session(request: web.Request) -> web.Response:
    principal = require_principal(request)
    app = request.app
    admin = _admin_key(request) is not None
    return _json(
        {
            "object": "dashboard_session",
            **principal.model_dump(),
            "features": {
                "alerts": admin and route_exists(app, ALERTS_PATH),
                "budgets": principal.kind == "operator" and ORGANIZATIONS in app,
                "metrics": METRICS in app,
            },
        }
    )


@routes.get("/dashboard/api/analytics")
async def analytics(request: web.Request) -> web.Response:
    """`start`, `end`, `bucket`, `group_by` as GET /v1/analytics takes them, over what the principal may see:
    everything for the operator, a wallet's own credit account for the wallet."""
    principal = require_principal(request)
    try:
        query = AnalyticsQuery.model_validate(
            {
                "start_unix_s": int(_unix_s(request, "start")),
                "end_unix_s": int(_unix_s(request, "end")),
                "bucket": request.query.get("bucket", "hour"),
                "group_by": tuple(part for part in request.query.get("group_by", "model").split(",") if part),
            }
        )
    except ValidationError as error:
        issue = error.errors()[0]
        location = str(issue["loc"][0]) if issue["loc"] else ""
        param = {"start_unix_s": "start", "end_unix_s": "end"}.get(location, location) or None
        message = issue["msg"].removeprefix("Value error, ")
        raise InvalidRequest(f"{param or 'query'}: {message}", code="invalid_value", param=param) from error
    if principal.kind == "operator":
        scope = AnalyticsScope(everything=True)
    else:
        assert principal.wallet is not None
        scope = AnalyticsScope(payer_accounts=frozenset({chart.credit_wallet(principal.wallet)}))
    try:
        report = await run_analytics(request.app[DB_ENGINE], query, scope)
    except AnalyticsTooLarge as error:
        raise InvalidRequest(
            f"the answer has {error}: narrow the range or the grouping", code="result_too_large"
        ) from error
    document: dict[str, Any] = dict(report)
    key_names = await _key_names(request, document["data"]) if "key" in query.group_by else {}
    return _json(document | {"key_names": key_names})


async def _key_names(request: web.Request, rows: list[Any]) -> dict[str, str]:
    """Labels of the key ids in `rows` (its name and shown prefix; never the key), for the chart legend."""
    ids = {
        row["group"]["key"]
        for row in rows
        if isinstance(row, dict)
        and isinstance(row.get("group"), dict)
        and isinstance(row["group"].get("key"), int)
    }
    if not ids:
        return {}
    table = account_api_keys
    statement = sa.select(table.c.id, table.c.name, table.c.key_prefix).where(table.c.id.in_(sorted(ids)))
    async with request.app[DB_ENGINE].connect() as connection:
        found = (await connection.execute(statement)).all()
    return {str(key_id): f"{name} ({prefix}…)" if name else f"{prefix}…" for key_id, name, prefix in found}


@routes.get("/dashboard/api/usage")
async def usage(request: web.Request) -> web.Response:
    """The newest requests (the operator's: everyone's; a wallet's: its own), for the per-request charts."""
    principal = require_principal(request)
    payer = None if principal.kind == "operator" else chart.credit_wallet(principal.wallet or "")
    events = await request.app[USAGE_LOG].recent(payer_account=payer, limit=_USAGE_LIMIT_MAX)
    data = [
        {
            "request_id": event.request_id,
            "outcome": event.outcome,
            "model": event.model_id,
            "provider": event.provider,
            "strategy": event.strategy,
            "attempts": len(event.attempts),
            "input_tokens": event.input_tokens,
            "output_tokens": event.output_tokens,
            "cost_nano_usd": event.cost_nano_usd,
            "cost_usd": nano_usd_to_usd_string(event.cost_nano_usd),
            "latency_ms": event.latency_ms,
            "ttft_ms": event.time_to_first_token_ms,
            "api_key_id": event.api_key_id,
        }
        for event in events
    ]
    return _json({"object": "list", "data": data})


@routes.get("/dashboard/api/deployments")
async def deployments(request: web.Request) -> web.Response:
    require_principal(request)
    app = request.app
    providers = app[UPSTREAMS].providers
    models = [model for model in app[CATALOG] if model.provider in providers]
    health = await app[HEALTH_TRACKER].snapshots([model.id for model in models])
    data = [
        {"id": model.id, "provider": model.provider, "health": health[model.id].model_dump(mode="json")}
        for model in models
        if model.id in health
    ]
    return _json({"object": "list", "data": data})


@routes.get("/dashboard/api/metrics")
async def metrics_summary(request: web.Request) -> web.Response:
    require_operator(request)
    metrics = request.app.get(METRICS)
    if metrics is None:
        raise NotFound("metrics are disabled on this server", code="metrics_disabled")
    await metrics.refresh()
    samples = [
        {"name": sample.name, "labels": sample.labels, "value": sample.value}
        for family in text_string_to_metric_families(metrics.render().decode())
        if family.name in _METRIC_FAMILIES
        for sample in family.samples
        if not sample.name.endswith("_created")
    ]
    return _json({"object": "list", "data": samples})


@routes.get("/dashboard/api/credit")
async def credit(request: web.Request) -> web.Response:
    """A credit account's balance and movements (for the burn-down): a wallet's own; the operator's
    choice of `?account=credit:...`, and the list of credit accounts to choose from."""
    principal = require_principal(request)
    ledger = request.app[LEDGER]
    accounts: list[str] = []
    if principal.kind == "wallet":
        assert principal.wallet is not None
        account, wallet = chart.credit_wallet(principal.wallet), principal.wallet
    else:
        accounts = [b.account for b in await ledger.balances() if b.account.startswith("credit:")]
        account = request.query.get("account") or (accounts[0] if accounts else "")
        if account and account not in accounts:
            raise NotFound(f"no credit account {account!r}", code="account_not_found", param="account")
        wallet = account.rsplit(":", 1)[-1]
    if not account:
        return _json({"object": "credit", "account": None, "accounts": [], "balance": None, "movements": []})
    view = await credit_view(ledger, wallet=wallet, credit_account=account, movements_max=_CREDIT_POINTS_MAX)
    return _json(
        {"object": "credit", "account": account, "accounts": accounts[:_BALANCES_SHOWN_MAX]}
        | view.model_dump(mode="json", include={"balance", "movements", "holds"})
    )


@routes.get("/dashboard/api/ledger")
async def ledger_summary(request: web.Request) -> web.Response:
    """Every account's balance (the largest first, bounded) and the last reconciliation with its breaks."""
    require_operator(request)
    ledger = request.app[LEDGER]
    balances = sorted(await ledger.balances(), key=lambda b: (-abs(b.posted), b.account))
    runs = await list_runs(ledger.engine, limit=1)
    last_run = None
    if runs:
        breaks = await run_breaks(ledger.engine, runs[0].id)
        last_run = runs[0].model_dump(mode="json") | {
            "breaks": [b.model_dump(mode="json") for b in breaks[:_BREAKS_SHOWN_MAX]]
        }
    return _json(
        {
            "object": "ledger_summary",
            "accounts_total": len(balances),
            "balances": [
                {
                    "account": b.account,
                    "type": b.type.value,
                    "unit": b.unit,
                    "posted": b.posted,
                    "pending": b.pending,
                    "available": b.available,
                }
                for b in balances[:_BALANCES_SHOWN_MAX]
            ],
            "last_reconciliation": last_run,
        }
    )


@routes.get("/dashboard/api/alerts")
async def alerts(request: web.Request) -> web.Response:
    """The newest alerts, or none when alert history is not served here."""
    require_operator(request)
    admin_key = _admin_key(request)
    answer = None
    if admin_key is not None:
        answer = await sub_request_json(request, ALERTS_PATH, query={}, bearer=admin_key)
    rows = [] if answer is None else answer.get("data", [])
    assert isinstance(rows, list)
    return _json({"object": "list", "data": rows[:_ALERTS_SHOWN_MAX]})


@routes.get("/dashboard/api/budgets")
async def budgets(request: web.Request) -> web.Response:
    """Every organization's budgets with their current period's spend (as /v1/orgs/{org}/budgets shows
    each); 404 (the page hides the panel) where organizations are not served."""
    require_operator(request)
    app = request.app
    if ORGANIZATIONS not in app:
        raise NotFound("budgets are not served here", code="budgets_unavailable")
    rows = []
    for org_name, budget in await app[ORGANIZATIONS].live_budgets():
        spend = await app[ORG_BUDGET_LEDGER].spend(budget)
        rows.append(
            {
                "id": budget.id,
                "org_id": budget.org_id,
                "name": f"{org_name} · {budget.scope_kind.value} {budget.scope_id} · {budget.period.value}, "
                f"{budget.mode.value}",
                "amount_nano_usd": budget.amount_nano_usd,
                "spent_nano_usd": spend.spent_nano_usd,
                "held_nano_usd": spend.held_nano_usd,
                "period_start_unix_s": spend.period_start_unix_s,
            }
        )
    return _json({"object": "list", "data": rows})
