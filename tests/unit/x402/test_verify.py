"""Off-chain verification: the valid path, then each way to break it, each with its spec reason code.

Method: sign real payloads with a fixed key against fixed offers, tamper one thing, assert the reason.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.x402.helpers import NOW_UNIX_S, OTHER, PAYER, offers
from x402.client import sign_payment, sign_payment_v1
from x402.errors import X402Error
from x402.models import PaymentPayload, PaymentRequirements, ResourceInfo
from x402.requirements import to_v1_requirements
from x402.verify import CLOCK_SKEW_S_MAX, verify_payment_offchain


def signed(requirements: PaymentRequirements | None = None, **kwargs: Any) -> PaymentPayload:
    return sign_payment(requirements or offers()[0], PAYER, now_unix_s=NOW_UNIX_S, **kwargs)


def with_accepted(payload: PaymentPayload, **update: Any) -> PaymentPayload:
    return payload.model_copy(update={"accepted": payload.accepted.model_copy(update=update)})


def reason_of(payload: PaymentPayload) -> str:
    with pytest.raises(X402Error) as raised:
        verify_payment_offchain(payload, offers(), NOW_UNIX_S)
    return raised.value.reason


def test_valid_payment_verifies_and_binds_the_offer() -> None:
    payment = verify_payment_offchain(signed(offers()[1]), offers(), NOW_UNIX_S)
    assert payment.payer == PAYER.address
    assert payment.asset == offers()[1].asset
    assert payment.amount_atomic == 2_500
    assert (payment.domain.name, payment.domain.version, payment.chain_id) == ("USDT0", "1", 31337)


def test_valid_v1_payment_finds_its_asset_by_signature() -> None:
    resource = ResourceInfo(url="http://host/x")
    payload = sign_payment_v1(
        to_v1_requirements(offers()[1], resource=resource), PAYER, now_unix_s=NOW_UNIX_S
    )
    payment = verify_payment_offchain(payload, offers(), NOW_UNIX_S)
    assert payment.asset == offers()[1].asset
    assert payment.x402_version == 1


def test_unsupported_version() -> None:
    assert reason_of(signed().model_copy(update={"x402_version": 3})) == "invalid_x402_version"


def test_unsupported_scheme() -> None:
    assert reason_of(with_accepted(signed(), scheme="upto")) == "unsupported_scheme"


@pytest.mark.parametrize("network", ["eip155:1", "base", "solana:mainnet"])
def test_wrong_network(network: str) -> None:
    assert reason_of(with_accepted(signed(), network=network)) == "invalid_network"


def test_asset_not_offered() -> None:
    assert reason_of(with_accepted(signed(), asset="0x" + "99" * 20)) == "invalid_payment_requirements"


def test_wrong_payee() -> None:
    elsewhere = offers()[0].model_copy(update={"pay_to": OTHER.address})
    assert reason_of(signed(elsewhere)) == "invalid_exact_evm_payload_recipient_mismatch"


@pytest.mark.parametrize("amount_atomic", [2_499, 2_501])
def test_amount_must_equal_quote(amount_atomic: int) -> None:
    changed = offers()[0].model_copy(update={"amount": amount_atomic})
    assert reason_of(signed(changed)) == "invalid_exact_evm_payload_authorization_value_mismatch"


def test_not_yet_valid() -> None:
    payload = signed(valid_after_unix_s=NOW_UNIX_S + 30)
    assert reason_of(payload) == "invalid_exact_evm_payload_authorization_valid_after"


@pytest.mark.parametrize("valid_before_unix_s", [NOW_UNIX_S - 1, NOW_UNIX_S + 6])
def test_expired_or_too_close_to_expiry(valid_before_unix_s: int) -> None:
    payload = signed(valid_before_unix_s=valid_before_unix_s)
    assert reason_of(payload) == "invalid_exact_evm_payload_authorization_valid_before"


@pytest.mark.parametrize(
    "valid_before_unix_s",
    [NOW_UNIX_S + 120 + CLOCK_SKEW_S_MAX + 1, NOW_UNIX_S + 10 * 365 * 24 * 3_600],
)
def test_valid_before_beyond_max_timeout_is_refused(valid_before_unix_s: int) -> None:
    # Issue 9 item 8: an authorization valid for 10 years was accepted against a 120 s offer.
    payload = signed(valid_before_unix_s=valid_before_unix_s)
    assert reason_of(payload) == "invalid_exact_evm_payload_authorization_valid_before"


def test_valid_before_at_max_timeout_plus_clock_skew_is_accepted() -> None:
    payload = signed(valid_before_unix_s=NOW_UNIX_S + 120 + CLOCK_SKEW_S_MAX)
    assert verify_payment_offchain(payload, offers(), NOW_UNIX_S).payer == PAYER.address


def test_bad_signature() -> None:
    payload = signed()
    garbage = payload.payload.model_copy(update={"signature": "0x" + "12" * 64 + "1b"})
    assert reason_of(payload.model_copy(update={"payload": garbage})) == "invalid_exact_evm_payload_signature"


def test_signed_by_someone_other_than_from() -> None:
    by_other = sign_payment(offers()[0], OTHER, now_unix_s=NOW_UNIX_S)
    payload = signed()
    forged = payload.payload.model_copy(update={"signature": by_other.payload.signature})
    assert reason_of(payload.model_copy(update={"payload": forged})) == "invalid_exact_evm_payload_signature"


def test_token_name_mismatch() -> None:
    payload = with_accepted(signed(), extra={"name": "USD Coin Fake", "version": "2"})
    assert reason_of(payload) == "invalid_exact_evm_token_name_mismatch"


def test_token_version_mismatch() -> None:
    payload = with_accepted(signed(), extra={"name": "USD Coin", "version": "1"})
    assert reason_of(payload) == "invalid_exact_evm_token_version_mismatch"


def test_accepted_copy_must_match_offer() -> None:
    assert reason_of(with_accepted(signed(), pay_to=OTHER.address)) == "invalid_payment_requirements"


def test_offer_of_other_chain_is_not_accepted() -> None:
    payload = signed(offers(chain_id=8453)[0])
    assert reason_of(payload) == "invalid_network"


def test_signature_for_other_token_domain_is_refused() -> None:
    # Signed for USDT's domain but presented as a USDC payment.
    usdt_signed = signed(offers()[1])
    payload = with_accepted(usdt_signed, asset=offers()[0].asset, extra={"name": "USD Coin", "version": "2"})
    assert reason_of(payload) == "invalid_exact_evm_payload_signature"
