"""Pure posting rules: validation, sums per unit, normal-side balances, the overdraw rule, body hashing."""

from __future__ import annotations

import pytest

from ledger.errors import InvalidPostings, UnbalancedTransaction
from ledger.postings import (
    POSTINGS_MAX,
    body_hash,
    normal_balance,
    outgoing_pending,
    validate_postings,
    would_go_negative,
)
from ledger.types import AccountFlags, AccountType, Posting

UNITS = {"a": "nano_usd", "b": "nano_usd", "c": "nano_usd", "x": "atomic_usdc", "y": "atomic_usdc"}


def postings(*pairs: tuple[str, int]) -> list[Posting]:
    return [Posting(account=name, amount=amount) for name, amount in pairs]


def test_balanced_postings_pass_with_zero_sums() -> None:
    assert validate_postings(postings(("a", 5), ("b", -3), ("c", -2)), UNITS) == {"nano_usd": 0}
    assert validate_postings(postings(("a", 5), ("b", -5), ("x", 1), ("y", -1)), UNITS) == {
        "nano_usd": 0,
        "atomic_usdc": 0,
    }


@pytest.mark.parametrize(
    "pairs",
    [
        [("a", 5), ("b", -4)],
        [("a", 5), ("x", -5)],  # balanced in total but not per unit
    ],
)
def test_unbalanced_postings_are_refused(pairs: list[tuple[str, int]]) -> None:
    with pytest.raises(UnbalancedTransaction):
        validate_postings(postings(*pairs), UNITS)


@pytest.mark.parametrize(
    "pairs",
    [
        [("a", 5)],
        [("a", 0), ("b", 0)],
        [("a", 5), ("a", -5)],
    ],
)
def test_malformed_postings_are_refused(pairs: list[tuple[str, int]]) -> None:
    with pytest.raises(InvalidPostings):
        validate_postings(postings(*pairs), UNITS)


def test_too_many_postings_are_refused() -> None:
    names = {f"n{i}": "u" for i in range(POSTINGS_MAX + 1)}
    many = [Posting(account=name, amount=1 if i % 2 else -1) for i, name in enumerate(names)]
    with pytest.raises(InvalidPostings):
        validate_postings(many, names)


def test_normal_side() -> None:
    assert normal_balance(AccountType.ASSET, debits=10, credits=3) == 7
    assert normal_balance(AccountType.LIABILITY, debits=10, credits=3) == -7
    assert outgoing_pending(AccountType.LIABILITY, debits_pending=4, credits_pending=9) == 4
    assert outgoing_pending(AccountType.ASSET, debits_pending=4, credits_pending=9) == 9


def test_would_go_negative_counts_outgoing_holds_only_for_flagged_accounts() -> None:
    flagged = AccountFlags.MUST_NOT_GO_NEGATIVE
    sums = {"debits_posted": 0, "credits_posted": 100, "debits_pending": 100, "credits_pending": 0}
    assert not would_go_negative(AccountType.LIABILITY, flagged, **sums)
    sums["debits_pending"] = 101
    assert would_go_negative(AccountType.LIABILITY, flagged, **sums)
    assert not would_go_negative(AccountType.LIABILITY, AccountFlags.NONE, **sums)
    incoming = {"debits_posted": 0, "credits_posted": 0, "debits_pending": 1, "credits_pending": 50}
    assert would_go_negative(AccountType.LIABILITY, flagged, **incoming)


def test_body_hash_is_canonical() -> None:
    assert body_hash({"a": 1, "b": [1, 2]}) == body_hash({"b": [1, 2], "a": 1})
    assert body_hash({"a": 1}) != body_hash({"a": 2})
