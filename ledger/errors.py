"""Typed ledger errors. Each subclass carries a stable `code` that callers (the proxy, the CLI) may map.

LedgerError
├── AccountNotFound            account_not_found
├── AccountConflict            account_conflict          (same name, different type/unit/flags)
├── InvalidPostings            invalid_postings          (empty, zero amounts, duplicate accounts)
│   └── UnbalancedTransaction  unbalanced_transaction    (postings do not sum to zero per unit)
├── UnitMismatch               unit_mismatch             (hold between accounts of different units)
├── InvalidAmount              invalid_amount
├── IdempotencyConflict        idempotency_conflict      (same key, different body)
├── DuplicateExternalRef       duplicate_external_ref    (external_ref already booked under another key)
├── InsufficientFunds          insufficient_funds        (a must-not-go-negative account would go below 0;
│                                                         `.account` names it)
├── HoldNotFound               hold_not_found            (also a hold group that does not exist)
├── HoldAlreadyResolved        hold_already_resolved     (captured, voided or expired before)
├── HoldInGroup                hold_in_group             (a member of a hold group, resolved only with it)
├── HoldExpired                hold_expired              (timeout passed; it has now been released)
├── CaptureExceedsHold         capture_exceeds_hold
└── TransactionNotFound        transaction_not_found
"""

from __future__ import annotations

__all__ = [
    "AccountConflict",
    "AccountNotFound",
    "CaptureExceedsHold",
    "DuplicateExternalRef",
    "HoldAlreadyResolved",
    "HoldExpired",
    "HoldInGroup",
    "HoldNotFound",
    "IdempotencyConflict",
    "InsufficientFunds",
    "InvalidAmount",
    "InvalidPostings",
    "LedgerError",
    "TransactionNotFound",
    "UnbalancedTransaction",
    "UnitMismatch",
]


class LedgerError(Exception):
    """Root of every expected ledger outcome. Bugs are assertions, not LedgerErrors."""

    code = "ledger_error"


class AccountNotFound(LedgerError):
    code = "account_not_found"


class AccountConflict(LedgerError):
    code = "account_conflict"


class InvalidPostings(LedgerError):
    code = "invalid_postings"


class UnbalancedTransaction(InvalidPostings):
    code = "unbalanced_transaction"


class UnitMismatch(LedgerError):
    code = "unit_mismatch"


class InvalidAmount(LedgerError):
    code = "invalid_amount"


class IdempotencyConflict(LedgerError):
    code = "idempotency_conflict"


class DuplicateExternalRef(LedgerError):
    code = "duplicate_external_ref"


class InsufficientFunds(LedgerError):
    """`account` names the account that refused: of a hold group's accounts, the first in the group's order
    (so a caller holding on a payer and on budgets learns which budget was exhausted)."""

    code = "insufficient_funds"

    def __init__(self, message: str, *, account: str) -> None:
        super().__init__(message)
        self.account = account


class HoldNotFound(LedgerError):
    code = "hold_not_found"


class HoldAlreadyResolved(LedgerError):
    code = "hold_already_resolved"


class HoldInGroup(LedgerError):
    code = "hold_in_group"


class HoldExpired(LedgerError):
    code = "hold_expired"


class CaptureExceedsHold(LedgerError):
    code = "capture_exceeds_hold"


class TransactionNotFound(LedgerError):
    code = "transaction_not_found"
