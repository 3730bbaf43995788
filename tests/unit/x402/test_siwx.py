"""x402/siwx.py, pure: the EIP-4361 text of a proof, and every refusal with its reason code.

Method: proofs built from our own declaration and signed with eth_account's personal_sign (as wallets and
the official SDK sign); each check is broken on its own, the others left valid. The text layout against the
`siwe` library itself is checked in tests/integration/x402/test_siwx_official_sdk.py.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from tests.unit.x402.helpers import NOW_UNIX_S, OTHER, PAYER
from x402.errors import InvalidPayload
from x402.siwx import (
    SiwxInvalid,
    SiwxPayload,
    SiwxScope,
    decode_siwx_header,
    render_siwx_message,
    siwx_declaration,
    siwx_expires_at_unix_s,
    verify_siwx,
)

SCOPE = SiwxScope(
    domain="router.example.com", uri="https://router.example.com", chain_id=8453, validity_s=300
)
NONCE = "0123456789abcdef0123456789abcdef"


def _proof(*, signer: Any = PAYER, after: dict[str, Any] | None = None, **fields: Any) -> SiwxPayload:
    declaration = siwx_declaration(
        scope=SCOPE, nonce=NONCE, issued_at_unix_s=NOW_UNIX_S, statement="Sign in."
    )
    document = {
        **declaration["info"],
        "chainId": "eip155:8453",
        "type": "eip191",
        "address": PAYER.address,
        **fields,
    }
    message = render_siwx_message(SiwxPayload.model_validate({**document, "signature": "0x"}))
    signature = Account.sign_message(encode_defunct(text=message), private_key=signer.key).signature
    return SiwxPayload.model_validate({**document, "signature": "0x" + signature.hex(), **(after or {})})


def test_rendered_text_is_eip4361() -> None:
    text = render_siwx_message(_proof())
    assert text == (
        "router.example.com wants you to sign in with your Ethereum account:\n"
        f"{PAYER.address}\n\nSign in.\n\n"
        "URI: https://router.example.com\nVersion: 1\nChain ID: 8453\n"
        f"Nonce: {NONCE}\nIssued At: 2026-05-28T20:26:40Z\nExpiration Time: 2026-05-28T20:31:40Z\n"
        "Resources:\n- https://router.example.com"
    )
    bare = _proof(statement=None, resources=None, expirationTime=None)
    assert "\n\n\nURI: " in render_siwx_message(bare)  # No statement: EIP-4361's empty statement lines.


def test_a_valid_proof_signs_in_its_address() -> None:
    payload = _proof()
    assert verify_siwx(payload, scope=SCOPE, now_unix_s=NOW_UNIX_S) == PAYER.address
    assert siwx_expires_at_unix_s(payload, scope=SCOPE) == NOW_UNIX_S + 300


@pytest.mark.parametrize(
    ("proof_fields", "after", "now_offset_s", "reason"),
    [
        ({"domain": "evil.example"}, None, 0, "invalid_siwx_domain_mismatch"),
        ({"uri": "https://router.example.com/other"}, None, 0, "invalid_siwx_uri_mismatch"),
        ({"chainId": "eip155:1"}, None, 0, "invalid_siwx_unsupported_chain"),
        ({"type": "ed25519"}, None, 0, "invalid_siwx_unsupported_chain"),
        ({"version": "2"}, None, 0, "invalid_siwx_version"),
        ({}, None, -1, "invalid_siwx_issued_at_in_future"),
        ({}, None, 301, "invalid_siwx_issued_at_too_old"),
        ({"expirationTime": "2026-05-28T20:26:50Z"}, None, 10, "invalid_siwx_expired"),
        ({"notBefore": "2026-05-28T20:27:40Z"}, None, 10, "invalid_siwx_not_yet_valid"),
        ({"issuedAt": "yesterday"}, None, 0, "invalid_siwx_issued_at"),
        ({}, {"nonce": "ffffffffffffffffffffffffffffffff"}, 0, "invalid_siwx_signature"),
        ({}, {"address": OTHER.address}, 0, "invalid_siwx_signature"),
        ({"address": PAYER.address.lower()}, None, 0, "invalid_siwx_signature"),
        ({}, {"signature": "0x" + "00" * 65}, 0, "invalid_siwx_signature"),
    ],
)
def test_each_broken_proof_has_its_reason(
    proof_fields: dict[str, Any], after: dict[str, Any] | None, now_offset_s: int, reason: str
) -> None:
    payload = _proof(after=after, **proof_fields)
    with pytest.raises(SiwxInvalid) as refused:
        verify_siwx(payload, scope=SCOPE, now_unix_s=NOW_UNIX_S + now_offset_s)
    assert refused.value.reason == reason


def test_signed_by_another_key_is_refused() -> None:
    with pytest.raises(SiwxInvalid) as refused:
        verify_siwx(_proof(signer=OTHER), scope=SCOPE, now_unix_s=NOW_UNIX_S)
    assert refused.value.reason == "invalid_siwx_signature"


@pytest.mark.parametrize(
    "header",
    [
        "not base64!",
        base64.b64encode(b"[1, 2]").decode(),
        base64.b64encode(json.dumps({"domain": "x"}).encode()).decode(),
        base64.b64encode(json.dumps({**_proof().model_dump(by_alias=True), "nonce": "x"}).encode()).decode(),
        base64.b64encode(
            json.dumps({**_proof().model_dump(by_alias=True), "statement": "a\nb"}).encode()
        ).decode(),
    ],
)
def test_undecodable_headers_are_invalid_payloads(header: str) -> None:
    with pytest.raises(InvalidPayload):
        decode_siwx_header(header)


def test_a_header_round_trips() -> None:
    payload = _proof()
    header = base64.b64encode(
        json.dumps(payload.model_dump(by_alias=True, exclude_none=True)).encode()
    ).decode()
    assert decode_siwx_header(header) == payload
