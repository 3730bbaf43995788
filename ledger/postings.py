"""Pure posting rules: validation before insert, body hashing for idempotency, balance arithmetic.

No I/O here. The database checks balance again (a deferred constraint trigger on PostgreSQL).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from ledger.errors import InvalidPostings, UnbalancedTransaction
from ledger.types import INT64_MAX, AccountFlags, AccountType, Posting, normal_side_is_debit

__all__ = [
    "POSTINGS_MAX",
    "body_hash",
    "normal_balance",
    "outgoing_pending",
    "sums_by_unit",
    "validate_postings",
    "would_go_negative",
]

POSTINGS_MAX = 64


def validate_postings(postings: Iterable[Posting], units: Mapping[str, str]) -> dict[str, int]:
    """Check a transaction's postings and return its sums per unit (all zero when valid).

    `units` maps each account name to its unit. Raises InvalidPostings for empty, oversized, zero-amount or
    repeated-account postings and UnbalancedTransaction when a unit does not sum to zero.
    """
    items = list(postings)
    if len(items) < 2:
        raise InvalidPostings("a transaction needs at least two postings")
    if len(items) > POSTINGS_MAX:
        raise InvalidPostings(f"a transaction has at most {POSTINGS_MAX} postings, got {len(items)}")
    seen: set[str] = set()
    for posting in items:
        if posting.amount == 0:
            raise InvalidPostings(f"posting to {posting.account} has amount 0")
        if posting.account in seen:
            raise InvalidPostings(f"account {posting.account} appears twice; merge its postings")
        seen.add(posting.account)
    sums = sums_by_unit((units[p.account], p.amount) for p in items)
    unbalanced = {unit: total for unit, total in sums.items() if total != 0}
    if unbalanced:
        raise UnbalancedTransaction(f"postings do not sum to zero per unit: {unbalanced}")
    return sums


def sums_by_unit(amounts: Iterable[tuple[str, int]]) -> dict[str, int]:
    sums: dict[str, int] = {}
    for unit, amount in amounts:
        sums[unit] = sums.get(unit, 0) + amount
    return sums


def normal_balance(account_type: AccountType, *, debits: int, credits: int) -> int:
    """Balance on the account's normal side."""
    return debits - credits if normal_side_is_debit(account_type) else credits - debits


def outgoing_pending(account_type: AccountType, *, debits_pending: int, credits_pending: int) -> int:
    """Holds that reduce the account on its normal side once captured."""
    return credits_pending if normal_side_is_debit(account_type) else debits_pending


def would_go_negative(
    account_type: AccountType,
    flags: AccountFlags,
    *,
    debits_posted: int,
    credits_posted: int,
    debits_pending: int,
    credits_pending: int,
) -> bool:
    """True when a must-not-go-negative account's available balance (posted - outgoing holds) is below 0.

    Incoming holds do not count: money not yet received cannot be spent (TigerBeetle's rule).
    """
    for value in (debits_posted, credits_posted, debits_pending, credits_pending):
        assert 0 <= value <= INT64_MAX, "cached balances are non-negative int64"
    if AccountFlags.MUST_NOT_GO_NEGATIVE not in flags:
        return False
    posted = normal_balance(account_type, debits=debits_posted, credits=credits_posted)
    pending = outgoing_pending(account_type, debits_pending=debits_pending, credits_pending=credits_pending)
    return posted - pending < 0


def body_hash(body: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a request body: equal bodies replay, different ones conflict."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()
