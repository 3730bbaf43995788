"""What an org administrator's client does: act with its wallet key, build an org, fund it, call with
org keys."""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from tests.e2e.accounts.helpers import bearer, obtain_key
from tests.e2e.payments import encode_b64_json, sign_v2_payment
from tests.fixtures.app import RunningRouter

CHAT_BODY: dict[str, Any] = {
    "model": "openai/gpt-4o-mini",
    "messages": [{"role": "user", "content": "Count to three."}],
    "max_tokens": 16,
}


async def call(
    router: RunningRouter, method: str, path: str, key: str, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    response = await router.client.request(method, path, json=body, headers=bearer(key))
    document: dict[str, Any] = await response.json()
    return response.status, document


async def created(router: RunningRouter, path: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
    status, document = await call(router, "POST", path, key, body)
    assert status == 201, document
    return document


async def wallet_key(router: RunningRouter, account: LocalAccount | None = None) -> tuple[LocalAccount, str]:
    account = account or Account.create()
    return account, (await obtain_key(router, account))["key"]


async def top_up_org(
    router: RunningRouter, org_id: int, key: str, payer: LocalAccount, amount_usd: str
) -> int:
    """An x402 top-up of the org's credit, paid by `payer`; returns the credited nano-USD."""
    path = f"/v1/orgs/{org_id}/credits/topup?amount={amount_usd}"
    offer_response = await router.client.post(path, headers=bearer(key))
    assert offer_response.status == 402, await offer_response.text()
    header = encode_b64_json(sign_v2_payment(payer, await offer_response.json()))
    paid = await router.client.post(path, headers={**bearer(key), "PAYMENT-SIGNATURE": header})
    assert paid.status == 200, await paid.text()
    credited: int = (await paid.json())["credited_nano_usd"]
    return credited


async def chat(router: RunningRouter, key: str) -> tuple[int, dict[str, Any], int]:
    """(status, body, charged nano-USD) of one chat request made with `key`."""
    response = await router.client.post("/v1/chat/completions", json=CHAT_BODY, headers=bearer(key))
    document: dict[str, Any] = await response.json()
    return response.status, document, int(response.headers.get("X-MegaRouter-Cost-Nano-USD", "0"))


async def funded_org_with_developer_key(
    router: RunningRouter, owner_key: str, developer: LocalAccount | None = None
) -> dict[str, Any]:
    """An org "Acme" owned by `owner_key`'s wallet, funded with $0.01 by x402, with one department and in
    it a developer member (`developer`, or a new wallet) holding one org key.

    Returns {"org", "unit", "member", "key"}, each as the admin API answered it."""
    org = await created(router, "/v1/orgs", owner_key, {"name": "Acme"})
    base = f"/v1/orgs/{org['id']}"
    unit = await created(router, f"{base}/units", owner_key, {"name": "R&D", "kind": "department"})
    wallet = (developer or Account.create()).address
    member = await created(
        router, f"{base}/members", owner_key, {"wallet": wallet, "unit": unit["id"], "role": "developer"}
    )
    key = await created(router, f"{base}/keys", owner_key, {"member": member["id"], "name": "agent"})
    await top_up_org(router, org["id"], owner_key, router.payers[0], "0.01")
    return {"org": org, "unit": unit, "member": member, "key": key}
