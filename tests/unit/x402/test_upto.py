"""The `upto` scheme's pure parts: the Permit2 witness digest agrees with the official SDK's signature, the
offer rounds the quote up, verification takes a valid payment and names each broken one by its reason code,
and the settle calldata is the proxy's `settle` ABI.

Method: a payload signed by the official SDK (x402 2.25.0, UptoEvmClientScheme, a random key; recorded
below with the address it came from) and payloads signed here with a fixed key against a fixed clock.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import decode as abi_decode
from eth_account import Account

from x402.errors import X402Error
from x402.models import PaymentRequirements
from x402.permit2 import UPTO_PROXY_ADDRESS, UptoEvmPayload, recover_upto_signer
from x402.requirements import AcceptedAsset
from x402.upto import UptoPaymentPayload, VerifiedUptoPayment, build_upto_requirements, verify_upto_offchain
from x402.upto_client import sign_upto_payment
from x402.upto_settle import UPTO_SETTLE_SELECTOR, upto_settle_calldata

SDK_SIGNER = "0x37a5ea1F3494B229B7a9acEa1138Ef1d5A6BBfD0"
SDK_PAYLOAD: dict[str, Any] = {
    "permit2Authorization": {
        "from": SDK_SIGNER,
        "permitted": {"token": "0x5FbDB2315678afecb367f032d93F642f64180aa3", "amount": "1234"},
        "spender": UPTO_PROXY_ADDRESS,
        "nonce": "92258996900942142865701340670328915291081041912102388750732065348884087505394",
        "deadline": "1796228469",
        "witness": {
            "to": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
            "facilitator": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
            "validAfter": "0",
        },
    },
    "signature": "0xf654024cad35d17fe87b26314dc00f30faa71180eecf39693af3b547d9b86d95"
    "44e5bd10f9756298bb04785dcfde5207cf2ea58bc2843f75b07ce519495a6a731c",
}
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
FACILITATOR = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
PAYER = Account.from_key("0x" + "11" * 32)
NOW_UNIX_S = 1_796_000_000
MAX_TIMEOUT_S = 900
SETTLE_WINDOW_S = 600


def offer(quote_nano_usd: int = 1_233_001) -> PaymentRequirements:
    [requirements] = build_upto_requirements(
        quote_nano_usd=quote_nano_usd,
        chain_id=31337,
        assets=[AcceptedAsset(address=TOKEN, name="USD Coin", version="2")],
        pay_to=FACILITATOR,
        facilitator=FACILITATOR,
        max_timeout_s=MAX_TIMEOUT_S,
    )
    return requirements


def verify(payload: UptoPaymentPayload, *, now_unix_s: int = NOW_UNIX_S) -> VerifiedUptoPayment:
    return verify_upto_offchain(
        payload, [offer()], now_unix_s, facilitator=FACILITATOR, settle_window_s=SETTLE_WINDOW_S
    )


def test_the_sdk_signature_recovers_its_signer() -> None:
    payload = UptoEvmPayload.model_validate(SDK_PAYLOAD)
    assert recover_upto_signer(31337, payload.permit2_authorization, payload.signature) == SDK_SIGNER
    # Another chain is another domain: the same signature names someone else.
    assert recover_upto_signer(8453, payload.permit2_authorization, payload.signature) != SDK_SIGNER


def test_the_offer_is_the_quote_rounded_up_with_the_facilitator() -> None:
    requirements = offer(1_233_001)
    assert (requirements.scheme, requirements.amount) == ("upto", 1_234)
    assert requirements.extra == {
        "name": "USD Coin",
        "version": "2",
        "assetTransferMethod": "permit2",
        "facilitatorAddress": FACILITATOR,
    }


def test_a_valid_payment_verifies() -> None:
    payment = verify(sign_upto_payment(PAYER, offer(), now_unix_s=NOW_UNIX_S))
    assert (payment.payer, payment.max_atomic, payment.deadline_unix_s) == (
        PAYER.address,
        1_234,
        NOW_UNIX_S + MAX_TIMEOUT_S,
    )
    assert payment.nonce_hex == "0x" + payment.nonce.to_bytes(32, "big").hex()


def _reason(payload: UptoPaymentPayload, *, now_unix_s: int = NOW_UNIX_S) -> str:
    with pytest.raises(X402Error) as raised:
        verify(payload, now_unix_s=now_unix_s)
    return raised.value.reason


def test_each_broken_payment_names_its_reason() -> None:
    valid = sign_upto_payment(PAYER, offer(), now_unix_s=NOW_UNIX_S)
    auth = valid.payload.permit2_authorization
    tampered = valid.model_copy(
        update={
            "payload": valid.payload.model_copy(
                update={"permit2_authorization": auth.model_copy(update={"nonce": auth.nonce + 1})}
            )
        }
    )
    assert _reason(tampered) == "invalid_permit2_signature"
    # Verified too late for the longest request to end before the deadline.
    assert _reason(valid, now_unix_s=NOW_UNIX_S + 400) == "permit2_deadline_expired"
    other_offer = offer(2_000_000)
    assert _reason(sign_upto_payment(PAYER, other_offer, now_unix_s=NOW_UNIX_S)) == "permit2_amount_mismatch"
    mislabelled = (("scheme", "exact", "unsupported_scheme"), ("network", "eip155:1", "invalid_network"))
    for field, value, reason in mislabelled:
        changed = valid.model_copy(update={"accepted": valid.accepted.model_copy(update={field: value})})
        assert _reason(changed) == reason


def test_the_settle_calldata_is_the_proxy_abi() -> None:
    payment = verify(sign_upto_payment(PAYER, offer(), now_unix_s=NOW_UNIX_S))
    calldata = upto_settle_calldata(payment, 17)
    # The selector web3 derives from the official SDK's X402_UPTO_PERMIT2_PROXY_ABI `settle` (recorded).
    assert calldata[:4] == UPTO_SETTLE_SELECTOR == bytes.fromhex("ff11e7b4")
    permit, amount, owner, witness, signature = abi_decode(
        ["((address,uint256),uint256,uint256)", "uint256", "address", "(address,address,uint256)", "bytes"],
        calldata[4:],
    )
    assert (permit[0][1], amount, owner.lower(), witness[1].lower()) == (
        1_234,
        17,
        PAYER.address.lower(),
        FACILITATOR.lower(),
    )
    assert "0x" + signature.hex() == payment.payload.signature
