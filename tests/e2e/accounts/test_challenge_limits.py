"""Sign-in challenges are bounded (issue 9, item 8): per client IP, per address, and in all.

Method: the real app with small limits and a token bucket on an injected clock (no sleeps, no wall-clock
assertions). The request after a client's burst gets 429 with an OpenAI-style rate_limit_error and a
Retry-After that the clock then honours; one address keeps only its newest challenges (the replaced ones
are gone); a full table refuses new challenges with 429 and Retry-After and never grows past its cap; and
expired challenges are purged. Before the fix a caller could store challenges without any bound.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from eth_account import Account

from proxy.accounts import ApiKeys, TokenBuckets
from proxy.api.app_keys import DB_ENGINE, SIGNING_SCOPE
from proxy.db.tables import account_challenges
from proxy.settings import AccountsSettings
from tests.e2e.accounts.conftest import AccountsClientFactory
from tests.e2e.accounts.helpers import sign_text

VALIDITY_S = 300


class ManualClock:
    def __init__(self, now_s: float) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


async def _challenge_rows(client: Any) -> list[sa.RowMapping]:
    async with client.app[DB_ENGINE].connect() as conn:
        statement = sa.select(account_challenges).order_by(account_challenges.c.id)
        return list((await conn.execute(statement)).mappings().all())


async def test_a_client_past_its_burst_gets_429_until_the_bucket_refills(
    accounts_client_factory: AccountsClientFactory,
) -> None:
    clock = ManualClock(now_s=50.0)
    limiter = TokenBuckets(capacity=3, refill_interval_s=20.0, keys_max=100, clock_s=clock)
    client = await accounts_client_factory(AccountsSettings(), limiter=limiter)
    address = Account.create().address
    for _ in range(3):
        assert (await client.post("/v1/auth/challenge", json={"address": address})).status == 200
    refused = await client.post("/v1/auth/challenge", json={"address": address})
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "20"
    error = (await refused.json())["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "too_many_challenges")
    assert len(await _challenge_rows(client)) == 3  # The refused request stored nothing.

    clock.now_s += 19
    assert (await client.post("/v1/auth/challenge", json={"address": address})).headers["Retry-After"] == "1"
    clock.now_s += 1
    assert (await client.post("/v1/auth/challenge", json={"address": address})).status == 200


async def test_an_address_keeps_only_its_newest_challenges(
    accounts_client_factory: AccountsClientFactory,
) -> None:
    client = await accounts_client_factory(AccountsSettings(challenges_per_address_max=2))
    wallet = Account.create()
    issued = []
    for _ in range(5):
        response = await client.post("/v1/auth/challenge", json={"address": wallet.address})
        assert response.status == 200
        issued.append(await response.json())
    rows = await _challenge_rows(client)
    assert [row["nonce"] for row in rows] == [issued[3]["nonce"], issued[4]["nonce"]]

    replaced = issued[0]["message"]
    body = {"address": wallet.address, "message": replaced, "signature": sign_text(wallet, replaced)}
    response = await client.post("/v1/keys", json=body)
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "challenge_not_found"
    newest = issued[4]["message"]
    body = {"address": wallet.address, "message": newest, "signature": sign_text(wallet, newest)}
    assert (await client.post("/v1/keys", json=body)).status == 201


async def test_a_full_table_refuses_with_retry_after_and_expired_challenges_are_purged(
    accounts_client_factory: AccountsClientFactory,
) -> None:
    settings = AccountsSettings(
        challenges_pending_max=3, challenges_per_address_max=2, challenge_validity_s=VALIDITY_S
    )
    client = await accounts_client_factory(settings)
    # The same table through ApiKeys on an injected clock, to step past expiry without waiting. It starts
    # at the app's time so that the app's own requests see these challenges as pending.
    clock = ManualClock(now_s=time.time())
    keys = ApiKeys(client.app[DB_ENGINE], settings, scope=client.app[SIGNING_SCOPE], clock_unix_s=clock)
    first, second, third = (Account.create().address for _ in range(3))
    await keys.issue_challenge(first)
    clock.now_s += 10
    await keys.issue_challenge(second)
    await keys.issue_challenge(second)
    refused = await client.post("/v1/auth/challenge", json={"address": third})
    assert refused.status == 429
    error = (await refused.json())["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "too_many_challenges")
    assert 1 <= int(refused.headers["Retry-After"]) <= VALIDITY_S
    # An address already at its own cap replaces its oldest instead of growing the table.
    await keys.issue_challenge(second)
    assert len(await _challenge_rows(client)) == 3

    clock.now_s += VALIDITY_S - 10  # `first` expires now; the others 10 s later.
    await keys.issue_challenge(third)
    rows = await _challenge_rows(client)
    assert len(rows) == 3
    assert first.lower() not in {row["address"] for row in rows}
    clock.now_s += VALIDITY_S - 1  # `second`'s have expired, `third`'s first has 1 s left.
    await keys.issue_challenge(third)
    assert [row["address"] for row in await _challenge_rows(client)] == [third.lower(), third.lower()]
