"""The organization admin API under /v1/orgs: orgs, units, members, org keys, budgets, credits, spend, audit.

The caller authenticates with its wallet's own API key (`require_bearer`: wallet-proven, never an org key)
and acts as that wallet. Each call names the unit it touches, and the caller's grant must cover it with a
role that allows the action (proxy/governance/roles.py; the matrix is in the README). Every change is
recorded in the org's audit log in the same transaction.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ledger import AccountNotFound, Posting
from proxy.accounts.signatures import ADDRESS_PATTERN
from proxy.api.app_keys import (
    BILLING,
    CHART_ACCOUNTS,
    DB_ENGINE,
    ORG_BUDGET_LEDGER,
    ORGANIZATIONS,
    PAYMENT_GATE,
)
from proxy.api.auth import require_bearer
from proxy.api.handlers.topup import topup_amount_nano_usd
from proxy.api.middlewares import request_id_of
from proxy.api.request_parsing import read_json_model
from proxy.db.tables import usage_events
from proxy.errors import InvalidRequest, NotFound
from proxy.governance.models import Budget, BudgetMode, Member, ScopeKind, UnitKind, usd_text
from proxy.governance.periods import Period, period_start_unix_s
from proxy.governance.rate_limits import RateLimit
from proxy.governance.roles import Action, Role
from proxy.governance.store import Organizations, rate_limit_view
from proxy.money import usd_text_to_nano_usd

__all__ = ["routes"]

routes = web.RouteTableDef()
_ID_DIGITS_MAX = 18
_NAME = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
# Ids are BIGINT columns: anything larger could only be an error, and must not reach the database.
_ID_MAX = 2**63 - 1
# A budget's amount stays far inside int64 nano-USD (9.2 billion USD).
_AMOUNT_NANO_USD_MAX = 10**18
AnId = Annotated[int, Field(gt=0, le=_ID_MAX)]
ORG_TOPUP_CODE = "org_topup"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class OrgBody(_Body):
    name: str = _NAME


class UnitBody(_Body):
    name: str = _NAME
    parent: AnId | None = None
    kind: Literal["department", "team"]


class UnitPatch(_Body):
    name: str = _NAME


class MemberBody(_Body):
    wallet: str = Field(pattern=ADDRESS_PATTERN)
    unit: AnId
    role: Role = Field(strict=False)


class MemberPatch(_Body):
    unit: AnId | None = None
    role: Role | None = Field(default=None, strict=False)


class KeyBody(_Body):
    name: str = _NAME
    member: AnId | None = None
    unit: AnId | None = None

    @model_validator(mode="after")
    def _one_owner(self) -> KeyBody:
        if (self.member is None) == (self.unit is None):
            raise ValueError("give exactly one of member (a member's key) or unit (a team's service key)")
        return self


def _alert_bp(values: list[Decimal]) -> list[int]:
    thresholds = []
    for value in values:
        bp = value * 10_000
        if bp != bp.to_integral_value() or not 0 < bp <= 100_000:
            raise ValueError("alert_at values are fractions of the amount in (0, 10], to 0.0001")
        thresholds.append(int(bp))
    return thresholds


class BudgetBody(_Body):
    model_config = ConfigDict(extra="forbid", strict=False)

    scope: dict[ScopeKind, AnId] = Field(min_length=1, max_length=1)
    amount_usd: str = Field(max_length=40)
    period: Period
    mode: BudgetMode = BudgetMode.HARD
    alert_at: list[Decimal] = Field(default_factory=list, max_length=10)

    @field_validator("amount_usd")
    @classmethod
    def _amount(cls, value: str) -> str:
        if not 0 < usd_text_to_nano_usd(value) <= _AMOUNT_NANO_USD_MAX:
            raise ValueError("amount_usd must be above 0 and at most 1000000000")
        return value

    @field_validator("alert_at")
    @classmethod
    def _alerts(cls, value: list[Decimal]) -> list[Decimal]:
        _alert_bp(value)
        return value


class BudgetPatch(_Body):
    model_config = ConfigDict(extra="forbid", strict=False)

    amount_usd: str | None = Field(default=None, max_length=40)
    alert_at: list[Decimal] | None = Field(default=None, max_length=10)

    @field_validator("amount_usd")
    @classmethod
    def _amount(cls, value: str | None) -> str | None:
        if value is not None and not 0 < usd_text_to_nano_usd(value) <= _AMOUNT_NANO_USD_MAX:
            raise ValueError("amount_usd must be above 0 and at most 1000000000")
        return value

    @field_validator("alert_at")
    @classmethod
    def _alerts(cls, value: list[Decimal] | None) -> list[Decimal] | None:
        if value is not None:
            _alert_bp(value)
        return value


class RateLimitBody(_Body):
    model_config = ConfigDict(extra="forbid", strict=False)

    scope: dict[Literal["unit", "key"], AnId] = Field(min_length=1, max_length=1)
    requests_per_minute: int | None = Field(default=None, ge=1, le=10**9)
    tokens_per_minute: int | None = Field(default=None, ge=1, le=10**15)

    @model_validator(mode="after")
    def _some_limit(self) -> RateLimitBody:
        if self.requests_per_minute is None and self.tokens_per_minute is None:
            raise ValueError("give requests_per_minute, tokens_per_minute or both")
        return self


class RateLimitPatch(_Body):
    requests_per_minute: int | None = Field(default=None, ge=1, le=10**9)
    tokens_per_minute: int | None = Field(default=None, ge=1, le=10**15)

    @model_validator(mode="after")
    def _some_limit(self) -> RateLimitPatch:
        if self.requests_per_minute is None and self.tokens_per_minute is None:
            raise ValueError(
                "give requests_per_minute, tokens_per_minute or both (delete the limit to lift it)"
            )
        return self


class SpendBy(enum.StrEnum):
    UNIT = "unit"
    MEMBER = "member"
    KEY = "key"
    MODEL = "model"


_SPEND_COLUMNS = {
    SpendBy.UNIT: usage_events.c.org_unit_id,
    SpendBy.MEMBER: usage_events.c.org_member_id,
    SpendBy.KEY: usage_events.c.org_key_id,
    SpendBy.MODEL: usage_events.c.model_id,
}


def _id(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= _ID_DIGITS_MAX and int(raw) > 0):
        raise NotFound(f"no {name} {raw[:40]!r}", code=f"{name}_not_found", param=name)
    return int(raw)


def _json(model: BaseModel, object_name: str, **extra: Any) -> dict[str, Any]:
    return {"object": object_name, **model.model_dump(mode="json"), **extra}


def _orgs(request: web.Request) -> Organizations:
    return request.app[ORGANIZATIONS]


async def _caller(request: web.Request) -> str:
    return (await require_bearer(request)).wallet


async def _authorized(
    request: web.Request, action: Action, unit_id: int | None = None
) -> tuple[int, str, Member]:
    """(org id, caller wallet, caller's membership) when the caller may do `action` on `unit_id`."""
    wallet = await _caller(request)
    org_id = _id(request, "org")
    member = await _orgs(request).authorize(org_id, wallet=wallet, action=action, unit_id=unit_id)
    return org_id, wallet, member


# ------------------------------------------------------------------------------------------------- orgs


@routes.post("/v1/orgs")
async def create_org(request: web.Request) -> web.Response:
    wallet = await _caller(request)
    body = await read_json_model(request, OrgBody)
    org = await _orgs(request).create_org(name=body.name, owner_wallet=wallet)
    return web.json_response(_json(org, "organization"), status=201)


@routes.get("/v1/orgs")
async def list_orgs(request: web.Request) -> web.Response:
    wallet = await _caller(request)
    orgs = await _orgs(request).orgs_of(wallet)
    return web.json_response({"object": "list", "data": [_json(org, "organization") for org in orgs]})


@routes.get("/v1/orgs/{org}")
async def get_org(request: web.Request) -> web.Response:
    org_id, _, member = await _authorized_read_anywhere(request)
    return web.json_response(
        _json(await _orgs(request).get_org(org_id), "organization", role=member.role.value)
    )


async def _authorized_read_anywhere(request: web.Request) -> tuple[int, str, Member]:
    """Any member may read the org itself and list what is at or below its grant."""
    wallet = await _caller(request)
    org_id = _id(request, "org")
    member = await _orgs(request).membership(org_id, wallet)
    return org_id, wallet, member


@routes.patch("/v1/orgs/{org}")
async def update_org(request: web.Request) -> web.Response:
    org_id, wallet, _ = await _authorized(request, Action.ORG_UPDATE)
    body = await read_json_model(request, OrgBody)
    org = await _orgs(request).update_org(org_id, actor=wallet, name=body.name)
    return web.json_response(_json(org, "organization"))


@routes.delete("/v1/orgs/{org}")
async def delete_org(request: web.Request) -> web.Response:
    org_id, wallet, _ = await _authorized(request, Action.ORG_DELETE)
    org = await _orgs(request).delete_org(org_id, actor=wallet)
    return web.json_response(_json(org, "organization", deleted=True))


# ------------------------------------------------------------------------------------------------ units


@routes.post("/v1/orgs/{org}/units")
async def create_unit(request: web.Request) -> web.Response:
    org_id = _id(request, "org")
    body = await read_json_model(request, UnitBody)
    parent = body.parent if body.parent is not None else (await _orgs(request).get_org(org_id)).root_unit_id
    _, wallet, _ = await _authorized(request, Action.UNIT_WRITE, parent)
    unit = await _orgs(request).create_unit(
        org_id, actor=wallet, name=body.name, parent_id=parent, kind=UnitKind(body.kind)
    )
    return web.json_response(_json(unit, "organization.unit"), status=201)


@routes.get("/v1/orgs/{org}/units")
async def list_units(request: web.Request) -> web.Response:
    org_id, _, member = await _authorized_read_anywhere(request)
    orgs = _orgs(request)
    units = await orgs.list_units(org_id, await orgs.visible_unit_ids(org_id, member))
    return web.json_response({"object": "list", "data": [_json(u, "organization.unit") for u in units]})


@routes.get("/v1/orgs/{org}/units/{unit}")
async def get_unit(request: web.Request) -> web.Response:
    unit_id = _id(request, "unit")
    org_id, _, _ = await _authorized(request, Action.READ, unit_id)
    return web.json_response(_json(await _orgs(request).get_unit(org_id, unit_id), "organization.unit"))


@routes.patch("/v1/orgs/{org}/units/{unit}")
async def update_unit(request: web.Request) -> web.Response:
    unit_id = _id(request, "unit")
    org_id, wallet, _ = await _authorized(request, Action.UNIT_WRITE, unit_id)
    body = await read_json_model(request, UnitPatch)
    unit = await _orgs(request).update_unit(org_id, unit_id, actor=wallet, name=body.name)
    return web.json_response(_json(unit, "organization.unit"))


@routes.delete("/v1/orgs/{org}/units/{unit}")
async def delete_unit(request: web.Request) -> web.Response:
    unit_id = _id(request, "unit")
    org_id, wallet, _ = await _authorized(request, Action.UNIT_WRITE, unit_id)
    unit = await _orgs(request).delete_unit(org_id, unit_id, actor=wallet)
    return web.json_response(_json(unit, "organization.unit", deleted=True))


# ---------------------------------------------------------------------------------------------- members


@routes.post("/v1/orgs/{org}/members")
async def create_member(request: web.Request) -> web.Response:
    body = await read_json_model(request, MemberBody)
    org_id, wallet, _ = await _authorized(request, Action.MEMBER_WRITE, body.unit)
    if body.role is Role.OWNER:
        await _authorized(request, Action.OWNER_GRANT, body.unit)
    member = await _orgs(request).create_member(
        org_id, actor=wallet, wallet=body.wallet, unit_id=body.unit, role=body.role
    )
    return web.json_response(_json(member, "organization.member"), status=201)


@routes.get("/v1/orgs/{org}/members")
async def list_members(request: web.Request) -> web.Response:
    org_id, _, member = await _authorized_read_anywhere(request)
    orgs = _orgs(request)
    members = await orgs.list_members(org_id, await orgs.visible_unit_ids(org_id, member))
    return web.json_response({"object": "list", "data": [_json(m, "organization.member") for m in members]})


async def _member_target(request: web.Request) -> Member:
    org_id, member_id = _id(request, "org"), _id(request, "member")
    return await _orgs(request).get_member(org_id, member_id)


@routes.get("/v1/orgs/{org}/members/{member}")
async def get_member(request: web.Request) -> web.Response:
    await _caller(request)
    target = await _member_target(request)
    await _authorized(request, Action.READ, target.unit_id)
    return web.json_response(_json(target, "organization.member"))


@routes.patch("/v1/orgs/{org}/members/{member}")
async def update_member(request: web.Request) -> web.Response:
    await _caller(request)
    target = await _member_target(request)
    body = await read_json_model(request, MemberPatch)
    org_id, wallet, _ = await _authorized(request, Action.MEMBER_WRITE, target.unit_id)
    if body.unit is not None:
        await _authorized(request, Action.MEMBER_WRITE, body.unit)
    if Role.OWNER in (target.role, body.role):
        await _authorized(request, Action.OWNER_GRANT, body.unit or target.unit_id)
    member = await _orgs(request).update_member(
        org_id, target.id, actor=wallet, unit_id=body.unit, role=body.role
    )
    return web.json_response(_json(member, "organization.member"))


@routes.delete("/v1/orgs/{org}/members/{member}")
async def delete_member(request: web.Request) -> web.Response:
    await _caller(request)
    target = await _member_target(request)
    org_id, wallet, _ = await _authorized(request, Action.MEMBER_WRITE, target.unit_id)
    if target.role is Role.OWNER:
        await _authorized(request, Action.OWNER_GRANT, target.unit_id)
    member = await _orgs(request).delete_member(org_id, target.id, actor=wallet)
    return web.json_response(_json(member, "organization.member", deleted=True))


# ------------------------------------------------------------------------------------------------- keys


@routes.post("/v1/orgs/{org}/keys")
async def create_key(request: web.Request) -> web.Response:
    await _caller(request)
    org_id = _id(request, "org")
    body = await read_json_model(request, KeyBody)
    orgs = _orgs(request)
    unit_id, member_id = await orgs.key_unit(org_id, member_id=body.member, unit_id=body.unit)
    _, wallet, _ = await _authorized(request, Action.KEY_WRITE, unit_id)
    secret, key = await orgs.create_key(
        org_id, actor=wallet, name=body.name, unit_id=unit_id, member_id=member_id
    )
    # The only time the key is ever shown.
    return web.json_response(_json(key, "organization.key", key=secret), status=201)


@routes.get("/v1/orgs/{org}/keys")
async def list_keys(request: web.Request) -> web.Response:
    org_id, _, member = await _authorized_read_anywhere(request)
    orgs = _orgs(request)
    keys = await orgs.list_keys(org_id, await orgs.visible_unit_ids(org_id, member))
    return web.json_response({"object": "list", "data": [_json(k, "organization.key") for k in keys]})


@routes.get("/v1/orgs/{org}/keys/{key}")
async def get_key(request: web.Request) -> web.Response:
    await _caller(request)
    key = await _orgs(request).get_key(_id(request, "org"), _id(request, "key"))
    await _authorized(request, Action.READ, key.unit_id)
    return web.json_response(_json(key, "organization.key"))


@routes.delete("/v1/orgs/{org}/keys/{key}")
async def revoke_key(request: web.Request) -> web.Response:
    await _caller(request)
    org_id = _id(request, "org")
    key = await _orgs(request).get_key(org_id, _id(request, "key"))
    _, wallet, _ = await _authorized(request, Action.KEY_WRITE, key.unit_id)
    revoked = await _orgs(request).revoke_key(org_id, key.id, actor=wallet)
    return web.json_response(_json(revoked, "organization.key"))


# ---------------------------------------------------------------------------------------------- budgets


async def _budget_json(request: web.Request, budget: Budget) -> dict[str, Any]:
    spend = await request.app[ORG_BUDGET_LEDGER].spend(budget)
    return _json(
        budget,
        "organization.budget",
        amount_usd=usd_text(budget.amount_nano_usd),
        alert_at=[str(Decimal(bp) / 10_000) for bp in budget.alert_at_bp],
        current_period={
            "start": spend.period_start_unix_s,
            "spent_nano_usd": spend.spent_nano_usd,
            "held_nano_usd": spend.held_nano_usd,
            "remaining_nano_usd": spend.remaining_nano_usd,
        },
    )


@routes.post("/v1/orgs/{org}/budgets")
async def create_budget(request: web.Request) -> web.Response:
    await _caller(request)
    org_id = _id(request, "org")
    body = await read_json_model(request, BudgetBody)
    [(scope_kind, scope_id)] = body.scope.items()
    orgs = _orgs(request)
    unit_id = await orgs.scope_unit(org_id, scope_kind, scope_id)
    _, wallet, _ = await _authorized(request, Action.BUDGET_WRITE, unit_id)
    budget = await orgs.create_budget(
        org_id,
        actor=wallet,
        scope_kind=scope_kind,
        scope_id=scope_id,
        amount_nano_usd=usd_text_to_nano_usd(body.amount_usd),
        period=body.period,
        mode=body.mode,
        alert_at_bp=_alert_bp(body.alert_at),
    )
    return web.json_response(await _budget_json(request, budget), status=201)


@routes.get("/v1/orgs/{org}/budgets")
async def list_budgets(request: web.Request) -> web.Response:
    org_id, _, member = await _authorized_read_anywhere(request)
    orgs = _orgs(request)
    budgets = await orgs.list_budgets(org_id, await orgs.visible_unit_ids(org_id, member))
    return web.json_response({"object": "list", "data": [await _budget_json(request, b) for b in budgets]})


async def _budget_target(request: web.Request, action: Action) -> tuple[Budget, str]:
    await _caller(request)
    org_id = _id(request, "org")
    orgs = _orgs(request)
    budget = await orgs.get_budget(org_id, _id(request, "budget"))
    _, wallet, _ = await _authorized(
        request, action, await orgs.scope_unit(org_id, budget.scope_kind, budget.scope_id)
    )
    return budget, wallet


@routes.get("/v1/orgs/{org}/budgets/{budget}")
async def get_budget(request: web.Request) -> web.Response:
    budget, _ = await _budget_target(request, Action.READ)
    return web.json_response(await _budget_json(request, budget))


@routes.patch("/v1/orgs/{org}/budgets/{budget}")
async def update_budget(request: web.Request) -> web.Response:
    budget, wallet = await _budget_target(request, Action.BUDGET_WRITE)
    body = await read_json_model(request, BudgetPatch)
    before, after = await _orgs(request).update_budget(
        budget.org_id,
        budget.id,
        actor=wallet,
        amount_nano_usd=None if body.amount_usd is None else usd_text_to_nano_usd(body.amount_usd),
        alert_at_bp=None if body.alert_at is None else _alert_bp(body.alert_at),
    )
    await request.app[ORG_BUDGET_LEDGER].adjust(before, after, change_id=request_id_of(request))
    return web.json_response(await _budget_json(request, after))


@routes.delete("/v1/orgs/{org}/budgets/{budget}")
async def delete_budget(request: web.Request) -> web.Response:
    budget, wallet = await _budget_target(request, Action.BUDGET_WRITE)
    deleted = await _orgs(request).delete_budget(budget.org_id, budget.id, actor=wallet)
    return web.json_response(_json(deleted, "organization.budget", deleted=True))


# ------------------------------------------------------------------------------------------ rate limits
# Rate limits are budget policy: the same permission (budget.write) sets them.


def _limit_json(limit: RateLimit) -> dict[str, Any]:
    return _json(rate_limit_view(limit), "organization.rate_limit")


@routes.post("/v1/orgs/{org}/rate_limits")
async def create_rate_limit(request: web.Request) -> web.Response:
    await _caller(request)
    org_id = _id(request, "org")
    body = await read_json_model(request, RateLimitBody)
    [(kind, scope_id)] = body.scope.items()
    scope_kind = ScopeKind(kind)
    orgs = _orgs(request)
    _, wallet, _ = await _authorized(
        request, Action.BUDGET_WRITE, await orgs.scope_unit(org_id, scope_kind, scope_id)
    )
    limit = await orgs.create_rate_limit(
        org_id,
        actor=wallet,
        scope_kind=scope_kind,
        scope_id=scope_id,
        requests_per_minute=body.requests_per_minute,
        tokens_per_minute=body.tokens_per_minute,
    )
    return web.json_response(_limit_json(limit), status=201)


@routes.get("/v1/orgs/{org}/rate_limits")
async def list_rate_limits(request: web.Request) -> web.Response:
    org_id, _, member = await _authorized_read_anywhere(request)
    orgs = _orgs(request)
    visible = await orgs.visible_unit_ids(org_id, member)
    limits = [
        limit
        for limit in await orgs.list_rate_limits(org_id)
        if await orgs.scope_unit(org_id, limit.scope_kind, limit.scope_id) in visible
    ]
    return web.json_response({"object": "list", "data": [_limit_json(limit) for limit in limits]})


async def _limit_target(request: web.Request, action: Action) -> tuple[RateLimit, str]:
    await _caller(request)
    org_id = _id(request, "org")
    orgs = _orgs(request)
    limit = await orgs.get_rate_limit(org_id, _id(request, "rate_limit"))
    unit_id = await orgs.scope_unit(org_id, limit.scope_kind, limit.scope_id)
    _, wallet, _ = await _authorized(request, action, unit_id)
    return limit, wallet


@routes.get("/v1/orgs/{org}/rate_limits/{rate_limit}")
async def get_rate_limit(request: web.Request) -> web.Response:
    limit, _ = await _limit_target(request, Action.READ)
    return web.json_response(_limit_json(limit))


@routes.patch("/v1/orgs/{org}/rate_limits/{rate_limit}")
async def update_rate_limit(request: web.Request) -> web.Response:
    limit, wallet = await _limit_target(request, Action.BUDGET_WRITE)
    body = await read_json_model(request, RateLimitPatch)
    updated = await _orgs(request).update_rate_limit(
        limit.org_id,
        limit.id,
        actor=wallet,
        requests_per_minute=body.requests_per_minute,
        tokens_per_minute=body.tokens_per_minute,
    )
    return web.json_response(_limit_json(updated))


@routes.delete("/v1/orgs/{org}/rate_limits/{rate_limit}")
async def delete_rate_limit(request: web.Request) -> web.Response:
    limit, wallet = await _limit_target(request, Action.BUDGET_WRITE)
    deleted = await _orgs(request).delete_rate_limit(limit.org_id, limit.id, actor=wallet)
    return web.json_response({**_limit_json(deleted), "deleted": True})


# -------------------------------------------------------------------------------------- deposit wallets
# A wallet registered here deposits to the org: its plain token transfers to the settlement wallet are
# booked to the org's credit by the chain watcher. Only the wallet itself registers (its own wallet key).


@routes.post("/v1/orgs/{org}/deposit_wallets")
async def register_deposit_wallet(request: web.Request) -> web.Response:
    org_id, wallet, _ = await _authorized(request, Action.CREDITS_TOPUP)
    await _orgs(request).register_deposit_wallet(org_id, wallet=wallet)
    return web.json_response(
        {"object": "organization.deposit_wallet", "org_id": org_id, "wallet": wallet}, status=201
    )


@routes.get("/v1/orgs/{org}/deposit_wallets")
async def list_deposit_wallets(request: web.Request) -> web.Response:
    org_id, _, _ = await _authorized(request, Action.CREDITS_READ)
    wallets = await _orgs(request).deposit_wallets(org_id)
    data = [{"object": "organization.deposit_wallet", "org_id": org_id, "wallet": w} for w in wallets]
    return web.json_response({"object": "list", "data": data})


@routes.delete("/v1/orgs/{org}/deposit_wallets/{wallet}")
async def unregister_deposit_wallet(request: web.Request) -> web.Response:
    org_id, caller, _ = await _authorized(request, Action.CREDITS_TOPUP)
    wallet = request.match_info["wallet"].lower()
    if not await _orgs(request).unregister_deposit_wallet(org_id, wallet=wallet, actor=caller):
        raise NotFound(
            f"wallet {wallet[:42]!r} does not deposit to organization {org_id}",
            code="deposit_wallet_not_found",
        )
    return web.json_response(
        {"object": "organization.deposit_wallet", "org_id": org_id, "wallet": wallet, "deleted": True}
    )


# ------------------------------------------------------------------------------- credits, spend, audit


async def _credit_json(request: web.Request, org_id: int) -> dict[str, Any]:
    account = (await _orgs(request).get_org(org_id)).credit_account
    try:
        balance = await request.app[BILLING].ledger.balance(account)
    except AccountNotFound:
        return {
            "object": "organization.credits",
            "account": account,
            "posted_nano_usd": 0,
            "pending_nano_usd": 0,
            "available_nano_usd": 0,
        }
    return {
        "object": "organization.credits",
        "account": account,
        "posted_nano_usd": balance.posted,
        "pending_nano_usd": balance.pending,
        "available_nano_usd": balance.available,
    }


@routes.get("/v1/orgs/{org}/credits")
async def get_credits(request: web.Request) -> web.Response:
    org_id, _, _ = await _authorized(request, Action.CREDITS_READ)
    return web.json_response(await _credit_json(request, org_id))


@routes.post("/v1/orgs/{org}/credits/topup")
async def topup_credits(request: web.Request) -> web.Response:
    """An x402 payment of the amount asked: booked on the paying wallet's credit by the gate, then moved to
    the org's credit in one ledger transaction keyed by the request (a crash between leaves it on the
    wallet's credit, withdrawable, never lost)."""
    org_id, wallet, _ = await _authorized(request, Action.CREDITS_TOPUP)
    amount_nano_usd = topup_amount_nano_usd(request.query.get("amount"))
    request_id = request_id_of(request)
    org = await _orgs(request).get_org(org_id)
    payment = await request.app[PAYMENT_GATE].accept(
        request, quote_nano_usd=amount_nano_usd, request_id=request_id
    )
    await request.app[CHART_ACCOUNTS].ensure([org.credit_account])
    await request.app[BILLING].ledger.post(
        idempotency_key=f"{request_id}:org_topup",
        code=ORG_TOPUP_CODE,
        postings=[
            Posting(account=payment.credit_account, amount=payment.amount_nano_usd),
            Posting(account=org.credit_account, amount=-payment.amount_nano_usd),
        ],
        metadata={"org_id": org_id, "payer": payment.payer, "request_id": request_id},
    )
    await _orgs(request).record(
        org_id, actor=wallet, action="credits.topup", target_kind="org", target_id=org_id, after=None
    )
    body = {
        **await _credit_json(request, org_id),
        "credited_nano_usd": payment.amount_nano_usd,
        "payer": payment.payer,
    }
    return web.json_response(body, headers=payment.response_headers)


@routes.get("/v1/orgs/{org}/spend")
async def get_spend(request: web.Request) -> web.Response:
    org_id, _, _ = await _authorized(request, Action.SPEND_READ)
    try:
        by = SpendBy(request.query.get("by", "unit"))
        period = Period(request.query.get("period", "month"))
    except ValueError as error:
        raise InvalidRequest(
            "by is unit, member, key or model; period is day, week, month or total", code="invalid_query"
        ) from error
    start = period_start_unix_s(period, request.app[ORG_BUDGET_LEDGER].now_unix_s())
    column = _SPEND_COLUMNS[by]
    statement = (
        sa.select(
            column.label("group"),
            sa.func.count().label("requests"),
            sa.func.sum(usage_events.c.cost_nano_usd).label("cost_nano_usd"),
            sa.func.sum(usage_events.c.input_tokens).label("input_tokens"),
            sa.func.sum(usage_events.c.output_tokens).label("output_tokens"),
        )
        .where(usage_events.c.org_id == org_id, usage_events.c.created_at >= _utc(start))
        .group_by(column)
        .order_by(column)
    )
    async with request.app[DB_ENGINE].connect() as conn:
        rows = (await conn.execute(statement)).mappings().all()
    data = [
        {
            by.value: row["group"],
            "requests": int(row["requests"]),
            "cost_nano_usd": int(row["cost_nano_usd"] or 0),
            "input_tokens": int(row["input_tokens"] or 0),
            "output_tokens": int(row["output_tokens"] or 0),
        }
        for row in rows
    ]
    return web.json_response(
        {"object": "list", "by": by.value, "period": period.value, "since": start, "data": data}
    )


def _utc(unix_s: int) -> datetime:
    return datetime.fromtimestamp(unix_s, UTC)


@routes.get("/v1/orgs/{org}/audit")
async def get_audit(request: web.Request) -> web.Response:
    org_id, _, _ = await _authorized(request, Action.AUDIT_READ)
    entries = await _orgs(request).audit(org_id)
    return web.json_response({"object": "list", "data": [e.model_dump(mode="json") for e in entries]})
