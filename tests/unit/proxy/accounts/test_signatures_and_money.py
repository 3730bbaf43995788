"""Pure pieces of prepaid accounts: signed message texts, signer recovery, USD strings, settings bounds."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from pydantic import ValidationError

from proxy.accounts import SiweScope, nano_usd_to_usd_string, recover_signer, withdrawal_message
from proxy.accounts.errors import SignatureMismatch
from proxy.settings import AccountsSettings

ACCOUNT = Account.from_key("0x" + "42" * 32)


def _sign(text: str) -> str:
    signature: bytes = Account.sign_message(encode_defunct(text=text), private_key=ACCOUNT.key).signature
    return "0x" + signature.hex()


def test_recover_signer_round_trip_and_tamper() -> None:
    text = withdrawal_message(
        scope=SiweScope(domain="d.example", uri="https://d.example", chain_id=1),
        wallet=ACCOUNT.address,
        asset="0x" + "ab" * 20,
        amount_atomic=5,
        destination=ACCOUNT.address,
        nonce="b" * 16,
        issued_at_unix_s=0,
        expires_at_unix_s=9,
    )
    signature = _sign(text)
    assert recover_signer(text, signature) == ACCOUNT.address.lower()
    assert recover_signer(text.replace("Withdraw 5 ", "Withdraw 6 "), signature) != ACCOUNT.address.lower()


@pytest.mark.parametrize("signature", ["0x12", "zz" * 65, "0x" + "00" * 65, "0x" + "ff" * 65])
def test_malformed_signatures_are_signature_mismatch(signature: str) -> None:
    with pytest.raises(SignatureMismatch):
        recover_signer("hello", signature)


@pytest.mark.parametrize(
    ("nano", "usd"),
    [
        (0, "0"),
        (1, "0.000000001"),
        (1_500_000_000, "1.5"),
        (10_000_000_000, "10"),
        (123_456_789, "0.123456789"),
    ],
)
def test_usd_strings_are_exact(nano: int, usd: str) -> None:
    assert nano_usd_to_usd_string(nano) == usd


def test_withdrawal_hold_must_outlive_the_request_validity() -> None:
    with pytest.raises(ValidationError):
        AccountsSettings(withdrawal_request_validity_s_max=3600, withdrawal_hold_timeout_s=3600)
