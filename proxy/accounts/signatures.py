"""The messages a wallet signs (EIP-191 personal_sign) and recovering who signed them. Pure: no I/O.

The server always rebuilds the exact text from structured fields (or compares it byte for byte with what it
issued), so a client can never get a signature over words that mean something else accepted.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_keys.exceptions import BadSignature
from eth_utils.exceptions import ValidationError as EthValidationError

from proxy.accounts.errors import SignatureMismatch

__all__ = [
    "ADDRESS_PATTERN",
    "NONCE_PATTERN",
    "challenge_message",
    "recover_signer",
    "withdrawal_message",
]

ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
NONCE_PATTERN = r"^[0-9a-zA-Z]{16,64}$"
_SIGNATURE = re.compile(r"^(0x)?[0-9a-fA-F]{130}$")


def _iso(unix_s: int) -> str:
    return datetime.fromtimestamp(unix_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def challenge_message(
    *, domain: str, address: str, nonce: str, issued_at_unix_s: int, expires_at_unix_s: int
) -> str:
    """An EIP-4361-shaped sign-in text: what a wallet shows its owner before they sign."""
    assert issued_at_unix_s < expires_at_unix_s
    assert re.fullmatch(NONCE_PATTERN, nonce)
    return (
        f"{domain} wants you to sign in with your Ethereum account:\n"
        f"{address.lower()}\n\n"
        "Create a MegaRouter API key that spends this wallet's prepaid credit.\n\n"
        f"Nonce: {nonce}\n"
        f"Issued At: {_iso(issued_at_unix_s)}\n"
        f"Expiration Time: {_iso(expires_at_unix_s)}"
    )


def withdrawal_message(
    *,
    domain: str,
    wallet: str,
    network: str,
    asset: str,
    amount_atomic: int,
    destination: str,
    nonce: str,
    expires_at_unix_s: int,
) -> str:
    """The canonical withdrawal request. Every field that moves money is in the signed text."""
    assert amount_atomic > 0
    assert re.fullmatch(NONCE_PATTERN, nonce)
    return (
        f"{domain} withdrawal request\n"
        f"Wallet: {wallet.lower()}\n"
        f"Network: {network}\n"
        f"Asset: {asset.lower()}\n"
        f"Amount (atomic units): {amount_atomic}\n"
        f"Destination: {destination.lower()}\n"
        f"Nonce: {nonce}\n"
        f"Expires At (unix s): {expires_at_unix_s}"
    )


def recover_signer(message: str, signature: str) -> str:
    """The lower-case address that signed `message` with EIP-191, or SignatureMismatch for a malformed one."""
    if not _SIGNATURE.fullmatch(signature):
        raise SignatureMismatch("signature must be 65 bytes of hex", param="signature")
    try:
        signer: str = Account.recover_message(encode_defunct(text=message), signature=signature)
    except (ValueError, EthValidationError, BadSignature) as error:
        raise SignatureMismatch(f"signature cannot be recovered: {error}", param="signature") from error
    return signer.lower()
