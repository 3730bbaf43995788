"""The messages a wallet signs (EIP-191 personal_sign over EIP-4361 text) and recovering who signed them.

Pure: no I/O. Both messages are Sign-In with Ethereum messages bound to the server's configured scope
(domain, URI, chain id), so a wallet that checks the domain against the page asking for the signature
warns its owner, and the server refuses a signature made for any other scope. The server always rebuilds
the exact text from structured fields (or compares it byte for byte with what it issued), so a client can
never get a signature over words that mean something else accepted.
"""

from __future__ import annotations

import re

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_keys.exceptions import BadSignature
from eth_utils.address import to_checksum_address
from eth_utils.exceptions import ValidationError as EthValidationError

from proxy.accounts.errors import SignatureMismatch
from proxy.accounts.siwe import SiweMessage, SiweScope, render_siwe

__all__ = [
    "ADDRESS_PATTERN",
    "CHALLENGE_STATEMENT",
    "NONCE_PATTERN",
    "challenge_message",
    "recover_signer",
    "withdrawal_message",
    "withdrawal_statement",
]

ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
NONCE_PATTERN = r"^[0-9a-zA-Z]{16,64}$"
CHALLENGE_STATEMENT = "Create a MegaRouter API key that spends this wallet's prepaid credit."
_SIGNATURE = re.compile(r"^(0x)?[0-9a-fA-F]{130}$")


def challenge_message(
    *, scope: SiweScope, address: str, nonce: str, issued_at_unix_s: int, expires_at_unix_s: int
) -> str:
    """The sign-in text of an API-key challenge: what a wallet shows its owner before they sign."""
    assert issued_at_unix_s < expires_at_unix_s
    assert re.fullmatch(NONCE_PATTERN, nonce)
    return render_siwe(
        SiweMessage(
            domain=scope.domain,
            address=address,
            statement=CHALLENGE_STATEMENT,
            uri=scope.uri,
            chain_id=scope.chain_id,
            nonce=nonce,
            issued_at_unix_s=issued_at_unix_s,
            expires_at_unix_s=expires_at_unix_s,
        )
    )


def withdrawal_statement(*, asset: str, amount_atomic: int, destination: str) -> str:
    """Every term that moves money, in words a wallet shows (EIP-4361 statements are one ASCII line)."""
    assert amount_atomic > 0
    return (
        f"Withdraw {amount_atomic} atomic units of token {to_checksum_address(asset)} "
        f"from this wallet's MegaRouter credit to {to_checksum_address(destination)}."
    )


def withdrawal_message(
    *,
    scope: SiweScope,
    wallet: str,
    asset: str,
    amount_atomic: int,
    destination: str,
    nonce: str,
    issued_at_unix_s: int,
    expires_at_unix_s: int,
) -> str:
    """The canonical withdrawal request; the chain is the scope's (the Chain ID line)."""
    assert amount_atomic > 0
    assert re.fullmatch(NONCE_PATTERN, nonce)
    return render_siwe(
        SiweMessage(
            domain=scope.domain,
            address=wallet,
            statement=withdrawal_statement(asset=asset, amount_atomic=amount_atomic, destination=destination),
            uri=scope.uri,
            chain_id=scope.chain_id,
            nonce=nonce,
            issued_at_unix_s=issued_at_unix_s,
            expires_at_unix_s=expires_at_unix_s,
        )
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
