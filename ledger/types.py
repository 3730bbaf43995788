"""Public value types of the ledger: enums, requests and results (pydantic, frozen, ints for money).

Sign convention for postings: a positive amount is a debit, a negative amount a credit. Balances are
reported on the account's normal side (credit-normal for liability, equity and income; debit-normal for
asset and expense), so a customer's prepaid credit shows as a positive number.
"""

from __future__ import annotations

import enum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, JsonValue

__all__ = [
    "HOLD_GROUP_HOLDS_MAX",
    "HOLD_TIMEOUT_S_MAX",
    "INT64_MAX",
    "AccountFlags",
    "AccountInfo",
    "AccountType",
    "Balance",
    "CaptureLeg",
    "CaptureRequest",
    "ExtraTransaction",
    "GroupResolutionRequest",
    "Hold",
    "HoldGroup",
    "HoldGroupRequest",
    "HoldLeg",
    "HoldRequest",
    "HoldState",
    "LedgerTransaction",
    "Metadata",
    "PostRequest",
    "Posting",
    "PostingLine",
    "Statement",
    "StatementLine",
    "TrialBalance",
    "TrialBalanceRow",
    "VoidRequest",
    "normal_side_is_debit",
]

INT64_MAX = 2**63 - 1
# A hold longer than a week is a bug in the caller, not a business need.
HOLD_TIMEOUT_S_MAX = 7 * 24 * 3600
# A request holds on its payer and on every budget above it (org, department, team, member, key, each
# with a few periods): a few dozen at most. More is a bug in the caller, and would lock too many rows.
HOLD_GROUP_HOLDS_MAX = 64

Metadata = dict[str, JsonValue]
AccountName = Annotated[str, Field(min_length=1, max_length=255)]


class AccountType(enum.StrEnum):
    ASSET = "asset"
    LIABILITY = "liability"
    EQUITY = "equity"
    INCOME = "income"
    EXPENSE = "expense"


class AccountFlags(enum.IntFlag):
    NONE = 0
    # The account's normal-side balance minus its outgoing holds must never go below zero.
    MUST_NOT_GO_NEGATIVE = 1


class HoldState(enum.StrEnum):
    PENDING = "pending"
    CAPTURED = "captured"
    VOIDED = "voided"
    EXPIRED = "expired"


def normal_side_is_debit(account_type: AccountType) -> bool:
    """Assets and expenses grow with debits; liabilities, equity and income grow with credits."""
    return account_type in (AccountType.ASSET, AccountType.EXPENSE)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Posting(_Frozen):
    """One leg of a transaction request: positive debits the account, negative credits it."""

    account: AccountName
    amount: int = Field(ge=-INT64_MAX, le=INT64_MAX)


class AccountInfo(_Frozen):
    id: int
    name: str
    type: AccountType
    unit: str
    flags: AccountFlags


class PostingLine(_Frozen):
    """One stored entry as read back: signed amount (debit > 0) and the account's unit."""

    account: str
    amount: int
    unit: str


class LedgerTransaction(_Frozen):
    id: int
    idempotency_key: str
    code: str
    external_ref: str | None
    metadata: Metadata
    created_at_unix_ms: int
    hold_id: int | None
    postings: tuple[PostingLine, ...]


class Hold(_Frozen):
    """A pending transfer of `amount` from debit_account to credit_account, resolved exactly once.

    `group_id` is set when the hold belongs to a hold group: it is then resolved only with its group.
    """

    id: int
    idempotency_key: str
    code: str
    debit_account: str
    credit_account: str
    unit: str
    amount: int
    metadata: Metadata
    created_at_unix_ms: int
    expires_at_unix_ms: int
    state: HoldState
    captured_amount: int | None
    resolved_at_unix_ms: int | None
    resolution_transaction_id: int | None
    group_id: int | None = None


class HoldGroup(_Frozen):
    """Holds placed together in one database transaction and resolved together, exactly once.

    Every member shares the group's code, metadata, timeout and state; `holds` are in the order given.
    """

    id: int
    idempotency_key: str
    code: str
    metadata: Metadata
    created_at_unix_ms: int
    expires_at_unix_ms: int
    state: HoldState
    resolved_at_unix_ms: int | None
    holds: tuple[Hold, ...]


