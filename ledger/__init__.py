"""Double-entry accounting: accounts, balanced transactions, holds, balances, idempotency, reconciliation.

No HTTP and no chain here; this package must not import `proxy` or `x402`.
"""

from ledger.check import Problem, check_ledger
from ledger.engine import create_ledger_engine, migrate
from ledger.errors import (
    AccountConflict,
    AccountNotFound,
    CaptureExceedsHold,
    DuplicateExternalRef,
    HoldAlreadyResolved,
    HoldExpired,
    HoldNotFound,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    InvalidPostings,
    LedgerError,
    TransactionNotFound,
    UnbalancedTransaction,
    UnitMismatch,
)
from ledger.store import Ledger, unix_ms_now
from ledger.types import (
    AccountFlags,
    AccountInfo,
    AccountType,
    Balance,
    Hold,
    HoldState,
    LedgerTransaction,
    Posting,
    PostingLine,
    Statement,
    StatementLine,
    TrialBalance,
    TrialBalanceRow,
)

__all__ = [
    "AccountConflict",
    "AccountFlags",
    "AccountInfo",
    "AccountNotFound",
    "AccountType",
    "Balance",
    "CaptureExceedsHold",
    "DuplicateExternalRef",
    "Hold",
    "HoldAlreadyResolved",
    "HoldExpired",
    "HoldNotFound",
    "HoldState",
    "IdempotencyConflict",
    "InsufficientFunds",
    "InvalidAmount",
    "InvalidPostings",
    "Ledger",
    "LedgerError",
    "LedgerTransaction",
    "Posting",
    "PostingLine",
    "Problem",
    "Statement",
    "StatementLine",
    "TransactionNotFound",
    "TrialBalance",
    "TrialBalanceRow",
    "UnbalancedTransaction",
    "UnitMismatch",
    "check_ledger",
    "create_ledger_engine",
    "migrate",
    "unix_ms_now",
]
