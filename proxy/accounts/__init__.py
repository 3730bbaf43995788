"""Prepaid wallet accounts: wallet-proven API keys, the credit they spend, and withdrawals of that credit.

Imports proxy/, ledger/ and x402/ (types only); the chat handler imports `authenticate_bearer` from here.
"""

from proxy.accounts.app_keys import (
    ACCOUNTS_SETTINGS,
    API_KEYS,
    CHALLENGE_RATE_LIMITER,
    SIGNING_SCOPE,
    WITHDRAWALS,
)
from proxy.accounts.auth import KeyPrincipal, authenticate_bearer, require_bearer
from proxy.accounts.credits import CreditView, credit_view, nano_usd_to_usd_string
from proxy.accounts.keys import ApiKeyInfo, ApiKeys, Challenge, IssuedApiKey, hash_api_key
from proxy.accounts.rate_limit import TokenBuckets
from proxy.accounts.resources import accounts_ctx, setup_accounts
from proxy.accounts.settings import AccountsSettings, signing_scope
from proxy.accounts.signatures import challenge_message, recover_signer, withdrawal_message
from proxy.accounts.siwe import SiweMessage, SiweScope, parse_siwe, render_siwe
from proxy.accounts.withdrawals import (
    MinedTransfer,
    TransferSender,
    WithdrawalRecord,
    WithdrawalRequest,
    Withdrawals,
    WithdrawalStatus,
)

__all__ = [
    "ACCOUNTS_SETTINGS",
    "API_KEYS",
    "CHALLENGE_RATE_LIMITER",
    "SIGNING_SCOPE",
    "WITHDRAWALS",
    "AccountsSettings",
    "ApiKeyInfo",
    "ApiKeys",
    "Challenge",
    "CreditView",
    "IssuedApiKey",
    "KeyPrincipal",
    "MinedTransfer",
    "SiweMessage",
    "SiweScope",
    "TokenBuckets",
    "TransferSender",
    "WithdrawalRecord",
    "WithdrawalRequest",
    "WithdrawalStatus",
    "Withdrawals",
    "accounts_ctx",
    "authenticate_bearer",
    "challenge_message",
    "credit_view",
    "hash_api_key",
    "nano_usd_to_usd_string",
    "parse_siwe",
    "recover_signer",
    "render_siwe",
    "require_bearer",
    "setup_accounts",
    "signing_scope",
    "withdrawal_message",
]
