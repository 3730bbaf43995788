"""A wallet's credit as its owner sees it: balance, open holds and recent movements, from the ledger."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from ledger import AccountNotFound, Ledger
from proxy.money import NANO_USD_DECIMALS

__all__ = [
    "CreditBalance",
    "CreditHold",
    "CreditMovement",
    "CreditView",
    "credit_view",
    "nano_usd_to_usd_string",
]


def nano_usd_to_usd_string(amount_nano_usd: int) -> str:
    """Exact decimal USD without trailing zeros ("0.000012345", "1.5", "0"), never through a float."""
    return format(Decimal(amount_nano_usd).scaleb(-NANO_USD_DECIMALS).normalize(), "f")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class CreditBalance(_Frozen):
    posted_nano_usd: int
    pending_nano_usd: int
    available_nano_usd: int
    posted_usd: str
    pending_usd: str
    available_usd: str


class CreditHold(_Frozen):
    id: int
    code: str
    amount_nano_usd: int
    created_at_unix_ms: int
    expires_at_unix_ms: int


class CreditMovement(_Frozen):
    """One posting on the credit: positive adds credit (a deposit), negative spends it."""

    transaction_id: int
    created_at_unix_ms: int
    code: str
    external_ref: str | None
    amount_nano_usd: int
    balance_after_nano_usd: int


class CreditView(_Frozen):
    wallet: str
    credit_account: str
    balance: CreditBalance
    holds: tuple[CreditHold, ...]
    movements: tuple[CreditMovement, ...]


def _balance(*, posted: int, pending: int, available: int) -> CreditBalance:
    return CreditBalance(
        posted_nano_usd=posted,
        pending_nano_usd=pending,
        available_nano_usd=available,
        posted_usd=nano_usd_to_usd_string(posted),
        pending_usd=nano_usd_to_usd_string(pending),
        available_usd=nano_usd_to_usd_string(available),
    )


async def credit_view(ledger: Ledger, *, wallet: str, credit_account: str, movements_max: int) -> CreditView:
    """A wallet that never paid has no ledger account yet: that is a zero balance, not an error."""
    assert movements_max > 0
    try:
        statement = await ledger.statement(credit_account, limit=movements_max)
        holds = await ledger.open_holds(credit_account)
    except AccountNotFound:
        return CreditView(
            wallet=wallet,
            credit_account=credit_account,
            balance=_balance(posted=0, pending=0, available=0),
            holds=(),
            movements=(),
        )
    balance = statement.balance
    assert balance.available == balance.posted - balance.pending
    return CreditView(
        wallet=wallet,
        credit_account=credit_account,
        balance=_balance(posted=balance.posted, pending=balance.pending, available=balance.available),
        holds=tuple(
            CreditHold(
                id=hold.id,
                code=hold.code,
                amount_nano_usd=hold.amount,
                created_at_unix_ms=hold.created_at_unix_ms,
                expires_at_unix_ms=hold.expires_at_unix_ms,
            )
            for hold in holds
            if hold.debit_account == credit_account
        ),
        # Newest first. A credit account is a liability: a credit entry (negative amount) adds to it.
        movements=tuple(
            CreditMovement(
                transaction_id=line.transaction_id,
                created_at_unix_ms=line.created_at_unix_ms,
                code=line.code,
                external_ref=line.external_ref,
                amount_nano_usd=-line.amount,
                balance_after_nano_usd=line.balance_after,
            )
            for line in reversed(statement.lines)
        ),
    )
