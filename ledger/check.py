"""Invariant checker: re-derives everything the ledger caches and reports each disagreement as a Problem.

Checks: every transaction has at least two entries and sums to zero per unit; over all accounts, debits equal
credits per unit (posted and pending); cached posted sums equal the entries; cached pending sums equal the
open holds; no must-not-go-negative account is below zero; each hold is resolved at most once and its state
agrees with its resolution; each hold group has members that share its state, expiry and code, and is
resolved at most once, by a resolution that agrees with its state. Read-only; it never fixes anything (a
correcting transaction does).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger.postings import would_go_negative
from ledger.tables import ledger_metadata
from ledger.types import AccountFlags, AccountType, HoldState

__all__ = ["Problem", "check_ledger"]

ACCOUNTS = ledger_metadata.tables["ledger_accounts"]
TRANSACTIONS = ledger_metadata.tables["ledger_transactions"]
ENTRIES = ledger_metadata.tables["ledger_entries"]
HOLDS = ledger_metadata.tables["ledger_holds"]
RESOLUTIONS = ledger_metadata.tables["ledger_hold_resolutions"]
GROUPS = ledger_metadata.tables["ledger_hold_groups"]
GROUP_RESOLUTIONS = ledger_metadata.tables["ledger_hold_group_resolutions"]
SIDE_PAIRS = (("debits_posted", "credits_posted"), ("debits_pending", "credits_pending"))


class Problem(BaseModel):
    """One broken invariant: a stable `kind`, the thing it concerns, and a sentence saying what is wrong."""

    model_config = ConfigDict(frozen=True)

    kind: str
    subject: str
    detail: str


async def check_ledger(engine: AsyncEngine) -> list[Problem]:
    """Return every invariant violation found; an empty list means the books are consistent."""
    async with engine.connect() as conn:
        problems = await _transactions_balance(conn)
        problems += await _accounts_match(conn)
        problems += await _holds_consistent(conn)
        problems += await _groups_consistent(conn)
    return problems


async def _transactions_balance(conn: AsyncConnection) -> list[Problem]:
    problems: list[Problem] = []
    joined = ENTRIES.join(ACCOUNTS, ACCOUNTS.c.id == ENTRIES.c.account_id)
    unbalanced = await conn.execute(
        sa.select(ENTRIES.c.transaction_id, ACCOUNTS.c.unit, sa.func.sum(ENTRIES.c.amount))
        .select_from(joined)
        .group_by(ENTRIES.c.transaction_id, ACCOUNTS.c.unit)
        .having(sa.func.sum(ENTRIES.c.amount) != 0)
    )
    for transaction_id, unit, total in unbalanced:
        problems.append(
            Problem(
                kind="unbalanced_transaction",
                subject=f"transaction {transaction_id}",
                detail=f"entries sum to {total} {unit}, not 0",
            )
        )
    counts = (
        sa.select(ENTRIES.c.transaction_id, sa.func.count().label("n"))
        .group_by(ENTRIES.c.transaction_id)
        .subquery()
    )
    short = await conn.execute(
        sa.select(TRANSACTIONS.c.id, sa.func.coalesce(counts.c.n, 0))
        .select_from(TRANSACTIONS.outerjoin(counts, counts.c.transaction_id == TRANSACTIONS.c.id))
        .where(sa.func.coalesce(counts.c.n, 0) < 2)
    )
    for transaction_id, n in short:
        problems.append(
            Problem(
                kind="transaction_without_entries",
                subject=f"transaction {transaction_id}",
                detail=f"has {n} entries; a transaction needs at least two",
            )
        )
    return problems


async def _accounts_match(conn: AsyncConnection) -> list[Problem]:
    derived: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    posted = await conn.execute(
        sa.select(
            ENTRIES.c.account_id,
            sa.func.sum(sa.case((ENTRIES.c.amount > 0, ENTRIES.c.amount), else_=0)),
            sa.func.sum(sa.case((ENTRIES.c.amount < 0, -ENTRIES.c.amount), else_=0)),
        ).group_by(ENTRIES.c.account_id)
    )
    for account_id, debits, credits in posted:
        derived[account_id]["debits_posted"] = int(debits)
        derived[account_id]["credits_posted"] = int(credits)
    pending = HOLDS.c.state == HoldState.PENDING.value
    for column, side in (("debit_account_id", "debits_pending"), ("credit_account_id", "credits_pending")):
        rows = await conn.execute(
            sa.select(HOLDS.c[column], sa.func.sum(HOLDS.c.amount)).where(pending).group_by(HOLDS.c[column])
        )
        for account_id, total in rows:
            derived[account_id][side] = int(total)
    problems: list[Problem] = []
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in (await conn.execute(sa.select(ACCOUNTS).order_by(ACCOUNTS.c.id))).mappings():
        problems += _account_problems(row, derived[row["id"]])
        for side in ("debits_posted", "credits_posted", "debits_pending", "credits_pending"):
            totals[row["unit"]][side] += int(row[side])
    for unit, sums in sorted(totals.items()):
        for debit_side, credit_side in (
            ("debits_posted", "credits_posted"),
            ("debits_pending", "credits_pending"),
        ):
            if sums[debit_side] != sums[credit_side]:
                problems.append(
                    Problem(
                        kind="unit_unbalanced",
                        subject=f"unit {unit}",
                        detail=f"{debit_side} {sums[debit_side]} != {credit_side} {sums[credit_side]}",
                    )
                )
    return problems


def _account_problems(row: Any, derived: dict[str, int]) -> list[Problem]:
    problems = []
    for side in ("debits_posted", "credits_posted", "debits_pending", "credits_pending"):
        if int(row[side]) != derived[side]:
            problems.append(
                Problem(
                    kind="cached_balance_mismatch",
                    subject=f"account {row['name']}",
                    detail=f"cached {side} is {row[side]} but the entries and holds give {derived[side]}",
                )
            )
    if would_go_negative(
        AccountType(row["type"]),
        AccountFlags(row["flags"]),
        debits_posted=derived["debits_posted"],
        credits_posted=derived["credits_posted"],
        debits_pending=derived["debits_pending"],
        credits_pending=derived["credits_pending"],
    ):
        problems.append(
            Problem(
                kind="negative_balance",
                subject=f"account {row['name']}",
                detail="must not go negative, but posted minus outgoing holds is below zero",
            )
        )
    return problems


async def _holds_consistent(conn: AsyncConnection) -> list[Problem]:
    problems: list[Problem] = []
    resolutions: dict[int, list[Any]] = defaultdict(list)
    for row in (await conn.execute(sa.select(RESOLUTIONS))).mappings():
        resolutions[row["hold_id"]].append(row)
    captured: dict[int, int] = {
        hold_id: count
        for hold_id, count in (
            await conn.execute(
                sa.select(TRANSACTIONS.c.hold_id, sa.func.count())
                .where(TRANSACTIONS.c.hold_id.is_not(None))
                .group_by(TRANSACTIONS.c.hold_id)
            )
        ).all()
    }
    for hold in (await conn.execute(sa.select(HOLDS).order_by(HOLDS.c.id))).mappings():
        found = resolutions.get(hold["id"], [])
        subject = f"hold {hold['id']}"
        if len(found) > 1 or captured.get(hold["id"], 0) > 1:
            problems.append(
                Problem(kind="hold_resolved_twice", subject=subject, detail=f"{len(found)} resolutions")
            )
            continue
        if hold["state"] == HoldState.PENDING.value:
            if found:
                problems.append(
                    Problem(
                        kind="hold_state_mismatch", subject=subject, detail="pending but has a resolution"
                    )
                )
            continue
        if (
            not found
            or found[0]["kind"] != hold["state"]
            or found[0]["amount"] != (hold["captured_amount"] or 0)
        ):
            problems.append(
                Problem(
                    kind="hold_state_mismatch",
                    subject=subject,
                    detail=f"state {hold['state']} does not match its resolution record",
                )
            )
        if (hold["captured_amount"] or 0) > hold["amount"]:
            problems.append(
                Problem(kind="capture_exceeds_hold", subject=subject, detail="captured more than was held")
            )
    return problems


async def _groups_consistent(conn: AsyncConnection) -> list[Problem]:
    members: dict[int, list[Any]] = defaultdict(list)
    for hold in (
        await conn.execute(sa.select(HOLDS).where(HOLDS.c.group_id.is_not(None)).order_by(HOLDS.c.id))
    ).mappings():
        members[hold["group_id"]].append(hold)
    resolutions: dict[int, list[Any]] = defaultdict(list)
    for row in (await conn.execute(sa.select(GROUP_RESOLUTIONS))).mappings():
        resolutions[row["group_id"]].append(row)
    problems: list[Problem] = []
    for group in (await conn.execute(sa.select(GROUPS).order_by(GROUPS.c.id))).mappings():
        problems += _group_problems(group, members.get(group["id"], []), resolutions.get(group["id"], []))
    return problems


def _group_problems(group: Any, members: list[Any], resolutions: list[Any]) -> list[Problem]:
    subject = f"hold group {group['id']}"
    if not members:
        return [Problem(kind="hold_group_empty", subject=subject, detail="has no holds")]
    problems = []
    for hold in members:
        shared = (hold["state"], hold["expires_at_unix_ms"], hold["code"])
        if shared != (group["state"], group["expires_at_unix_ms"], group["code"]):
            problems.append(
                Problem(
                    kind="hold_group_member_mismatch",
                    subject=subject,
                    detail=f"hold {hold['id']} is {shared}, the group {group['state']}",
                )
            )
    if len(resolutions) > 1:
        problems.append(
            Problem(
                kind="hold_group_resolved_twice", subject=subject, detail=f"{len(resolutions)} resolutions"
            )
        )
    elif group["state"] == HoldState.PENDING.value and resolutions:
        problems.append(
            Problem(kind="hold_group_state_mismatch", subject=subject, detail="pending but has a resolution")
        )
    elif group["state"] != HoldState.PENDING.value and (
        not resolutions or resolutions[0]["kind"] != group["state"]
    ):
        problems.append(
            Problem(
                kind="hold_group_state_mismatch",
                subject=subject,
                detail=f"state {group['state']} does not match its resolution record",
            )
        )
    return problems
