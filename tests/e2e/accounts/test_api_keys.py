"""Wallet-proven API keys, end to end: a wallet signs a fresh challenge and gets a key bound to its credit.

Method: the real app on SQLite and PostgreSQL; signatures are real EIP-191 signatures by Anvil's keys. Each
way to break the proof (bad or foreign signature, tampered, unknown, expired or reused challenge) must be
refused with its own code and mint nothing.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from eth_account import Account

from proxy.api.app_keys import DB_ENGINE
from proxy.db.tables import account_api_keys, account_challenges
from tests.e2e.accounts.helpers import bearer, challenge, obtain_key, sign_text
from tests.fixtures.app import RunningRouter


async def _key_rows(router: RunningRouter) -> list[sa.RowMapping]:
    async with router.app[DB_ENGINE].connect() as conn:
        return list((await conn.execute(sa.select(account_api_keys))).mappings().all())


async def test_challenge_key_list_and_revoke(accounts_router: RunningRouter) -> None:
    router = accounts_router
    wallet = router.payers[0]
    issued = await challenge(router, wallet.address)
    assert f"\n{wallet.address}\n" in issued["message"]  # EIP-55 checksum form, as EIP-4361 asks
    assert f"Nonce: {issued['nonce']}" in issued["message"]
    assert issued["expires_at"] > issued["issued_at"]

    created = await obtain_key(router, wallet, name="laptop")
    key = created["key"]
    assert key.startswith("mr_live_")
    assert key.startswith(created["prefix"])
    assert created["credit_account"] == f"credit:wallet:{wallet.address.lower()}"
    rows = await _key_rows(router)
    assert [row["key_sha256"] for row in rows] == [hashlib.sha256(key.encode()).hexdigest()]
    assert all(key not in str(dict(row)) for row in rows)

    listed = await router.client.get("/v1/keys", headers=bearer(key))
    assert listed.status == 200
    data = (await listed.json())["data"]
    assert [(k["id"], k["name"], k["revoked"]) for k in data] == [(created["id"], "laptop", False)]
    assert "key" not in data[0]
    assert data[0]["last_used_at"] is not None

    # Another wallet cannot see or revoke this key.
    other_key = (await obtain_key(router, router.payers[1]))["key"]
    assert (await (await router.client.get("/v1/keys", headers=bearer(other_key))).json())["data"][0][
        "id"
    ] != created["id"]
    foreign = await router.client.delete(f"/v1/keys/{created['id']}", headers=bearer(other_key))
    assert foreign.status == 404

    revoked = await router.client.delete(f"/v1/keys/{created['id']}", headers=bearer(key))
    assert revoked.status == 200
    assert (await revoked.json())["revoked"] is True
    after = await router.client.get("/v1/keys", headers=bearer(key))
    assert after.status == 401
    assert (await after.json())["error"]["code"] == "api_key_revoked"


async def test_bearer_is_required_and_checked(accounts_router: RunningRouter) -> None:
    router = accounts_router
    for headers, code in (
        ({}, "missing_api_key"),
        (bearer("mr_live_nope"), "invalid_api_key"),
        ({"Authorization": "Basic abc"}, "invalid_authorization"),
    ):
        for method, path in (("GET", "/v1/keys"), ("GET", "/v1/credits"), ("DELETE", "/v1/keys/1")):
            response = await router.client.request(method, path, headers=headers)
            assert response.status == 401, (method, path)
            body = await response.json()
            assert body["error"]["code"] == code
            assert body["error"]["type"] == "authentication_error"


async def test_bad_proofs_are_refused_and_mint_nothing(accounts_router: RunningRouter) -> None:
    router = accounts_router
    wallet, stranger = router.payers[2], Account.create()
    issued = await challenge(router, wallet.address)
    message = issued["message"]
    good_signature = sign_text(wallet, message)
    corrupted = good_signature[:10] + ("0" if good_signature[10] != "0" else "1") + good_signature[11:]
    tampered = message.replace("Create a MegaRouter API key", "Send all my tokens")
    cases = [
        ({"signature": corrupted}, "signature_mismatch"),
        ({"signature": sign_text(stranger, message)}, "signature_mismatch"),
        ({"signature": "0x1234"}, "invalid_value"),
        ({"message": tampered, "signature": sign_text(wallet, tampered)}, "challenge_mismatch"),
        ({"address": router.payers[3].address}, "challenge_mismatch"),
        ({"message": message.replace(issued["nonce"], "f" * 32)}, "challenge_not_found"),
    ]
    for override, code in cases:
        body = {"address": wallet.address, "message": message, "signature": good_signature, **override}
        response = await router.client.post("/v1/keys", json=body)
        assert response.status == 400, (override, await response.text())
        assert (await response.json())["error"]["code"] == code, override
    assert await _key_rows(router) == []

    # After all those refusals the challenge is still good, once.
    body = {"address": wallet.address, "message": message, "signature": good_signature}
    assert (await router.client.post("/v1/keys", json=body)).status == 201
    reused = await router.client.post("/v1/keys", json=body)
    assert reused.status == 400
    assert (await reused.json())["error"]["code"] == "challenge_used"
    assert len(await _key_rows(router)) == 1


async def test_expired_challenge_is_refused(accounts_router: RunningRouter) -> None:
    router = accounts_router
    wallet = router.payers[2]
    issued = await challenge(router, wallet.address)
    async with router.app[DB_ENGINE].begin() as conn:
        await conn.execute(
            account_challenges.update()
            .where(account_challenges.c.nonce == issued["nonce"])
            .values(expires_at_unix_s=issued["issued_at"] - 1)
        )
    body = {
        "address": wallet.address,
        "message": issued["message"],
        "signature": sign_text(wallet, issued["message"]),
    }
    response = await router.client.post("/v1/keys", json=body)
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "challenge_expired"
    assert await _key_rows(router) == []
