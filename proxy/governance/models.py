"""What the organization layer returns: frozen pydantic models, integers for money, unix seconds for times."""

from __future__ import annotations

import enum

from pydantic import BaseModel, ConfigDict

from proxy.governance.periods import Period
from proxy.governance.roles import Role

__all__ = [
    "AuditEntry",
    "Budget",
    "BudgetMode",
    "Member",
    "Org",
    "OrgKey",
    "OrgPrincipal",
    "ScopeKind",
    "Unit",
    "UnitKind",
    "org_credit_account",
    "usd_text",
]


def usd_text(amount_nano_usd: int) -> str:
    """Exact USD text of a nano-USD amount: at least two decimals, no trailing zeros beyond them."""
    sign = "-" if amount_nano_usd < 0 else ""
    whole, fraction = divmod(abs(amount_nano_usd), 1_000_000_000)
    digits = f"{fraction:09d}".rstrip("0").ljust(2, "0")
    return f"{sign}{whole}.{digits}"


def org_credit_account(org_id: int) -> str:
    """The ledger account an organization pays from (liability, must not go negative)."""
    assert org_id > 0
    return f"credit:org:{org_id}"


class UnitKind(enum.StrEnum):
    ORGANIZATION = "organization"  # the root of an org's tree, made with the org
    DEPARTMENT = "department"
    TEAM = "team"


class ScopeKind(enum.StrEnum):
    ORG = "org"
    UNIT = "unit"
    MEMBER = "member"
    KEY = "key"


class BudgetMode(enum.StrEnum):
    HARD = "hard"  # a request that does not fit is refused
    SOFT = "soft"  # spend is counted and thresholds alert, nothing is refused


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Org(_Frozen):
    id: int
    name: str
    root_unit_id: int
    credit_account: str
    created_at: int


class Unit(_Frozen):
    id: int
    org_id: int
    parent_id: int | None
    name: str
    kind: UnitKind
    path: tuple[int, ...]  # unit ids from the root down to this one
    created_at: int


class Member(_Frozen):
    id: int
    org_id: int
    wallet: str
    unit_id: int
    role: Role
    created_at: int


class OrgKey(_Frozen):
    id: int
    org_id: int
    unit_id: int
    member_id: int | None
    name: str
    prefix: str
    created_at: int
    revoked_at: int | None


class Budget(_Frozen):
    id: int
    org_id: int
    scope_kind: ScopeKind
    scope_id: int
    amount_nano_usd: int
    period: Period
    mode: BudgetMode
    alert_at_bp: tuple[int, ...]  # thresholds in basis points of the amount, ascending
    created_at: int


class AuditEntry(_Frozen):
    id: int
    org_id: int
    actor: str
    action: str
    target_kind: str
    target_id: int | None
    before: dict[str, object] | None
    after: dict[str, object] | None
    at: int


class OrgPrincipal(_Frozen):
    """Who an org key acts for: the org pays from `credit_account`; `unit_path` runs root → the key's unit."""

    org_id: int
    key_id: int
    unit_id: int
    unit_path: tuple[int, ...]
    member_id: int | None
    credit_account: str
