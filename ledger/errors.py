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
├── InsufficientFunds          insufficient_funds        (a must-not-go-negative account would go below 0)
├── HoldNotFound               hold_not_found
├── HoldAlreadyResolved        hold_already_resolved     (captured, voided or expired before)
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
    code = "insufficient_funds"


class HoldNotFound(LedgerError):
    code = "hold_not_found"


class HoldAlreadyResolved(LedgerError):
    code = "hold_already_resolved"


class HoldExpired(LedgerError):
    code = "hold_expired"


class CaptureExceedsHold(LedgerError):
    code = "capture_exceeds_hold"


class TransactionNotFound(LedgerError):
    code = "transaction_not_found"
