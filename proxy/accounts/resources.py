"""Wiring of prepaid accounts into an app: one cleanup context and one function that installs everything.

`accounts_ctx` must run after the lead's database_ctx and chain_ctx (it reads DB_ENGINE, CHART_ACCOUNTS,
SETTINGS and SETTLER), so it is appended after them. It finishes withdrawals a crash left open before the
app serves (start-up recovery), then every WITHDRAWAL_RECOVERY_INTERVAL_S those idle for longer than a
receipt wait could take (younger ones belong to live requests). It also fixes the signing scope (domain,
URI, chain id of every signed message) from configuration, and owns the per-IP challenge rate limiter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from proxy.accounts.app_keys import (
    ACCOUNTS_SETTINGS,
    API_KEYS,
    CHALLENGE_RATE_LIMITER,
    SIGNING_SCOPE,
    WITHDRAWALS,
)
from proxy.accounts.keys import ApiKeys
from proxy.accounts.rate_limit import TokenBuckets
from proxy.accounts.settings import AccountsSettings, signing_scope
from proxy.accounts.withdrawal_recovery import periodic_withdrawal_recovery, recover_withdrawals
from proxy.accounts.withdrawals import Withdrawals
from proxy.app_keys import CHART_ACCOUNTS, DB_ENGINE, SETTINGS, SETTLER

__all__ = ["accounts_ctx", "setup_accounts"]


async def accounts_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app.get(ACCOUNTS_SETTINGS) or AccountsSettings()
    if ACCOUNTS_SETTINGS not in app:
        app[ACCOUNTS_SETTINGS] = settings
    scope = signing_scope(app[SETTINGS], settings)
    app[SIGNING_SCOPE] = scope
    if CHALLENGE_RATE_LIMITER not in app:
        app[CHALLENGE_RATE_LIMITER] = TokenBuckets(
            capacity=settings.challenge_burst_per_ip,
            refill_interval_s=settings.challenge_refill_interval_s,
            keys_max=settings.challenge_rate_ips_max,
        )
    app[API_KEYS] = ApiKeys(app[DB_ENGINE], settings, scope=scope)
    withdrawals = Withdrawals(
        engine=app[DB_ENGINE],
        accounts=app[CHART_ACCOUNTS],
        settings=app[SETTINGS],
        accounts_settings=settings,
        scope=scope,
        # Withdrawals share the settlement wallet's transaction nonces with x402 settlements.
        sender=app[SETTLER],
    )
    app[WITHDRAWALS] = withdrawals
    settler = app[SETTLER]
    await recover_withdrawals(withdrawals=withdrawals, settler=settler, older_than_s=0.0)
    idle_s = app[SETTINGS].settle_receipt_timeout_s * 2

    async def again() -> None:
        await recover_withdrawals(withdrawals=withdrawals, settler=settler, older_than_s=idle_s)

    async with periodic_withdrawal_recovery(again):
        yield


def setup_accounts(app: web.Application) -> None:
    """Adds the key and credit routes and `accounts_ctx` (call after the lead's contexts are added)."""
    from proxy.handlers import credits, keys

    app.cleanup_ctx.append(accounts_ctx)
    app.add_routes(keys.routes)
    app.add_routes(credits.routes)
