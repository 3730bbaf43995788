"""The cleanup context of keyless returning payers (issue 14): `sign-in-with-x` on paid requests, with its
per-IP rate limit, and the operator's credit-return policy running on a schedule. Opened after accounts_ctx,
whose signing scope (configuration only) and withdrawals it shares."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from proxy.accounts.credit_return import CreditReturns
from proxy.accounts.rate_limit import TokenBuckets
from proxy.accounts.sign_in_with_x import WalletSignIns
from proxy.api.app_keys import (
    CREDIT_RETURNS,
    DB_ENGINE,
    LEDGER,
    SETTINGS,
    SIGN_IN_RATE_LIMITER,
    SIGNING_SCOPE,
    WALLET_SIGN_INS,
    WITHDRAWALS,
)
from proxy.errors import ApiError

__all__ = ["returning_payers_ctx"]

log = structlog.get_logger("megarouter.returning_payers")
# A run happens at least this often, so no period is skipped; each wallet is paid at most once per period.
CREDIT_RETURN_POLL_S_MAX = 300.0


async def returning_payers_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS].returning_payers
    if settings.sign_in_enabled:
        if WALLET_SIGN_INS not in app:  # A test may inject one with its own clock.
            app[WALLET_SIGN_INS] = WalletSignIns(
                app[DB_ENGINE], scope=app[SIGNING_SCOPE], settings=settings, clock_unix_s=time.time
            )
        if SIGN_IN_RATE_LIMITER not in app:
            app[SIGN_IN_RATE_LIMITER] = TokenBuckets(
                capacity=settings.sign_in_burst_per_ip,
                refill_interval_s=settings.sign_in_refill_interval_s,
                keys_max=settings.sign_in_rate_ips_max,
            )
    if settings.credit_return_threshold_usd is None:
        yield
        return
    returns = CreditReturns(
        engine=app[DB_ENGINE],
        ledger=app[LEDGER],
        withdrawals=app[WITHDRAWALS],
        settings=settings,
        asset=app[SETTINGS].assets[0],  # Returned in the server's first (preferred) token.
    )
    app[CREDIT_RETURNS] = returns
    task = asyncio.create_task(
        _returning(returns, min(settings.credit_return_interval_s, CREDIT_RETURN_POLL_S_MAX))
    )
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _returning(returns: CreditReturns, poll_s: float) -> None:
    while True:
        try:
            await returns.run_once()
        except ApiError as error:
            # The chain or the sender is unavailable: the withdrawal rows already made are finished by
            # withdrawal recovery; the rest is tried again on the next run of this period.
            log.warning("credit_return_failed", code=error.code, detail=error.message)
        await asyncio.sleep(poll_s)
