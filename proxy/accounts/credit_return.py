"""The operator's credit-return policy: keyless wallets' credit above a threshold goes back to the wallet.

Each run lists wallet credit accounts whose available balance exceeds the threshold (`[returning_payers]
credit_return_threshold_usd`), skips wallets that hold an API key (a prepaid account keeps its credit on
purpose), and sends each the whole atomic units above the threshold in one transfer, through the
withdrawals machinery (proxy/accounts/withdrawals.py): the same hold, row, transaction stored before it is
sent, gas booked as withdrawal gas, and crash recovery. The withdrawal nonce is derived from the wallet's
period (`auto<period index>`, period = floor(now / interval)), so a run repeated in the same period —
after a restart, or on another replica — finds the row already there and sends nothing again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa
import structlog
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import Ledger, chart
from ledger.tables import AccountRow
from proxy.accounts.errors import Conflict, InsufficientCredit
from proxy.accounts.withdrawals import WithdrawalRecord, Withdrawals
from proxy.db.tables import account_api_keys, account_withdrawals
from proxy.money import nano_usd_per_atomic, usd_text_to_nano_usd
from proxy.settings import AssetSettings, ReturningPayersSettings

__all__ = ["CreditReturnRun", "CreditReturns"]

log = structlog.get_logger("megarouter.credit_return")
_WALLET_PREFIX = chart.credit_wallet("0x" + "0" * 40).removesuffix("0x" + "0" * 40)


class CreditReturnRun(BaseModel):
    """What one run did: the withdrawals it started (or found already made this period), and skips."""

    model_config = ConfigDict(frozen=True)

    period: int
    returned: list[WithdrawalRecord]
    already_returned: int
    skipped_keyed: int


class CreditReturns:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        ledger: Ledger,
        withdrawals: Withdrawals,
        settings: ReturningPayersSettings,
        asset: AssetSettings,
        clock_unix_s: Callable[[], float] = time.time,
    ) -> None:
        assert settings.credit_return_threshold_usd is not None
        self._engine = engine
        self._ledger = ledger
        self._withdrawals = withdrawals
        self._settings = settings
        self._asset = asset
        self._clock_unix_s = clock_unix_s
        self._threshold_nano_usd = usd_text_to_nano_usd(settings.credit_return_threshold_usd)
        self._minimum_nano_usd = usd_text_to_nano_usd(settings.credit_return_min_usd)

    def period(self) -> int:
        return int(self._clock_unix_s() // self._settings.credit_return_interval_s)

    async def run_once(self) -> CreditReturnRun:
        period = self.period()
        nonce = f"auto{period:012d}"
        returned: list[WithdrawalRecord] = []
        already, keyed = 0, 0
        for wallet in await self._candidates():
            if await self._has_key(wallet):
                keyed += 1
                continue
            if await self._already_returned(wallet, nonce):
                already += 1
                continue
            record = await self._return(wallet, nonce)
            if record is not None:
                returned.append(record)
        log.info("credit_return_run", period=period, returned=len(returned), already=already, keyed=keyed)
        return CreditReturnRun(
            period=period, returned=returned, already_returned=already, skipped_keyed=keyed
        )

    async def _candidates(self) -> list[str]:
        """Wallets whose cached available credit exceeds the threshold plus the minimum, bounded per run."""
        table = AccountRow.__table__  # type: ignore[attr-defined]
        available = table.c.credits_posted - table.c.debits_posted - table.c.debits_pending
        statement = (
            sa.select(table.c.name)
            .where(table.c.name.like(f"{_WALLET_PREFIX}%"))
            .where(available >= self._threshold_nano_usd + max(self._minimum_nano_usd, 1))
            .order_by(table.c.name)
            .limit(self._settings.credit_return_wallets_per_run_max)
        )
        async with self._engine.connect() as conn:
            names = (await conn.execute(statement)).scalars().all()
        return [str(name).removeprefix(_WALLET_PREFIX) for name in names]

    async def _has_key(self, wallet: str) -> bool:
        table = account_api_keys
        statement = (
            sa.select(sa.func.count())
            .where(table.c.wallet == wallet.lower())
            .where(table.c.revoked_at_unix_s.is_(None))
        )
        async with self._engine.connect() as conn:
            count: int = (await conn.execute(statement)).scalar_one()
        return count > 0

    async def _already_returned(self, wallet: str, nonce: str) -> bool:
        table = account_withdrawals
        statement = (
            sa.select(sa.func.count())
            .where(table.c.wallet == wallet.lower())
            .where(table.c.request_nonce == nonce)
        )
        async with self._engine.connect() as conn:
            count: int = (await conn.execute(statement)).scalar_one()
        return count > 0

    async def _return(self, wallet: str, nonce: str) -> WithdrawalRecord | None:
        available = (await self._ledger.balance(chart.credit_wallet(wallet))).available
        per_atomic = nano_usd_per_atomic(self._asset.decimals)
        amount_atomic = max(available - self._threshold_nano_usd, 0) // per_atomic
        if amount_atomic == 0 or amount_atomic * per_atomic < self._minimum_nano_usd:
            return None
        try:
            return await self._withdrawals.withdraw_by_policy(
                wallet=wallet, asset=self._asset, amount_atomic=amount_atomic, nonce=nonce
            )
        except (Conflict, InsufficientCredit) as error:
            # Another replica returned it first this period, or a request spent the credit meanwhile.
            log.info("credit_return_skipped", wallet=wallet, code=error.code)
            return None
