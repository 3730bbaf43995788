"""AppKeys of prepaid accounts (kept beside the feature they serve)."""

from __future__ import annotations

from aiohttp import web

from proxy.accounts.keys import ApiKeys
from proxy.accounts.rate_limit import TokenBuckets
from proxy.accounts.settings import AccountsSettings
from proxy.accounts.siwe import SiweScope
from proxy.accounts.withdrawals import Withdrawals

__all__ = ["ACCOUNTS_SETTINGS", "API_KEYS", "CHALLENGE_RATE_LIMITER", "SIGNING_SCOPE", "WITHDRAWALS"]

# Optional before startup: absent means AccountsSettings() defaults.
ACCOUNTS_SETTINGS = web.AppKey("ACCOUNTS_SETTINGS", AccountsSettings)
API_KEYS = web.AppKey("API_KEYS", ApiKeys)
WITHDRAWALS = web.AppKey("WITHDRAWALS", Withdrawals)
# The domain, URI and chain id every signed message names; derived from configuration at startup.
SIGNING_SCOPE = web.AppKey("SIGNING_SCOPE", SiweScope)
# Challenges per client IP. Optional before startup (a test injects one with its own clock).
CHALLENGE_RATE_LIMITER = web.AppKey("CHALLENGE_RATE_LIMITER", TokenBuckets)
