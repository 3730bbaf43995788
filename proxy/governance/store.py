"""Organizations in the proxy's tables: orgs, units, members, org keys, budgets, and the audit log.

Every change is one database transaction together with its audit entry (who, what, when, before → after),
so the log never misses a change nor records one that did not happen. Rows are marked deleted, never
removed. Authorization (`authorize`) reads the caller's grant in the org: a role on a unit covers that unit
and every unit below it (the unit's materialized path starts with the grant's).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from proxy.db.tables import (
    org_audit_log,
    org_budgets,
    org_deposit_wallets,
    org_keys,
    org_members,
    org_organizations,
    org_rate_limits,
    org_units,
)
from proxy.errors import AuthenticationFailed, InvalidRequest, NotFound, PermissionDenied
from proxy.governance.errors import OrgConflict
from proxy.governance.models import (
    AuditEntry,
    Budget,
    BudgetMode,
    Member,
    Org,
    OrgKey,
    OrgPrincipal,
    ScopeKind,
    Unit,
    UnitKind,
    org_credit_account,
)
from proxy.governance.periods import Period
from proxy.governance.rate_limits import RateLimit
from proxy.governance.roles import ORG_WIDE_ACTIONS, Action, Role, role_allows

__all__ = ["AUDIT_LISTED_MAX", "ORG_KEY_PREFIX", "Organizations", "rate_limit_view"]

ORG_KEY_PREFIX = "mr-org-"
_KEY_RANDOM_BYTES = 32
_KEY_PREFIX_DISPLAY_CHARS = 8
AUDIT_LISTED_MAX = 1_000
# A tree deeper than this is a mistake (org → departments → teams): it also bounds a request's budget path.
UNIT_DEPTH_MAX = 8


def _sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _path(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.strip("/").split("/"))


def _unit(row: sa.RowMapping) -> Unit:
    return Unit(
        id=row["id"],
        org_id=row["org_id"],
        parent_id=row["parent_id"],
        name=row["name"],
        kind=UnitKind(row["kind"]),
        path=_path(row["path"]),
        created_at=row["created_at_unix_s"],
    )


def _member(row: sa.RowMapping) -> Member:
    return Member(
        id=row["id"],
        org_id=row["org_id"],
        wallet=row["wallet"],
        unit_id=row["unit_id"],
        role=Role(row["role"]),
        created_at=row["created_at_unix_s"],
    )


def _key(row: sa.RowMapping) -> OrgKey:
    return OrgKey(
        id=row["id"],
        org_id=row["org_id"],
        unit_id=row["unit_id"],
        member_id=row["member_id"],
        name=row["name"],
        prefix=row["key_prefix"],
        created_at=row["created_at_unix_s"],
        revoked_at=row["revoked_at_unix_s"],
    )


def _budget(row: sa.RowMapping) -> Budget:
    return Budget(
        id=row["id"],
        org_id=row["org_id"],
        scope_kind=ScopeKind(row["scope_kind"]),
        scope_id=row["scope_id"],
        amount_nano_usd=row["amount_nano_usd"],
        period=Period(row["period"]),
        mode=BudgetMode(row["mode"]),
        alert_at_bp=tuple(json.loads(row["alert_at_bp_json"])),
        created_at=row["created_at_unix_s"],
    )


def _rate_limit(row: sa.RowMapping) -> RateLimit:
    return RateLimit(
        id=row["id"],
        org_id=row["org_id"],
        scope_kind=ScopeKind(row["scope_kind"]),
        scope_id=row["scope_id"],
        requests_per_minute=row["requests_per_minute"],
        tokens_per_minute=row["tokens_per_minute"],
    )


class _RateLimitView(BaseModel):
    """A rate limit as the API and the audit log show it."""

    model_config = ConfigDict(frozen=True)

    id: int
    org_id: int
    scope_kind: ScopeKind
    scope_id: int
    requests_per_minute: int | None
    tokens_per_minute: int | None

    @classmethod
    def of(cls, limit: RateLimit) -> _RateLimitView:
        return cls(**limit.__dict__)


def _org(row: sa.RowMapping) -> Org:
    return Org(
        id=row["id"],
        name=row["name"],
        root_unit_id=row["root_unit_id"],
        credit_account=org_credit_account(row["id"]),
        created_at=row["created_at_unix_s"],
    )


def _audit_entry(row: sa.RowMapping) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        org_id=row["org_id"],
        actor=row["actor"],
        action=row["action"],
        target_kind=row["target_kind"],
        target_id=row["target_id"],
        before=None if row["before_json"] is None else json.loads(row["before_json"]),
        after=None if row["after_json"] is None else json.loads(row["after_json"]),
        at=row["at_unix_s"],
    )


def _dump(model: Any) -> str | None:
    return None if model is None else json.dumps(model.model_dump(mode="json"), sort_keys=True)


async def _one(conn: AsyncConnection, statement: sa.Select[Any]) -> sa.RowMapping | None:
    row: sa.RowMapping | None = (await conn.execute(statement)).mappings().first()
    return row


async def _all(conn: AsyncConnection, statement: sa.Select[Any]) -> Sequence[sa.RowMapping]:
    rows: Sequence[sa.RowMapping] = (await conn.execute(statement)).mappings().all()
    return rows


def _inserted_id(result: sa.CursorResult[Any]) -> int:
    assert result.inserted_primary_key is not None
    inserted: int = result.inserted_primary_key[0]
    assert inserted > 0
    return inserted


class Organizations:
    """`clock_unix_s` gives the time of records (tests inject one)."""

    def __init__(self, engine: AsyncEngine, *, clock_unix_s: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._clock_unix_s = clock_unix_s

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    def _now(self) -> int:
        return int(self._clock_unix_s())

    async def _audit(
        self,
        conn: AsyncConnection,
        *,
        org_id: int,
        actor: str,
        action: str,
        target_kind: str,
        target_id: int | None,
        before: Any,
        after: Any,
    ) -> None:
        await conn.execute(
            org_audit_log.insert().values(
                org_id=org_id,
                actor=actor,
                action=action,
                target_kind=target_kind,
                target_id=target_id,
                before_json=_dump(before),
                after_json=_dump(after),
                at_unix_s=self._now(),
            )
        )

    # ------------------------------------------------------------------------------------------- orgs

    async def create_org(self, *, name: str, owner_wallet: str) -> Org:
        """A new org, its root unit, and the caller as owner on the root: one transaction."""
        wallet = owner_wallet.lower()
        now = self._now()
        async with self._engine.begin() as conn:
            org_id = _inserted_id(
                await conn.execute(
                    org_organizations.insert().values(name=name, root_unit_id=None, created_at_unix_s=now)
                )
            )
            root_id = _inserted_id(
                await conn.execute(
                    org_units.insert().values(
                        org_id=org_id,
                        parent_id=None,
                        name=name,
                        kind=UnitKind.ORGANIZATION.value,
                        path="/",
                        created_at_unix_s=now,
                    )
                )
            )
            await conn.execute(
                org_units.update().where(org_units.c.id == root_id).values(path=f"/{root_id}/")
            )
            await conn.execute(
                org_organizations.update()
                .where(org_organizations.c.id == org_id)
                .values(root_unit_id=root_id)
            )
            member_id = _inserted_id(
                await conn.execute(
                    org_members.insert().values(
                        org_id=org_id,
                        wallet=wallet,
                        unit_id=root_id,
                        role=Role.OWNER.value,
                        created_at_unix_s=now,
                    )
                )
            )
            org = Org(
                id=org_id,
                name=name,
                root_unit_id=root_id,
                credit_account=org_credit_account(org_id),
                created_at=now,
            )
            await self._audit(
                conn,
                org_id=org_id,
                actor=wallet,
                action="org.create",
                target_kind="org",
                target_id=org_id,
                before=None,
                after=org,
            )
            member = Member(
                id=member_id, org_id=org_id, wallet=wallet, unit_id=root_id, role=Role.OWNER, created_at=now
            )
            await self._audit(
                conn,
                org_id=org_id,
                actor=wallet,
                action="member.create",
                target_kind="member",
                target_id=member_id,
                before=None,
                after=member,
            )
        return org

    async def get_org(self, org_id: int) -> Org:
        async with self._engine.connect() as conn:
            return await self._org_in(conn, org_id)

    async def _org_in(self, conn: AsyncConnection, org_id: int) -> Org:
        row = await _one(
            conn,
            sa.select(org_organizations).where(
                org_organizations.c.id == org_id, org_organizations.c.deleted_at_unix_s.is_(None)
            ),
        )
        if row is None:
            raise NotFound(f"no organization {org_id}", code="org_not_found", param="org")
        return _org(row)

    async def orgs_of(self, wallet: str) -> list[Org]:
        """The organizations where `wallet` is a member."""
        async with self._engine.connect() as conn:
            rows = await _all(
                conn,
                sa.select(org_organizations)
                .join(org_members, org_members.c.org_id == org_organizations.c.id)
                .where(
                    org_members.c.wallet == wallet.lower(),
                    org_members.c.deleted_at_unix_s.is_(None),
                    org_organizations.c.deleted_at_unix_s.is_(None),
                )
                .order_by(org_organizations.c.id),
            )
        return [_org(row) for row in rows]

    async def orgs_allowing(self, wallet: str, action: Action) -> list[int]:
        """The live organizations where `wallet`'s role allows the org-wide `action` (a grant on the root,
        as `authorize` demands for org-wide actions)."""
        assert action in ORG_WIDE_ACTIONS
        async with self._engine.connect() as conn:
            rows = await _all(
                conn,
                sa.select(org_members.c.org_id, org_members.c.role)
                .join(org_organizations, org_organizations.c.id == org_members.c.org_id)
                .where(
                    org_members.c.wallet == wallet.lower(),
                    org_members.c.deleted_at_unix_s.is_(None),
                    org_members.c.unit_id == org_organizations.c.root_unit_id,
                    org_organizations.c.deleted_at_unix_s.is_(None),
                )
                .order_by(org_members.c.org_id),
            )
        return [row["org_id"] for row in rows if role_allows(Role(row["role"]), action)]

    async def all_orgs(self) -> list[Org]:
        """Every live organization (the operator's view)."""
        async with self._engine.connect() as conn:
            rows = await _all(
                conn,
                sa.select(org_organizations)
                .where(org_organizations.c.deleted_at_unix_s.is_(None))
                .order_by(org_organizations.c.id),
            )
        return [_org(row) for row in rows]

    async def all_unit_ids(self, org_id: int) -> set[int]:
        async with self._engine.connect() as conn:
            rows = await _all(conn, sa.select(org_units.c.id).where(org_units.c.org_id == org_id))
        return {row["id"] for row in rows}

    async def update_org(self, org_id: int, *, actor: str, name: str) -> Org:
        async with self._engine.begin() as conn:
            before = await self._org_in(conn, org_id)
            await conn.execute(
                org_organizations.update().where(org_organizations.c.id == org_id).values(name=name)
            )
            after = before.model_copy(update={"name": name})
            await self._audit(
                conn,
                org_id=org_id,
                actor=actor,
                action="org.update",
                target_kind="org",
                target_id=org_id,
                before=before,
                after=after,
            )
        return after

    async def delete_org(self, org_id: int, *, actor: str) -> Org:
        """Marks the org deleted and revokes its keys (its credit and ledger history stay)."""
        now = self._now()
        async with self._engine.begin() as conn:
            before = await self._org_in(conn, org_id)
            await conn.execute(
                org_organizations.update()
                .where(org_organizations.c.id == org_id)
                .values(deleted_at_unix_s=now)
            )
            await conn.execute(
                org_keys.update()
                .where(org_keys.c.org_id == org_id, org_keys.c.revoked_at_unix_s.is_(None))
                .values(revoked_at_unix_s=now)
            )
            await self._audit(
                conn,
                org_id=org_id,
                actor=actor,
                action="org.delete",
                target_kind="org",
                target_id=org_id,
                before=before,
                after=None,
            )
        return before

    # ------------------------------------------------------------------------------------ authorization

    async def authorize(
        self, org_id: int, *, wallet: str, action: Action, unit_id: int | None = None
    ) -> Member:
        """The caller's membership when its grant allows `action` on `unit_id` (None: the org's root).

        Not a member (or no such org): 404, so an org's existence is not told to strangers. A member whose
        role or grant does not cover the action: 403 naming the action.
        """
        async with self._engine.connect() as conn:
            org = await self._org_in(conn, org_id)
            member_row = await _one(
                conn,
                sa.select(org_members).where(
                    org_members.c.org_id == org_id,
                    org_members.c.wallet == wallet.lower(),
                    org_members.c.deleted_at_unix_s.is_(None),
                ),
            )
            if member_row is None:
                raise NotFound(f"no organization {org_id}", code="org_not_found", param="org")
            member = _member(member_row)
            target = org.root_unit_id if unit_id is None or action in ORG_WIDE_ACTIONS else unit_id
            target_unit = await self._unit_in(conn, org_id, target)
            grant_unit = await self._unit_in(conn, org_id, member.unit_id)
        covered = target_unit.path[: len(grant_unit.path)] == grant_unit.path
        if not (covered and role_allows(member.role, action)):
            raise PermissionDenied(
                f"your role {member.role.value} on unit {member.unit_id} does not allow {action.value} "
                f"on unit {target}",
                code="permission_denied",
            )
        return member

    async def membership(self, org_id: int, wallet: str) -> Member:
        """The wallet's membership of a live org; 404 when it is not a member (or there is no such org)."""
        async with self._engine.connect() as conn:
            await self._org_in(conn, org_id)
            row = await _one(
                conn,
                sa.select(org_members).where(
                    org_members.c.org_id == org_id,
                    org_members.c.wallet == wallet.lower(),
                    org_members.c.deleted_at_unix_s.is_(None),
                ),
            )
        if row is None:
            raise NotFound(f"no organization {org_id}", code="org_not_found", param="org")
        return _member(row)

    async def visible_unit_ids(self, org_id: int, member: Member) -> set[int]:
        """Units at or below the member's grant: what its reads may list."""
        async with self._engine.connect() as conn:
            grant = await self._unit_in(conn, org_id, member.unit_id)
            prefix = "/" + "/".join(str(part) for part in grant.path) + "/"
            rows = await _all(
                conn,
                sa.select(org_units.c.id).where(
                    org_units.c.org_id == org_id, org_units.c.path.startswith(prefix, autoescape=True)
                ),
            )
        return {row["id"] for row in rows}

    # ------------------------------------------------------------------------------------------- units

    async def _unit_in(self, conn: AsyncConnection, org_id: int, unit_id: int) -> Unit:
        row = await _one(
            conn,
            sa.select(org_units).where(
                org_units.c.id == unit_id,
                org_units.c.org_id == org_id,
                org_units.c.deleted_at_unix_s.is_(None),
            ),
        )
        if row is None:
            raise NotFound(f"no unit {unit_id} in organization {org_id}", code="unit_not_found", param="unit")
        return _unit(row)

    async def get_unit(self, org_id: int, unit_id: int) -> Unit:
        async with self._engine.connect() as conn:
            return await self._unit_in(conn, org_id, unit_id)

    async def list_units(self, org_id: int, visible: set[int]) -> list[Unit]:
        async with self._engine.connect() as conn:
            rows = await _all(
                conn,
                sa.select(org_units)
                .where(org_units.c.org_id == org_id, org_units.c.deleted_at_unix_s.is_(None))
                .order_by(org_units.c.id),
            )
        return [_unit(row) for row in rows if row["id"] in visible]

    async def create_unit(
        self, org_id: int, *, actor: str, name: str, parent_id: int | None, kind: UnitKind
    ) -> Unit:
        """A department under the root or a department; a team under the root or a department."""
        assert kind is not UnitKind.ORGANIZATION
        now = self._now()
        async with self._engine.begin() as conn:
            org = await self._org_in(conn, org_id)
            parent = await self._unit_in(conn, org_id, org.root_unit_id if parent_id is None else parent_id)
            if parent.kind is UnitKind.TEAM:
                raise InvalidRequest(
                    "a team holds members and keys, not units: choose the org or a department as parent",
                    code="invalid_parent",
                    param="parent",
                )
            if len(parent.path) >= UNIT_DEPTH_MAX:
                raise InvalidRequest(
                    f"units nest at most {UNIT_DEPTH_MAX} deep", code="invalid_parent", param="parent"
                )
            unit_id = _inserted_id(
                await conn.execute(
                    org_units.insert().values(
                        org_id=org_id,
                        parent_id=parent.id,
                        name=name,
                        kind=kind.value,
                        path="/",
                        created_at_unix_s=now,
                    )
                )
            )
            path = (*parent.path, unit_id)
            await conn.execute(
                org_units.update()
                .where(org_units.c.id == unit_id)
                .values(path="/" + "/".join(str(part) for part in path) + "/")
            )
            unit = Unit(
                id=unit_id,
                org_id=org_id,
                parent_id=parent.id,
                name=name,
                kind=kind,
                path=path,
                created_at=now,
            )
            await self._audit(
                conn,
                org_id=org_id,
                actor=actor,
                action="unit.create",
                target_kind="unit",
                target_id=unit_id,
                before=None,
                after=unit,
            )
        return unit

    async def update_unit(self, org_id: int, unit_id: int, *, actor: str, name: str) -> Unit:
        async with self._engine.begin() as conn:
            before = await self._unit_in(conn, org_id, unit_id)
            await conn.execute(org_units.update().where(org_units.c.id == unit_id).values(name=name))
            after = before.model_copy(update={"name": name})
            await self._audit(
                conn,
                org_id=org_id,
                actor=actor,
                action="unit.update",
                target_kind="unit",
                target_id=unit_id,
                before=before,
                after=after,
            )
        return after

    async def delete_unit(self, org_id: int, unit_id: int, *, actor: str) -> Unit:
        """Only an empty unit goes (no live sub-unit, member or key); never the root."""
        async with self._engine.begin() as conn:
            unit = await self._unit_in(conn, org_id, unit_id)
            if unit.kind is UnitKind.ORGANIZATION:
                raise OrgConflict("the root unit goes only with its organization", code="unit_is_root")
            occupied = [
                await conn.scalar(
                    sa.select(sa.func.count()).select_from(table).where(column == unit_id, live)
                )
                for table, column, live in (
                    (org_units, org_units.c.parent_id, org_units.c.deleted_at_unix_s.is_(None)),
                    (org_members, org_members.c.unit_id, org_members.c.deleted_at_unix_s.is_(None)),
                    (org_keys, org_keys.c.unit_id, org_keys.c.revoked_at_unix_s.is_(None)),
                )
            ]
            if any(occupied):
                raise OrgConflict(
                    f"unit {unit_id} still holds units, members or keys: move or remove them first",
                    code="unit_not_empty",
                )
            await conn.execute(
                org_units.update().where(org_units.c.id == unit_id).values(deleted_at_unix_s=self._now())
            )
            await self._audit(
                conn,
                org_id=org_id,
                actor=actor,
                action="unit.delete",
                target_kind="unit",
                target_id=unit_id,
                before=unit,
                after=None,
            )
        return unit

    # ----------------------------------------------------------------------------------------- members

    async def _member_in(self, conn: AsyncConnection, org_id: int, member_id: int) -> Member:
        row = await _one(
            conn,
            sa.select(org_members).where(
                org_members.c.id == member_id,
                org_members.c.org_id == org_id,
                org_members.c.deleted_at_unix_s.is_(None),
            ),
        )
        if row is None:
            raise NotFound(
                f"no member {member_id} in organization {org_id}", code="member_not_found", param="member"
            )
        return _member(row)

    async def get_member(self, org_id: int, member_id: int) -> Member:
        async with self._engine.connect() as conn:
            return await self._member_in(conn, org_id, member_id)

    async def list_members(self, org_id: int, visible: set[int]) -> list[Member]:
        async with self._engine.connect() as conn:
            rows = await _all(
                conn,
                sa.select(org_members)
                .where(org_members.c.org_id == org_id, org_members.c.deleted_at_unix_s.is_(None))
                .order_by(org_members.c.id),
            )
        return [_member(row) for row in rows if row["unit_id"] in visible]

    async def create_member(
        self, org_id: int, *, actor: str, wallet: str, unit_id: int, role: Role
    ) -> Member:
        wallet = wallet.lower()
        now = self._now()
        async with self._engine.begin() as conn:
            await self._unit_in(conn, org_id, unit_id)
            existing = await _one(
                conn,
                sa.select(org_members.c.id).where(
                    org_members.c.org_id == org_id,
                    org_members.c.wallet == wallet,
                    org_members.c.deleted_at_unix_s.is_(None),
                ),
            )
            if existing is not None:
                raise OrgConflict(
                    f"wallet {wallet} is already member {existing['id']} of this organization",
                    code="member_exists",
                )
            member_id = _inserted_id(
                await conn.execute(
                    org_members.insert().values(
                        org_id=org_id, wallet=wallet, unit_id=unit_id, role=role.value, created_at_unix_s=now
                    )
                )
            )
            member = Member(
                id=member_id, org_id=org_id, wallet=wallet, unit_id=unit_id, role=role, created_at=now
            )
            await self._audit(
                conn,
                org_id=org_id,
                actor=actor,
                action="member.create",
                target_kind="member",
                target_id=member_id,
                before=None,
                after=member,
            )
        return member

    async def update_member(
        self, org_id: int, member_id: int, *, actor: str, unit_id: int | None, role: Role | None
    ) -> Member:
        async with self._engine.begin() as conn:
            before = await self._member_in(conn, org_id, member_id)
            if unit_id is not None:
                await self._unit_in(conn, org_id, unit_id)
            after = before.model_copy(
                update={"unit_id": unit_id or before.unit_id, "role": role or before.role}
            )
            await self._keep_an_owner(conn, org_id, before, after)
            await conn.execute(
                org_members.update()
                .where(org_members.c.id == member_id)
                .values(unit_id=after.unit_id, role=after.role.value)
            )
            await self._audit(
                conn,
                org_id=org_id,
                actor=actor,
                action="member.update",
                target_kind="member",
                target_id=member_id,
                before=before,
                after=after,
            )
        return after

    async def delete_member(self, org_id: int, member_id: int, *, actor: str) -> Member:
        """Removes the member and revokes its own keys."""
        now = self._now()
        async with self._engine.begin() as conn:
            before = await self._member_in(conn, org_id, member_id)
            await self._keep_an_owner(conn, org_id, before, None)
            await conn.execute(
                org_members.update().where(org_members.c.id == member_id).values(deleted_at_unix_s=now)
            )
            await conn.execute(
                org_keys.update()
                .where(org_keys.c.member_id == member_id, org_keys.c.revoked_at_unix_s.is_(None))
                .values(revoked_at_unix_s=now)
            )
            await self._audit(
                conn,
                org_id=org_id,
                actor=actor,
                action="member.delete",
                target_kind="member",
                target_id=member_id,
                before=before,
                after=None,
            )
        return before

    async def _keep_an_owner(
        self, conn: AsyncConnection, org_id: int, before: Member, after: Member | None
    ) -> None:
        """An org always keeps an owner on its root: the last one cannot leave, move or step down."""
        org = await self._org_in(conn, org_id)
        was_root_owner = before.role is Role.OWNER and before.unit_id == org.root_unit_id
        stays = after is not None and after.role is Role.OWNER and after.unit_id == org.root_unit_id
        if not was_root_owner or stays:
            return
        owners = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(org_members)
            .where(
                org_members.c.org_id == org_id,
                org_members.c.unit_id == org.root_unit_id,
                org_members.c.role == Role.OWNER.value,
                org_members.c.deleted_at_unix_s.is_(None),
            )
        )
        if owners is not None and owners <= 1:
            raise OrgConflict("an organization keeps at least one owner on its root", code="last_owner")

    # -------------------------------------------------------------------------------------------- keys

    async def _key_in(self, conn: AsyncConnection, org_id: int, key_id: int) -> OrgKey:
        row = await _one(
            conn, sa.select(org_keys).where(org_keys.c.id == key_id, org_keys.c.org_id == org_id)
        )
        if row is None:
            raise NotFound(f"no key {key_id} in organization {org_id}", code="key_not_found", param="key")
        return _key(row)

    async def get_key(self, org_id: int, key_id: int) -> OrgKey:
        async with self._engine.connect() as conn:
            return await self._key_in(conn, org_id, key_id)

    async def list_keys(self, org_id: int, visible: set[int]) -> list[OrgKey]:
        async with self._engine.connect() as conn:
            rows = await _all(
                conn, sa.select(org_keys).where(org_keys.c.org_id == org_id).order_by(org_keys.c.id)
            )
        return [_key(row) for row in rows if row["unit_id"] in visible]

    async def key_unit(
        self, org_id: int, *, member_id: int | None, unit_id: int | None
    ) -> tuple[int, int | None]:
        """(unit, member) of a new key: a member's key sits in the member's unit; a service key in a team."""
        async with self._engine.connect() as conn:
            if member_id is not None:
                member = await self._member_in(conn, org_id, member_id)
                return member.unit_id, member.id
            assert unit_id is not None
            unit = await self._unit_in(conn, org_id, unit_id)
        if unit.kind is not UnitKind.TEAM:
            raise InvalidRequest("a service key belongs to a team", code="invalid_unit", param="unit")
        return unit.id, None

    async def create_key(
        self, org_id: int, *, actor: str, name: str, unit_id: int, member_id: int | None
    ) -> tuple[str, OrgKey]:
        """(the key, shown once; its record). Only the SHA-256 is stored."""
        secret = ORG_KEY_PREFIX + secrets.token_urlsafe(_KEY_RANDOM_BYTES)
        now = self._now()
        async with self._engine.begin() as conn:
            await self._org_in(conn, org_id)
            prefix = secret[: len(ORG_KEY_PREFIX) + _KEY_PREFIX_DISPLAY_CHARS]
            key_id = _inserted_id(
                await conn.execute(
                    org_keys.insert().values(
                        org_id=org_id,
                        unit_id=unit_id,
                        member_id=member_id,
                        name=name,
                        key_sha256=_sha256(secret),
                        key_prefix=prefix,
                        created_at_unix_s=now,
                    )
                )
            )
            key = OrgKey(
                id=key_id,
                org_id=org_id,
                unit_id=unit_id,
                member_id=member_id,
                name=name,
                prefix=prefix,
                created_at=now,
                revoked_at=None,
            )
            await self._audit(
                conn,
                org_id=org_id,
                actor=actor,
                action="key.create",
                target_kind="key",
                target_id=key_id,
                before=None,
                after=key,
            )
        return secret, key

    async def revoke_key(self, org_id: int, key_id: int, *, actor: str) -> OrgKey:
        """Revokes the key (idempotent: a second revoke changes and records nothing)."""
        now = self._now()
        async with self._engine.begin() as conn:
            before = await self._key_in(conn, org_id, key_id)
            if before.revoked_at is not None:
                return before
            await conn.execute(org_keys.update().where(org_keys.c.id == key_id).values(revoked_at_unix_s=now))
            after = before.model_copy(update={"revoked_at": now})
            await self._audit(
                conn,
                org_id=org_id,
                actor=actor,
                action="key.revoke",
                target_kind="key",
                target_id=key_id,
                before=before,
                after=after,
            )
        return after

    async def authenticate_key(self, secret: str) -> OrgPrincipal:
        """The principal of a live org key of a live org, or AuthenticationFailed."""
        async with self._engine.connect() as conn:
            row = await _one(
                conn,
                sa.select(
                    org_keys, org_units.c.path, org_organizations.c.deleted_at_unix_s.label("org_deleted")
                )
                .join(org_units, org_units.c.id == org_keys.c.unit_id)
                .join(org_organizations, org_organizations.c.id == org_keys.c.org_id)
                .where(org_keys.c.key_sha256 == _sha256(secret)),
            )
        if row is None:
            raise AuthenticationFailed("Incorrect API key provided", code="invalid_api_key")
        if row["revoked_at_unix_s"] is not None or row["org_deleted"] is not None:
            raise AuthenticationFailed("This API key has been revoked", code="api_key_revoked")
        return OrgPrincipal(
            org_id=row["org_id"],
            key_id=row["id"],
            unit_id=row["unit_id"],
            unit_path=_path(row["path"]),
            member_id=row["member_id"],
            credit_account=org_credit_account(row["org_id"]),
        )

    # ----------------------------------------------------------------------------------------- budgets

    async def _budget_in(self, conn: AsyncConnection, org_id: int, budget_id: int) -> Budget:
        row = await _one(
            conn,
            sa.select(org_budgets).where(
                org_budgets.c.id == budget_id,
                org_budgets.c.org_id == org_id,
                org_budgets.c.deleted_at_unix_s.is_(None),
            ),
        )
        if row is None:
            raise NotFound(
                f"no budget {budget_id} in organization {org_id}", code="budget_not_found", param="budget"
            )
        return _budget(row)

    async def get_budget(self, org_id: int, budget_id: int) -> Budget:
        async with self._engine.connect() as conn:
            return await self._budget_in(conn, org_id, budget_id)

    async def scope_unit(self, org_id: int, scope_kind: ScopeKind, scope_id: int) -> int:
        """The unit a budget's scope sits in (for permissions): the root, the unit, the member's or key's."""
        async with self._engine.connect() as conn:
            org = await self._org_in(conn, org_id)
            if scope_kind is ScopeKind.ORG:
                if scope_id != org_id:
                    raise InvalidRequest(
                        "scope.org must be this organization", code="invalid_scope", param="scope"
                    )
                return org.root_unit_id
            if scope_kind is ScopeKind.UNIT:
                return (await self._unit_in(conn, org_id, scope_id)).id
            if scope_kind is ScopeKind.MEMBER:
                return (await self._member_in(conn, org_id, scope_id)).unit_id
            key = await self._key_in(conn, org_id, scope_id)
            if key.revoked_at is not None:
                raise InvalidRequest(f"key {scope_id} is revoked", code="invalid_scope", param="scope")
            return key.unit_id

    async def list_budgets(self, org_id: int, visible: set[int]) -> list[Budget]:
        async with self._engine.connect() as conn:
            rows = await _all(
                conn,
                sa.select(org_budgets)
                .where(org_budgets.c.org_id == org_id, org_budgets.c.deleted_at_unix_s.is_(None))
                .order_by(org_budgets.c.id),
            )
        budgets = [_budget(row) for row in rows]
        return [b for b in budgets if await self.scope_unit(org_id, b.scope_kind, b.scope_id) in visible]

    async def live_budgets(self) -> list[tuple[str, Budget]]:
        """Every budget of every live organization, with its organization's name (the operator's view)."""
        statement = (
            sa.select(org_budgets, org_organizations.c.name.label("org_name"))
            .join(org_organizations, org_organizations.c.id == org_budgets.c.org_id)
            .where(org_budgets.c.deleted_at_unix_s.is_(None), org_organizations.c.deleted_at_unix_s.is_(None))
            .order_by(org_budgets.c.org_id, org_budgets.c.id)
        )
        async with self._engine.connect() as conn:
            rows = await _all(conn, statement)
        return [(row["org_name"], _budget(row)) for row in rows]

    async def create_budget(
        self,
        org_id: int,
        *,
        actor: str,
        scope_kind: ScopeKind,
        scope_id: int,
        amount_nano_usd: int,
        period: Period,
        mode: BudgetMode,
        alert_at_bp: Sequence[int],
    ) -> Budget:
        assert amount_nano_usd > 0
        now = self._now()
        thresholds = tuple(sorted(set(alert_at_bp)))
        async with self._engine.begin() as conn:
            budget_id = _inserted_id(
                await conn.execute(
                    org_budgets.insert().values(
                        org_id=org_id,
                        scope_kind=scope_kind.value,
                        scope_id=scope_id,
                        amount_nano_usd=amount_nano_usd,
                        period=period.value,
                        mode=mode.value,
                        alert_at_bp_json=json.dumps(list(thresholds)),
                        created_at_unix_s=now,
                    )
                )
            )
            budget = Budget(
                id=budget_id,
                org_id=org_id,
                scope_kind=scope_kind,
                scope_id=scope_id,
                amount_nano_usd=amount_nano_usd,
                period=period,
                mode=mode,
                alert_at_bp=thresholds,
                created_at=now,
            )
            await self._audit(
                conn,
                org_id=org_id,
                actor=actor,
                action="budget.create",
                target_kind="budget",
                target_id=budget_id,
                before=None,
                after=budget,
            )
        return budget

    async def update_budget(
        self,
        org_id: int,
        budget_id: int,
        *,
        actor: str,
        amount_nano_usd: int | None,
        alert_at_bp: Sequence[int] | None,
    ) -> tuple[Budget, Budget]:
        """(before, after). The amount and thresholds change; scope, period and mode do not (a new budget)."""
        async with self._engine.begin() as conn:
            before = await self._budget_in(conn, org_id, budget_id)
            after = before.model_copy(
                update={
                    "amount_nano_usd": amount_nano_usd or before.amount_nano_usd,
                    "alert_at_bp": before.alert_at_bp
                    if alert_at_bp is None
                    else tuple(sorted(set(alert_at_bp))),
                }
            )
            await conn.execute(
                org_budgets.update()
                .where(org_budgets.c.id == budget_id)
                .values(
                    amount_nano_usd=after.amount_nano_usd,
                    alert_at_bp_json=json.dumps(list(after.alert_at_bp)),
                )
            )
            await self._audit(
                conn,
                org_id=org_id,
                actor=actor,
                action="budget.update",
                target_kind="budget",
                target_id=budget_id,
                before=before,
                after=after,
            )
        return before, after

    async def delete_budget(self, org_id: int, budget_id: int, *, actor: str) -> Budget:
        async with self._engine.begin() as conn:
            before = await self._budget_in(conn, org_id, budget_id)
            await conn.execute(
                org_budgets.update()
                .where(org_budgets.c.id == budget_id)
                .values(deleted_at_unix_s=self._now())
            )
            await self._audit(
                conn,
                org_id=org_id,
                actor=actor,
                action="budget.delete",
                target_kind="budget",
                target_id=budget_id,
                before=before,
                after=None,
            )
        return before

    async def budgets_on_path(self, principal: OrgPrincipal) -> list[Budget]:
        """Every live budget a request made with this key must fit: the org's, each unit's on the path,
        the member's (a member's own key) and the key's. Ordered most specific first."""
        scopes = [
            sa.and_(
                org_budgets.c.scope_kind == ScopeKind.KEY.value, org_budgets.c.scope_id == principal.key_id
            ),
            sa.and_(
                org_budgets.c.scope_kind == ScopeKind.UNIT.value,
                org_budgets.c.scope_id.in_(principal.unit_path),
            ),
            sa.and_(
                org_budgets.c.scope_kind == ScopeKind.ORG.value, org_budgets.c.scope_id == principal.org_id
            ),
        ]
        if principal.member_id is not None:
            scopes.append(
                sa.and_(
                    org_budgets.c.scope_kind == ScopeKind.MEMBER.value,
                    org_budgets.c.scope_id == principal.member_id,
                )
            )
        async with self._engine.connect() as conn:
            rows = await _all(
                conn,
                sa.select(org_budgets).where(
                    org_budgets.c.org_id == principal.org_id,
                    org_budgets.c.deleted_at_unix_s.is_(None),
                    sa.or_(*scopes),
                ),
            )
        depth = {unit_id: index for index, unit_id in enumerate(principal.unit_path)}
        rank = {ScopeKind.KEY: 0, ScopeKind.MEMBER: 1, ScopeKind.UNIT: 2, ScopeKind.ORG: 3}

        def specificity(budget: Budget) -> tuple[int, int, int]:
            unit_depth = -depth.get(budget.scope_id, 0) if budget.scope_kind is ScopeKind.UNIT else 0
            return rank[budget.scope_kind], unit_depth, budget.id

        return sorted((_budget(row) for row in rows), key=specificity)

    # ------------------------------------------------------------------------------------- rate limits

    async def _rate_limit_in(self, conn: AsyncConnection, org_id: int, limit_id: int) -> RateLimit:
        row = await _one(
            conn,
            sa.select(org_rate_limits).where(
                org_rate_limits.c.id == limit_id,
                org_rate_limits.c.org_id == org_id,
                org_rate_limits.c.deleted_at_unix_s.is_(None),
            ),
        )
        if row is None:
            raise NotFound(
                f"no rate limit {limit_id} in organization {org_id}",
                code="rate_limit_not_found",
                param="rate_limit",
            )
        return _rate_limit(row)

    async def get_rate_limit(self, org_id: int, limit_id: int) -> RateLimit:
        async with self._engine.connect() as conn:
            return await self._rate_limit_in(conn, org_id, limit_id)

    async def list_rate_limits(self, org_id: int) -> list[RateLimit]:
        async with self._engine.connect() as conn:
            rows = await _all(
                conn,
                sa.select(org_rate_limits)
                .where(org_rate_limits.c.org_id == org_id, org_rate_limits.c.deleted_at_unix_s.is_(None))
                .order_by(org_rate_limits.c.id),
            )
        return [_rate_limit(row) for row in rows]

    async def create_rate_limit(
        self,
        org_id: int,
        *,
        actor: str,
        scope_kind: ScopeKind,
        scope_id: int,
        requests_per_minute: int | None,
        tokens_per_minute: int | None,
    ) -> RateLimit:
        assert scope_kind in (ScopeKind.UNIT, ScopeKind.KEY)
        async with self._engine.begin() as conn:
            limit_id = _inserted_id(
                await conn.execute(
                    org_rate_limits.insert().values(
                        org_id=org_id,
                        scope_kind=scope_kind.value,
                        scope_id=scope_id,
                        requests_per_minute=requests_per_minute,
                        tokens_per_minute=tokens_per_minute,
                        created_at_unix_s=self._now(),
                    )
                )
            )
            limit = RateLimit(limit_id, org_id, scope_kind, scope_id, requests_per_minute, tokens_per_minute)
            await self._audit(
                conn,
                org_id=org_id,
                actor=actor,
                action="rate_limit.create",
                target_kind="rate_limit",
                target_id=limit_id,
                before=None,
                after=_RateLimitView.of(limit),
            )
        return limit

    async def update_rate_limit(
        self,
        org_id: int,
        limit_id: int,
        *,
        actor: str,
        requests_per_minute: int | None,
        tokens_per_minute: int | None,
    ) -> RateLimit:
        """Both values are set as given (None removes that limit)."""
        async with self._engine.begin() as conn:
            before = await self._rate_limit_in(conn, org_id, limit_id)
            await conn.execute(
                org_rate_limits.update()
                .where(org_rate_limits.c.id == limit_id)
                .values(requests_per_minute=requests_per_minute, tokens_per_minute=tokens_per_minute)
            )
            after = RateLimit(
                limit_id, org_id, before.scope_kind, before.scope_id, requests_per_minute, tokens_per_minute
            )
            await self._audit(
                conn,
                org_id=org_id,
                actor=actor,
                action="rate_limit.update",
                target_kind="rate_limit",
                target_id=limit_id,
                before=_RateLimitView.of(before),
                after=_RateLimitView.of(after),
            )
        return after

    async def delete_rate_limit(self, org_id: int, limit_id: int, *, actor: str) -> RateLimit:
        async with self._engine.begin() as conn:
            before = await self._rate_limit_in(conn, org_id, limit_id)
            await conn.execute(
                org_rate_limits.update()
                .where(org_rate_limits.c.id == limit_id)
                .values(deleted_at_unix_s=self._now())
            )
            await self._audit(
                conn,
                org_id=org_id,
                actor=actor,
                action="rate_limit.delete",
                target_kind="rate_limit",
                target_id=limit_id,
                before=_RateLimitView.of(before),
                after=None,
            )
        return before

    async def rate_limits_on_path(self, principal: OrgPrincipal) -> list[RateLimit]:
        """The key's rate limits and each unit's on its path, most specific first."""
        async with self._engine.connect() as conn:
            rows = await _all(
                conn,
                sa.select(org_rate_limits).where(
                    org_rate_limits.c.org_id == principal.org_id,
                    org_rate_limits.c.deleted_at_unix_s.is_(None),
                    sa.or_(
                        sa.and_(
                            org_rate_limits.c.scope_kind == ScopeKind.KEY.value,
                            org_rate_limits.c.scope_id == principal.key_id,
                        ),
                        sa.and_(
                            org_rate_limits.c.scope_kind == ScopeKind.UNIT.value,
                            org_rate_limits.c.scope_id.in_(principal.unit_path),
                        ),
                    ),
                ),
            )
        depth = {unit_id: index for index, unit_id in enumerate(principal.unit_path)}
        limits = [_rate_limit(row) for row in rows]
        return sorted(limits, key=lambda x: (x.scope_kind is ScopeKind.UNIT, -depth.get(x.scope_id, 0), x.id))

    # --------------------------------------------------------------------------------- deposit wallets

    async def register_deposit_wallet(self, org_id: int, *, wallet: str) -> None:
        """From now on the wallet's plain transfers to the settlement wallet credit this org (the wallet
        itself asks: nobody can send another wallet's deposits to their org). Idempotent."""
        wallet = wallet.lower()
        async with self._engine.begin() as conn:
            await self._org_in(conn, org_id)
            existing = await _one(
                conn, sa.select(org_deposit_wallets).where(org_deposit_wallets.c.wallet == wallet)
            )
            if existing is not None:
                if existing["org_id"] != org_id:
                    raise OrgConflict(
                        f"wallet {wallet} already deposits to organization {existing['org_id']}",
                        code="deposit_wallet_taken",
                    )
                return
            await conn.execute(
                org_deposit_wallets.insert().values(
                    wallet=wallet, org_id=org_id, registered_at_unix_s=self._now()
                )
            )
            await self._audit(
                conn,
                org_id=org_id,
                actor=wallet,
                action="deposit_wallet.register",
                target_kind="wallet",
                target_id=None,
                before=None,
                after=None,
            )

    async def unregister_deposit_wallet(self, org_id: int, *, wallet: str, actor: str) -> bool:
        wallet = wallet.lower()
        async with self._engine.begin() as conn:
            removed = await conn.execute(
                org_deposit_wallets.delete().where(
                    org_deposit_wallets.c.wallet == wallet, org_deposit_wallets.c.org_id == org_id
                )
            )
            if removed.rowcount != 1:
                return False
            await self._audit(
                conn,
                org_id=org_id,
                actor=actor,
                action="deposit_wallet.unregister",
                target_kind="wallet",
                target_id=None,
                before=None,
                after=None,
            )
        return True

    async def deposit_wallets(self, org_id: int) -> list[str]:
        async with self._engine.connect() as conn:
            rows = await _all(
                conn,
                sa.select(org_deposit_wallets.c.wallet)
                .where(org_deposit_wallets.c.org_id == org_id)
                .order_by(org_deposit_wallets.c.wallet),
            )
        return [row["wallet"] for row in rows]

    async def deposit_credit_account(self, sender: str) -> str | None:
        """The org credit a plain transfer from `sender` goes to, or None (the sender's own credit)."""
        async with self._engine.connect() as conn:
            row = await _one(
                conn,
                sa.select(org_deposit_wallets.c.org_id).where(org_deposit_wallets.c.wallet == sender.lower()),
            )
        return None if row is None else org_credit_account(row["org_id"])

    # ------------------------------------------------------------------------------------------- audit

    async def audit(
        self, org_id: int, *, limit: int = AUDIT_LISTED_MAX, before_id: int | None = None
    ) -> list[AuditEntry]:
        """Newest first."""
        assert 1 <= limit <= AUDIT_LISTED_MAX
        statement = sa.select(org_audit_log).where(org_audit_log.c.org_id == org_id)
        if before_id is not None:
            statement = statement.where(org_audit_log.c.id < before_id)
        async with self._engine.connect() as conn:
            rows = await _all(conn, statement.order_by(org_audit_log.c.id.desc()).limit(limit))
        return [_audit_entry(row) for row in rows]

    async def record(
        self, org_id: int, *, actor: str, action: str, target_kind: str, target_id: int | None, after: Any
    ) -> None:
        """An audit entry for an action whose effect lives elsewhere (a top-up booked in the ledger)."""
        async with self._engine.begin() as conn:
            await self._audit(
                conn,
                org_id=org_id,
                actor=actor,
                action=action,
                target_kind=target_kind,
                target_id=target_id,
                before=None,
                after=after,
            )


def rate_limit_view(limit: RateLimit) -> BaseModel:
    return _RateLimitView.of(limit)
