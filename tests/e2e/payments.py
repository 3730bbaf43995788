"""Test agents' side of x402: sign a payment for a 402 offer, with every field open to tampering."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_typing import Hash32

from x402.eip3009 import Eip712Domain, authorization_digest, random_authorization_nonce, sign_authorization
from x402.models import ExactEvmAuthorization
from x402.networks import chain_id_from_caip2
from x402.siwx import SiwxPayload, render_siwx_message

__all__ = ["decode_b64_json", "encode_b64_json", "sign_v1_payment", "sign_v2_payment"]


def encode_b64_json(document: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()


def decode_b64_json(value: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(base64.b64decode(value))
    return document


def _signed_authorization(
    account: LocalAccount,
    requirement: dict[str, Any],
    *,
    value: int | None,
    to: str | None,
    valid_after: int,
    valid_before: int | None,
    nonce: str | None,
    signer: LocalAccount | None,
    domain_name: str | None,
) -> dict[str, Any]:
    authorization = ExactEvmAuthorization.model_validate(
        {
            "from": account.address,
            "to": to or requirement["payTo"],
            "value": str(
                value
                if value is not None
                else int(requirement.get("amount") or requirement["maxAmountRequired"])
            ),
            "validAfter": str(valid_after),
            "validBefore": str(valid_before if valid_before is not None else int(time.time()) + 120),
            "nonce": nonce or random_authorization_nonce(),
        }
    )
    domain = Eip712Domain(
        name=domain_name or requirement["extra"]["name"],
        version=requirement["extra"]["version"],
        chain_id=chain_id_from_caip2(requirement["network"]) if ":" in requirement["network"] else 31337,
        verifying_contract=requirement["asset"],
    )
    if signer is None:
        signature = sign_authorization(account, domain, authorization)
    else:
        # A forgery: another key signs the very digest that `account` should have signed.
        signed = signer.unsafe_sign_hash(Hash32(authorization_digest(domain, authorization)))
        signature = (
            "0x" + (signed.r.to_bytes(32, "big") + signed.s.to_bytes(32, "big") + bytes([signed.v])).hex()
        )
    return {"signature": signature, "authorization": authorization.model_dump(mode="json", by_alias=True)}


def sign_v2_payment(
    account: LocalAccount,
    offer: dict[str, Any],
    *,
    asset_index: int = 0,
    value: int | None = None,
    to: str | None = None,
    valid_after: int = 0,
    valid_before: int | None = None,
    nonce: str | None = None,
    signer: LocalAccount | None = None,
    domain_name: str | None = None,
    accepted_overrides: dict[str, Any] | None = None,
    document_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A PAYMENT-SIGNATURE document for offer['accepts'][asset_index]; overrides make it wrong on purpose."""
    requirement = dict(offer["accepts"][asset_index])
    payload = _signed_authorization(
        account,
        requirement,
        value=value,
        to=to,
        valid_after=valid_after,
        valid_before=valid_before,
        nonce=nonce,
        signer=signer,
        domain_name=domain_name,
    )
    document = {
        "x402Version": 2,
        "resource": offer["resource"],
        "accepted": {**requirement, **(accepted_overrides or {})},
        "payload": payload,
    }
    document.update(document_overrides or {})
    return document


def sign_v1_payment(
    account: LocalAccount, offer: dict[str, Any], *, network_name: str, asset_index: int = 0
) -> dict[str, Any]:
    requirement = dict(offer["accepts"][asset_index])
    now = int(time.time())
    payload = _signed_authorization(
        account,
        requirement,
        value=None,
        to=None,
        valid_after=now - 600,
        valid_before=now + 120,
        nonce=None,
        signer=None,
        domain_name=None,
    )
    return {"x402Version": 1, "scheme": "exact", "network": network_name, "payload": payload}


def sign_in_with_x(
    account: LocalAccount, offer: dict[str, Any], *, overrides: dict[str, Any] | None = None
) -> str:
    """A SIGN-IN-WITH-X header answering the 402's `sign-in-with-x` terms, signed as the official SDK signs
    (EIP-191 over the EIP-4361 text); `overrides` change fields after signing, to break it on purpose."""
    declaration = offer["extensions"]["sign-in-with-x"]
    chain = declaration["supportedChains"][0]
    fields = {
        **declaration["info"],
        "chainId": chain["chainId"],
        "type": chain["type"],
        "address": account.address,
    }
    message = render_siwx_message(SiwxPayload.model_validate({**fields, "signature": "0x"}))
    signature = Account.sign_message(encode_defunct(text=message), private_key=account.key).signature
    return encode_b64_json({**fields, "signature": "0x" + signature.hex(), **(overrides or {})})
