"""The cleanup context of keyless returning payers (issue 14): `sign-in-with-x` on paid requests, with its
per-IP rate limit. Opened after accounts_ctx, whose signing scope (configuration only) it shares."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from aiohttp import web

from proxy.accounts.rate_limit import TokenBuckets
from proxy.accounts.sign_in_with_x import WalletSignIns
from proxy.api.app_keys import DB_ENGINE, SETTINGS, SIGN_IN_RATE_LIMITER, SIGNING_SCOPE, WALLET_SIGN_INS

__all__ = ["returning_payers_ctx"]


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
    yield
