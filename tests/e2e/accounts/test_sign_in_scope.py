"""Phishing regression (issue 9, item 3): every signed message names the configured scope, never the Host.

Method: the real app. A page at evil.example can make a victim's wallet sign whatever text it likes, and
can call the router with any Host header. So (1) a challenge asked for with `Host: evil.example` must still
name the configured domain, URI and chain id; (2) a challenge or withdrawal rewritten to name another
domain, URI or chain id and signed by the real wallet must be refused with a code naming the mismatch and
change nothing; (3) the honest paths still work. Before the fix the challenge named the caller's Host and
a withdrawal was verified against it, so both phished signatures were accepted.
"""

from __future__ import annotations

import sqlalchemy as sa

from proxy.accounts import SiweScope
from proxy.api.app_keys import DB_ENGINE, SIGNING_SCOPE
from proxy.db.tables import account_api_keys
from proxy.settings import AccountsSettings
from tests.e2e.accounts.conftest import AccountsClientFactory
from tests.e2e.accounts.helpers import challenge, pay_for_credit, sign_text, signed_withdrawal
from tests.fixtures.app import RunningRouter

EVIL_HOST = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "Origin": "https://evil.example"}


async def _key_count(router: RunningRouter) -> int:
    async with router.app[DB_ENGINE].connect() as conn:
        count: int = (
            await conn.execute(sa.select(sa.func.count()).select_from(account_api_keys))
        ).scalar_one()
    return count


async def test_a_challenge_names_the_configured_scope_whatever_the_host(
    accounts_router: RunningRouter,
) -> None:
    router = accounts_router
    scope = router.app[SIGNING_SCOPE]
    assert scope == SiweScope(domain="127.0.0.1:8402", uri="http://127.0.0.1:8402", chain_id=31337)
    wallet = router.payers[0]
    response = await router.client.post(
        "/v1/auth/challenge", json={"address": wallet.address}, headers=EVIL_HOST
    )
    assert response.status == 200, await response.text()
    issued = await response.json()
    message: str = issued["message"]
    assert message.startswith(f"{scope.domain} wants you to sign in with your Ethereum account:\n")
    assert f"\nURI: {scope.uri}\n" in message
    assert f"\nChain ID: {scope.chain_id}\n" in message
    assert "evil" not in message
    assert (issued["domain"], issued["uri"], issued["chain_id"], issued["version"]) == (
        scope.domain,
        scope.uri,
        scope.chain_id,
        "1",
    )
    # The honest path: the wallet signs what the server issued and gets a key.
    body = {"address": wallet.address, "message": message, "signature": sign_text(wallet, message)}
    assert (await router.client.post("/v1/keys", json=body)).status == 201


async def test_the_scope_follows_the_configured_public_url(
    accounts_client_factory: AccountsClientFactory,
) -> None:
    client = await accounts_client_factory(AccountsSettings(), public_base_url="https://router.example.com")
    response = await client.post("/v1/auth/challenge", json={"address": "0x" + "ab" * 20}, headers=EVIL_HOST)
    assert response.status == 200, await response.text()
    message: str = (await response.json())["message"]
    assert message.startswith("router.example.com wants you to sign in")
    assert "\nURI: https://router.example.com\n" in message


async def test_a_challenge_rewritten_for_another_scope_mints_no_key(accounts_router: RunningRouter) -> None:
    router = accounts_router
    scope = router.app[SIGNING_SCOPE]
    victim = router.payers[1]
    issued = await challenge(router, victim.address)
    message: str = issued["message"]
    rewrites = [
        (f"{scope.domain} wants you", "evil.example wants you", "domain_mismatch"),
        (f"URI: {scope.uri}", "URI: https://evil.example", "uri_mismatch"),
        (f"Chain ID: {scope.chain_id}", "Chain ID: 1", "chain_id_mismatch"),
        ("Version: 1", "Version: 2", "version_unsupported"),
    ]
    for old, new, code in rewrites:
        assert old in message
        phished = message.replace(old, new)
        body = {"address": victim.address, "message": phished, "signature": sign_text(victim, phished)}
        response = await router.client.post("/v1/keys", json=body, headers=EVIL_HOST)
        assert response.status == 400, (code, await response.text())
        error = (await response.json())["error"]
        assert (error["code"], error["type"], error["param"]) == (code, "invalid_request_error", "message")
    assert await _key_count(router) == 0
    # The challenge itself was never consumed by those refusals.
    body = {"address": victim.address, "message": message, "signature": sign_text(victim, message)}
    assert (await router.client.post("/v1/keys", json=body)).status == 201


async def test_a_withdrawal_signed_for_another_scope_is_refused(accounts_router: RunningRouter) -> None:
    router = accounts_router
    scope = router.app[SIGNING_SCOPE]
    payer = router.payers[2]
    await pay_for_credit(router, payer, max_tokens=1024)
    others = [
        (scope.model_copy(update={"domain": "evil.example"}), "domain_mismatch"),
        (scope.model_copy(update={"uri": "https://evil.example"}), "uri_mismatch"),
        (scope.model_copy(update={"chain_id": 1}), "chain_id_mismatch"),
    ]
    before = await router.snapshot()
    for other, code in others:
        body = signed_withdrawal(router, payer, amount_atomic=1, scope=other)
        response = await router.client.post("/v1/credits/withdraw", json=body, headers=EVIL_HOST)
        assert response.status == 400, (code, await response.text())
        assert (await response.json())["error"]["code"] == code
    assert await router.snapshot() == before

    honest = signed_withdrawal(router, payer, amount_atomic=1)
    response = await router.client.post("/v1/credits/withdraw", json=honest, headers=EVIL_HOST)
    assert response.status == 200, await response.text()
    assert (await response.json())["status"] == "completed"
