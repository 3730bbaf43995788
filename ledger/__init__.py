"""Double-entry accounting: accounts, balanced transactions, holds, balances, idempotency, reconciliation.

No HTTP and no chain here; this package must not import `proxy` or `x402`.

The public names below load on first use (module `__getattr__`), so a caller that needs one module, such
as `megarouter ledger check` or the CLI's argument parser, does not pay for Alembic, every model and the
store at import. `from ledger import X` works as before; the `TYPE_CHECKING` block tells type checkers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledger.check import Problem, check_ledger
    from ledger.engine import create_ledger_engine, migrate
    from ledger.errors import (
        AccountConflict,
        AccountNotFound,
        CaptureExceedsHold,
        DuplicateExternalRef,
        HoldAlreadyResolved,
        HoldExpired,
        HoldInGroup,
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
    from ledger.store import InTransaction, Ledger, unix_ms_now
    from ledger.types import (
        AccountFlags,
        AccountInfo,
        AccountType,
        Balance,
        CaptureLeg,
        ExtraTransaction,
        Hold,
        HoldGroup,
        HoldLeg,
        HoldState,
        LedgerTransaction,
        Posting,
        PostingLine,
        Statement,
        StatementLine,
        TrialBalance,
        TrialBalanceRow,
    )

# Public name -> the submodule that defines it.
_MODULE_BY_NAME = {
    "Problem": "ledger.check",
    "check_ledger": "ledger.check",
    "create_ledger_engine": "ledger.engine",
    "migrate": "ledger.engine",
    **dict.fromkeys(
        [
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
        ],
        "ledger.errors",
    ),
    "InTransaction": "ledger.store",
    "Ledger": "ledger.store",
    "unix_ms_now": "ledger.store",
    **dict.fromkeys(
        [
            "AccountFlags",
            "AccountInfo",
            "AccountType",
            "Balance",
            "CaptureLeg",
            "ExtraTransaction",
            "Hold",
            "HoldGroup",
            "HoldLeg",
            "HoldState",
            "LedgerTransaction",
            "Posting",
            "PostingLine",
            "Statement",
            "StatementLine",
            "TrialBalance",
            "TrialBalanceRow",
        ],
        "ledger.types",
    ),
}

__all__ = [
    "AccountConflict",
    "AccountFlags",
    "AccountInfo",
    "AccountNotFound",
    "AccountType",
    "Balance",
    "CaptureExceedsHold",
    "CaptureLeg",
    "DuplicateExternalRef",
    "ExtraTransaction",
    "Hold",
    "HoldAlreadyResolved",
    "HoldExpired",
    "HoldGroup",
    "HoldInGroup",
    "HoldLeg",
    "HoldNotFound",
    "HoldState",
    "IdempotencyConflict",
    "InTransaction",
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


def __getattr__(name: str) -> Any:
    module_name = _MODULE_BY_NAME.get(name)
    if module_name is None:
        # AttributeError (not KeyError) lets `from ledger import chart` fall back to importing the submodule.
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # Later lookups skip this function.
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
