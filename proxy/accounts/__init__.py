"""Prepaid wallet accounts: wallet-proven API keys, the credit they spend, and withdrawals of that credit.

Below the serving pipeline and above payments; the HTTP edge (proxy/api) authenticates keys with it.
"""

from proxy.accounts.credits import CreditView, credit_view, nano_usd_to_usd_string
from proxy.accounts.keys import ApiKeyInfo, ApiKeys, Challenge, IssuedApiKey, hash_api_key
from proxy.accounts.principal import KeyPrincipal
from proxy.accounts.rate_limit import TokenBuckets
from proxy.accounts.settings import signing_scope
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
    "challenge_message",
    "credit_view",
    "hash_api_key",
    "nano_usd_to_usd_string",
    "parse_siwe",
    "recover_signer",
    "render_siwe",
    "signing_scope",
    "withdrawal_message",
]
