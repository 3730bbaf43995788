"""Bounds on sign-in-with-x: proofs per client IP, nonces remembered only while they matter, and one proof
sent twice at once serving once.

Method: the running router (SQLite and PostgreSQL for the race); a router with a tiny per-IP bucket; a
WalletSignIns over the app's database with an injected clock for the purge.
"""

from __future__ import annotations

import asyncio

import pytest

from ledger import chart, check_ledger
from proxy.accounts.sign_in_with_x import WalletSignIns
from proxy.api.app_keys import DB_ENGINE, LEDGER, SIGNING_SCOPE
from proxy.settings import ReturningPayersSettings
from tests.e2e.api.support import topup
from tests.e2e.payments import decode_b64_json, sign_in_with_x
from tests.fixtures.app import RouterWith, RunningRouter
from tests.fixtures.clock import FakeClock
from x402.siwx import siwx_declaration

BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 200}
PATH = "/v1/chat/completions"


async def _offer(router: RunningRouter) -> dict[str, object]:
    response = await router.client.post(PATH, json=BODY)
    assert response.status == 402
    return decode_b64_json(response.headers["PAYMENT-REQUIRED"])


async def test_one_proof_sent_twice_at_once_serves_once(router: RunningRouter) -> None:
    payer = router.payers[3]
    await topup(router, payer, amount_usd="0.5")
    header = sign_in_with_x(payer, await _offer(router))
    responses = await asyncio.gather(
        *(router.client.post(PATH, json=BODY, headers={"SIGN-IN-WITH-X": header}) for _ in range(2))
    )
    assert sorted(response.status for response in responses) == [200, 402]
    refused = next(response for response in responses if response.status == 402)
    assert (await refused.json())["error"] == "invalid_siwx_nonce"
    served = next(response for response in responses if response.status == 200)
    cost_nano_usd = int(served.headers["X-MegaRouter-Cost-Nano-USD"])
    assert (await router.app[LEDGER].balance(chart.credit_wallet(payer.address))).available == (
        500_000_000 - cost_nano_usd
    )
    assert await check_ledger(router.app[DB_ENGINE]) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_proofs_per_client_are_bounded(router_with: RouterWith) -> None:
    limited = ReturningPayersSettings(sign_in_burst_per_ip=2, sign_in_refill_interval_s=3600.0)
    async with router_with(returning_payers=limited) as router:
        payer = router.payers[3]
        statuses = []
        for _ in range(3):
            header = sign_in_with_x(payer, await _offer(router))
            response = await router.client.post(PATH, json=BODY, headers={"SIGN-IN-WITH-X": header})
            statuses.append(response.status)
        assert statuses[:2] == [402, 402]  # No credit: checked, and offered the whole quote.
        assert statuses[2] == 429
        limited_response = await router.client.post(PATH, json=BODY, headers={"SIGN-IN-WITH-X": header})
        assert (await limited_response.json())["error"]["code"] == "too_many_sign_ins"
        assert int(limited_response.headers["Retry-After"]) >= 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_nonces_are_forgotten_once_their_proofs_are_too_old(router: RunningRouter) -> None:
    clock = FakeClock(start_s=1_800_000_000.0)
    settings = ReturningPayersSettings(sign_in_validity_s=300)
    sign_ins = WalletSignIns(
        router.app[DB_ENGINE], scope=router.app[SIGNING_SCOPE], settings=settings, clock_unix_s=clock
    )
    payer = router.payers[3]

    def header_now() -> str:
        declaration = siwx_declaration(
            scope=sign_ins.scope,
            nonce=f"{int(clock()):032d}",
            issued_at_unix_s=int(clock()),
            statement="Sign in.",
        )
        return sign_in_with_x(payer, {"extensions": {"sign-in-with-x": declaration}})

    assert await sign_ins.sign_in(header_now()) == payer.address.lower()
    assert await sign_ins.nonces_remembered() == 1
    clock.advance(301)
    assert await sign_ins.sign_in(header_now()) == payer.address.lower()
    assert await sign_ins.nonces_remembered() == 1  # The first is too old to replay, so it was purged.