class Balance(_Frozen):
    """Cached balance of one account. `posted`, `pending` and `available` are on the normal side.

    pending = holds that will reduce the account once captured; available = posted - pending.
    """

    account: str
    type: AccountType
    unit: str
    flags: AccountFlags
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int
    posted: int
    pending: int
    available: int


class StatementLine(_Frozen):
    transaction_id: int
    created_at_unix_ms: int
    code: str
    external_ref: str | None
    amount: int
    balance_after: int


class Statement(_Frozen):
    account: str
    unit: str
    lines: tuple[StatementLine, ...]
    balance: Balance


class TrialBalanceRow(_Frozen):
    account: str
    type: AccountType
    unit: str
    debits_posted: int
    credits_posted: int
    balance: int


class TrialBalance(_Frozen):
    """Every account's posted sums; per unit, total debits equal total credits when the books balance."""

    rows: tuple[TrialBalanceRow, ...]
    debits_by_unit: dict[str, int]
    credits_by_unit: dict[str, int]

    @property
    def balanced(self) -> bool:
        return self.debits_by_unit == self.credits_by_unit


class PostRequest(_Frozen):
    """Body of `Ledger.post`. The idempotency key is not part of the body hash; everything else is."""

    idempotency_key: str = Field(min_length=1, max_length=255)
    code: str = Field(min_length=1, max_length=64)
    postings: tuple[Posting, ...] = Field(min_length=2)
    external_ref: str | None = Field(default=None, min_length=1, max_length=255)
    metadata: Metadata = Field(default_factory=dict)


class HoldRequest(_Frozen):
    idempotency_key: str = Field(min_length=1, max_length=255)
    code: str = Field(min_length=1, max_length=64)
    debit_account: AccountName
    credit_account: AccountName
    amount: int = Field(gt=0, le=INT64_MAX)
    timeout_s: float = Field(gt=0, le=HOLD_TIMEOUT_S_MAX)
    metadata: Metadata = Field(default_factory=dict)


class HoldLeg(_Frozen):
    """One hold of a group: `amount` from debit_account towards credit_account (both of one unit)."""

    debit_account: AccountName
    credit_account: AccountName
    amount: int = Field(gt=0, le=INT64_MAX)


class HoldGroupRequest(_Frozen):
    idempotency_key: str = Field(min_length=1, max_length=255)
    code: str = Field(min_length=1, max_length=64)
    holds: tuple[HoldLeg, ...] = Field(min_length=1, max_length=HOLD_GROUP_HOLDS_MAX)
    timeout_s: float = Field(gt=0, le=HOLD_TIMEOUT_S_MAX)
    metadata: Metadata = Field(default_factory=dict)


class CaptureLeg(_Frozen):
    """What to capture of one hold of a group: `amount` (≤ held; 0 releases it all), optionally into
    another credit account of the same unit."""

    amount: int = Field(ge=0, le=INT64_MAX)
    credit_account: AccountName | None = None


class ExtraTransaction(_Frozen):
    """A balanced transaction booked in the same database transaction as a capture (e.g. the operator's
    usage-overage expense). Its idempotency key is derived from the hold or group it rides with."""

    code: str = Field(min_length=1, max_length=64)
    postings: tuple[Posting, ...] = Field(min_length=2)
    metadata: Metadata = Field(default_factory=dict)


class GroupResolutionRequest(_Frozen):
    """Body of `Ledger.capture_group` (captures in the group's order) and `Ledger.void_group` (none)."""

    idempotency_key: str = Field(min_length=1, max_length=255)
    group_id: int = Field(gt=0)
    captures: tuple[CaptureLeg, ...] | None = Field(default=None, max_length=HOLD_GROUP_HOLDS_MAX)


class CaptureRequest(_Frozen):
    idempotency_key: str = Field(min_length=1, max_length=255)
    hold_id: int = Field(gt=0)
    amount: int = Field(ge=0, le=INT64_MAX)


class VoidRequest(_Frozen):
    idempotency_key: str = Field(min_length=1, max_length=255)
    hold_id: int = Field(gt=0)
