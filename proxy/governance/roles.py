"""Roles and the permission matrix: which role may do which admin action, on a unit at or below its grant.

A member holds one role on one unit (its grant); the role applies to that unit and to every unit below it.
Organization-wide actions (the org itself, its credit, spend and audit log) target the root unit, so only a
grant on the root covers them. The README prints this matrix; tests check every cell through the API.
"""

from __future__ import annotations

import enum

__all__ = ["ORG_WIDE_ACTIONS", "PERMISSIONS", "Action", "Role", "role_allows"]


class Role(enum.StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    BILLING = "billing"
    DEVELOPER = "developer"
    VIEWER = "viewer"


class Action(enum.StrEnum):
    READ = "read"  # the org, its units, members, keys and budgets at or below the grant
    ORG_UPDATE = "org.update"
    ORG_DELETE = "org.delete"
    UNIT_WRITE = "unit.write"  # create, rename, delete a unit
    MEMBER_WRITE = "member.write"  # add, change, remove a member (roles other than owner)
    OWNER_GRANT = "member.owner"  # grant, change or remove the owner role
    KEY_WRITE = "key.write"  # issue or revoke an org key
    BUDGET_WRITE = "budget.write"  # create, change, delete a budget
    CREDITS_READ = "credits.read"
    CREDITS_TOPUP = "credits.topup"
    SPEND_READ = "spend.read"
    AUDIT_READ = "audit.read"


# Actions that concern the whole organization: allowed only by a grant on its root unit.
ORG_WIDE_ACTIONS = frozenset(
    {
        Action.ORG_UPDATE,
        Action.ORG_DELETE,
        Action.CREDITS_READ,
        Action.CREDITS_TOPUP,
        Action.SPEND_READ,
        Action.AUDIT_READ,
    }
)

_EVERYTHING = frozenset(Action)
PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.OWNER: _EVERYTHING,
    Role.ADMIN: _EVERYTHING - {Action.ORG_DELETE, Action.OWNER_GRANT},
    Role.BILLING: frozenset(
        {
            Action.READ,
            Action.BUDGET_WRITE,
            Action.CREDITS_READ,
            Action.CREDITS_TOPUP,
            Action.SPEND_READ,
            Action.AUDIT_READ,
        }
    ),
    Role.DEVELOPER: frozenset({Action.READ, Action.KEY_WRITE}),
    Role.VIEWER: frozenset({Action.READ, Action.CREDITS_READ, Action.SPEND_READ}),
}


def role_allows(role: Role, action: Action) -> bool:
    return action in PERMISSIONS[role]
