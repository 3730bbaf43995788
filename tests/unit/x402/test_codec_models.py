"""Header codec and models: wire round trips, camelCase aliases, digit-string amounts, malformed input."""

from __future__ import annotations

import base64
import json

import pytest

from tests.unit.x402.helpers import NOW_UNIX_S, PAYER, offers
from x402.client import sign_payment, sign_payment_v1
from x402.codec import decode_header_json, decode_payment_header, encode_header
from x402.errors import InvalidPayload, InvalidX402Version
from x402.models import PaymentRequired, ResourceInfo, SettleResponse, to_wire
from x402.requirements import atomic_from_nano_usd, to_v1_requirements

RESOURCE = ResourceInfo(
    url="http://host/v1/chat/completions", description="chat", mime_type="application/json"
)


def b64(document: object) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


def test_v2_payload_round_trips_through_header() -> None:
    payload = sign_payment(offers()[0], PAYER, now_unix_s=NOW_UNIX_S, resource=RESOURCE)
    decoded = decode_payment_header(encode_header(payload), 2)
    assert decoded == payload
    wire = to_wire(payload)
    assert wire["x402Version"] == 2
    assert wire["accepted"]["amount"] == "2500"
    assert wire["accepted"]["payTo"] == payload.accepted.pay_to
    assert wire["accepted"]["maxTimeoutSeconds"] == 120
    authorization = wire["payload"]["authorization"]
    assert set(authorization) == {"from", "to", "value", "validAfter", "validBefore", "nonce"}
    assert authorization["validAfter"] == "0"
    assert authorization["validBefore"] == str(NOW_UNIX_S + 120)


def test_v1_payload_round_trips_through_header() -> None:
    requirements_v1 = to_v1_requirements(offers()[0], resource=RESOURCE)
    assert to_wire(requirements_v1)["maxAmountRequired"] == "2500"
    assert requirements_v1.network == "anvil"
    payload = sign_payment_v1(requirements_v1, PAYER, now_unix_s=NOW_UNIX_S)
    assert payload.payload.authorization.valid_after == NOW_UNIX_S - 600
    assert decode_payment_header(encode_header(payload), 1) == payload


def test_payment_required_encodes_compact_base64_json() -> None:
    document = PaymentRequired(
        error="PAYMENT-SIGNATURE header is required", resource=RESOURCE, accepts=offers()
    )
    header = encode_header(document)
    raw = base64.b64decode(header).decode()
    assert ", " not in raw
    assert json.loads(raw)["accepts"][1]["extra"] == {"name": "USDT0", "version": "1"}
    assert PaymentRequired.model_validate(decode_header_json(header)) == document


def test_settle_response_failure_shape() -> None:
    response = SettleResponse(
        success=False, error_reason="insufficient_funds", transaction="", network="eip155:1"
    )
    assert to_wire(response) == {
        "success": False,
        "errorReason": "insufficient_funds",
        "transaction": "",
        "network": "eip155:1",
    }


@pytest.mark.parametrize(
    "header",
    [
        "not base64!!",
        b64([1, 2]),
        base64.b64encode(b"\xff\xfe").decode(),
        "A" * 20_000,
        # A 16 KB header can nest ~6,000 levels: refused before the parser recurses through them.
        base64.b64encode(b'{"x402Version":2,"a":' + b"[" * 6_000 + b"]" * 6_000 + b"}").decode(),
        # An unpaired surrogate escape parses, then fails wherever the payload is stored or sent.
        base64.b64encode(b'{"x402Version":2,"payload":{"x":"\\ud800"}}').decode(),
        base64.b64encode(b'{"x402Version":2,"accepted":NaN}').decode(),
    ],
    ids=["not-base64", "not-object", "not-utf8", "too-long", "deep", "lone-surrogate", "nan"],
)
def test_malformed_header_is_invalid_payload(header: str) -> None:
    with pytest.raises(InvalidPayload) as raised:
        decode_payment_header(header, 2)
    assert raised.value.reason == "invalid_payload"


def test_header_version_must_match_header_kind() -> None:
    payload = sign_payment(offers()[0], PAYER, now_unix_s=NOW_UNIX_S)
    with pytest.raises(InvalidX402Version) as raised:
        decode_payment_header(encode_header(payload), 1)
    assert raised.value.reason == "invalid_x402_version"


@pytest.mark.parametrize("bad_value", ["-1", "1.5", "01", " 1", "1e3", True, 2**256])
def test_amounts_must_be_plain_uint256(bad_value: object) -> None:
    wire = to_wire(sign_payment(offers()[0], PAYER, now_unix_s=NOW_UNIX_S))
    wire["payload"]["authorization"]["value"] = bad_value
    with pytest.raises(InvalidPayload):
        decode_payment_header(b64(wire), 2)


def test_nano_usd_rounds_up_to_atomic() -> None:
    assert atomic_from_nano_usd(2_500_000, decimals=6) == 2_500
    assert atomic_from_nano_usd(2_500_001, decimals=6) == 2_501
    assert atomic_from_nano_usd(1, decimals=6) == 1
    assert atomic_from_nano_usd(7, decimals=18) == 7 * 10**9
