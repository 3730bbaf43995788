"""AppKeys of prepaid accounts. They live here until the lead moves them into proxy/app_keys.py."""

from __future__ import annotations

from aiohttp import web

from proxy.accounts.keys import ApiKeys
from proxy.accounts.settings import AccountsSettings
from proxy.accounts.withdrawals import TransferSender, Withdrawals

__all__ = ["ACCOUNTS_SETTINGS", "API_KEYS", "TRANSFER_SENDER", "WITHDRAWALS"]

# Optional before startup: absent means AccountsSettings() defaults.
ACCOUNTS_SETTINGS = web.AppKey("ACCOUNTS_SETTINGS", AccountsSettings)
API_KEYS = web.AppKey("API_KEYS", ApiKeys)
# Optional before startup: absent means the Settler's own `transfer`, once it has one.
TRANSFER_SENDER = web.AppKey[TransferSender]("TRANSFER_SENDER")
WITHDRAWALS = web.AppKey("WITHDRAWALS", Withdrawals)
