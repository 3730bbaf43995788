"""What a wallet-owning client does: sign challenges and withdrawals, pay one x402 request for credit."""

from __future__ import annotations

import secrets
import time
from typing import Any

import aiohttp
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from proxy.accounts import SiweScope, withdrawal_message
from proxy.api.app_keys import SIGNING_SCOPE
from tests.e2e.payments import encode_b64_json, sign_v2_payment
from tests.fixtures.app import RunningRouter

__all__ = [
    "bearer",
    "obtain_key",
    "pay_for_credit",
    "sign_text",
    "signed_withdrawal",
    "top_up_credit",
    "withdrawal_body",
]


def sign_text(account: LocalAccount, text: str) -> str:
    signature: bytes = Account.sign_message(encode_defunct(text=text), private_key=account.key).signature
    return "0x" + signature.hex()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def challenge(router: RunningRouter, address: str) -> dict[str, Any]:
    response = await router.client.post("/v1/auth/challenge", json={"address": address})
    assert response.status == 200, await response.text()
    document: dict[str, Any] = await response.json()
    return document


async def obtain_key(
    router: RunningRouter, account: LocalAccount, *, name: str | None = None
) -> dict[str, Any]:
    issued = await challenge(router, account.address)
    body = {
        "address": account.address,
        "message": issued["message"],
        "signature": sign_text(account, issued["message"]),
        **({"name": name} if name else {}),
    }
    response = await router.client.post("/v1/keys", json=body)
    assert response.status == 201, await response.text()
    document: dict[str, Any] = await response.json()
    return document


async def pay_for_credit(router: RunningRouter, payer: LocalAccount, *, max_tokens: int) -> tuple[int, int]:
    """Pays one completion with x402; returns (paid nano-USD, charged nano-USD). The rest is credit."""
    body = {
        "model": "openai/gpt-4o-mini",
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "Say hello."}],
    }
    offer_response = await router.client.post("/v1/chat/completions", json=body)
    assert offer_response.status == 402
    offer = await offer_response.json()
    header = encode_b64_json(sign_v2_payment(payer, offer))
    response = await router.client.post(
        "/v1/chat/completions", json=body, headers={"PAYMENT-SIGNATURE": header}
    )
    assert response.status == 200, await response.text()
    return int(offer["accepts"][0]["amount"]) * 1_000, int(response.headers["X-MegaRouter-Cost-Nano-USD"])


async def top_up_credit(
    session: aiohttp.ClientSession,
    base_url: str,
    payer: LocalAccount,
    *,
    amount_usd: str,
    credited_nano_usd: int,
) -> None:
    """An x402 top-up of `payer`'s credit on a router served at `base_url` (e.g. a server process)."""
    url = f"{base_url}/v1/credits/topup?amount={amount_usd}"
    async with session.post(url) as response:
        assert response.status == 402, await response.text()
        offer = await response.json()
    header = encode_b64_json(sign_v2_payment(payer, offer))
    async with session.post(url, headers={"PAYMENT-SIGNATURE": header}) as paid:
        assert paid.status == 200, await paid.text()
        assert (await paid.json())["credited_nano_usd"] == credited_nano_usd


def withdrawal_body(
    scope: SiweScope,
    account: LocalAccount,
    *,
    asset: str,
    amount_atomic: int,
    signer: LocalAccount | None = None,
    destination: str | None = None,
    issued_at_unix_s: int | None = None,
    expires_at_unix_s: int | None = None,
    nonce: str | None = None,
) -> dict[str, Any]:
    """A withdrawal as a wallet-owning client builds it: the terms, their EIP-4361 text, a signature."""
    now = int(time.time())
    request: dict[str, Any] = {
        "address": account.address,
        "asset": asset,
        "amount_atomic": amount_atomic,
        "destination": destination or account.address,
        "nonce": nonce or secrets.token_hex(16),
        "issued_at_unix_s": now if issued_at_unix_s is None else issued_at_unix_s,
        "expires_at_unix_s": expires_at_unix_s or now + 300,
    }
    message = withdrawal_message(
        scope=scope,
        wallet=request["address"],
        asset=request["asset"],
        amount_atomic=amount_atomic,
        destination=request["destination"],
        nonce=request["nonce"],
        issued_at_unix_s=request["issued_at_unix_s"],
        expires_at_unix_s=request["expires_at_unix_s"],
    )
    return {**request, "message": message, "signature": sign_text(signer or account, message)}


def signed_withdrawal(
    router: RunningRouter,
    account: LocalAccount,
    *,
    amount_atomic: int,
    scope: SiweScope | None = None,
    signer: LocalAccount | None = None,
    destination: str | None = None,
    issued_at_unix_s: int | None = None,
    expires_at_unix_s: int | None = None,
    asset: str | None = None,
    nonce: str | None = None,
) -> dict[str, Any]:
    """A withdrawal for the router's signing scope (the one its challenges name), unless `scope` is given."""
    return withdrawal_body(
        scope or router.app[SIGNING_SCOPE],
        account,
        asset=asset or router.tokens.usdc.address,
        amount_atomic=amount_atomic,
        signer=signer,
        destination=destination,
        issued_at_unix_s=issued_at_unix_s,
        expires_at_unix_s=expires_at_unix_s,
        nonce=nonce,
    )
