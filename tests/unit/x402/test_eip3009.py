"""EIP-3009 digest and signatures: our first-principles digest equals eth_account's EIP-712 encoding,
signatures recover the signer, and malformed or malleable signatures are refused like the token does."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data

from tests.unit.x402.helpers import PAY_TO, PAYER
from x402.eip3009 import (
    Eip712Domain,
    authorization_digest,
    recover_authorizer,
    sign_authorization,
    transfer_authorization_typed_data,
)
from x402.errors import InvalidSignature
from x402.models import ExactEvmAuthorization

DOMAIN = Eip712Domain(
    name="USD Coin",
    version="2",
    chain_id=8453,
    verifying_contract="0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
)
AUTHORIZATION = ExactEvmAuthorization(
    from_=PAYER.address,
    to=PAY_TO,
    value=2_500,
    valid_after=0,
    valid_before=1_795_645_564,
    nonce="0x" + "42" * 32,
)
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def test_digest_matches_eth_account_typed_data_encoding() -> None:
    signable = encode_typed_data(full_message=transfer_authorization_typed_data(DOMAIN, AUTHORIZATION))
    assert authorization_digest(DOMAIN, AUTHORIZATION) == _hash_eip191_message(signable)


def test_digest_matches_eth_account_with_hand_written_message() -> None:
    # Independent of our typed-data builder: the message as a wallet would receive it.
    signable = encode_typed_data(
        domain_data={
            "name": "USD Coin",
            "version": "2",
            "chainId": 8453,
            "verifyingContract": DOMAIN.verifying_contract,
        },
        message_types={
            "TransferWithAuthorization": [
                {"name": "from", "type": "address"},
                {"name": "to", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "validAfter", "type": "uint256"},
                {"name": "validBefore", "type": "uint256"},
                {"name": "nonce", "type": "bytes32"},
            ]
        },
        message_data={
            "from": PAYER.address,
            "to": AUTHORIZATION.to,
            "value": 2_500,
            "validAfter": 0,
            "validBefore": 1_795_645_564,
            "nonce": bytes.fromhex("42" * 32),
        },
    )
    assert authorization_digest(DOMAIN, AUTHORIZATION) == _hash_eip191_message(signable)


def test_signature_recovers_signer_and_matches_eth_account() -> None:
    signature = sign_authorization(PAYER, DOMAIN, AUTHORIZATION)
    assert recover_authorizer(DOMAIN, AUTHORIZATION, signature) == PAYER.address
    typed = transfer_authorization_typed_data(DOMAIN, AUTHORIZATION)
    assert Account.sign_typed_data(PAYER.key, full_message=typed).signature.to_0x_hex() == signature


def test_other_domain_recovers_someone_else() -> None:
    signature = sign_authorization(PAYER, DOMAIN, AUTHORIZATION)
    other_domain = Eip712Domain(
        name="USD Coin", version="1", chain_id=8453, verifying_contract=DOMAIN.verifying_contract
    )
    assert recover_authorizer(other_domain, AUTHORIZATION, signature) != PAYER.address


def test_malleable_and_malformed_signatures_are_refused() -> None:
    raw = bytes.fromhex(sign_authorization(PAYER, DOMAIN, AUTHORIZATION)[2:])
    r, s, v = raw[:32], int.from_bytes(raw[32:64], "big"), raw[64]
    high_s = "0x" + (r + (_SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])).hex()
    for bad in (high_s, "0x" + raw[:64].hex(), "0x" + (raw[:64] + b"\x01").hex()):
        with pytest.raises(InvalidSignature):
            recover_authorizer(DOMAIN, AUTHORIZATION, bad)
