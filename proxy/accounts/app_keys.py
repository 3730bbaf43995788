"""AppKeys of prepaid accounts (kept beside the feature they serve)."""

from __future__ import annotations

from aiohttp import web

from proxy.accounts.keys import ApiKeys
from proxy.accounts.settings import AccountsSettings
from proxy.accounts.withdrawals import Withdrawals

__all__ = ["ACCOUNTS_SETTINGS", "API_KEYS", "WITHDRAWALS"]

# Optional before startup: absent means AccountsSettings() defaults.
ACCOUNTS_SETTINGS = web.AppKey("ACCOUNTS_SETTINGS", AccountsSettings)
API_KEYS = web.AppKey("API_KEYS", ApiKeys)
WITHDRAWALS = web.AppKey("WITHDRAWALS", Withdrawals)
