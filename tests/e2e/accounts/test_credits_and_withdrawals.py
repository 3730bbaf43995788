"""Wallet credit, end to end: what an x402 payment leaves is the wallet's credit, visible with its key and
withdrawable with its signature, and concurrent withdrawals can never take more than the credit.

Method: the real app on SQLite and PostgreSQL against Anvil with our tokens; withdrawals are real ERC-20
transfers from the settlement wallet, sent by the app's Settler.transfer. Balances are compared before
and after, on chain and in the ledger; `ledger check` must stay clean.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest
from eth_account import Account

from ledger import chart, check_ledger
from proxy.api.app_keys import DB_ENGINE, LEDGER
from tests.e2e.accounts.helpers import bearer, obtain_key, pay_for_credit, signed_withdrawal
from tests.fixtures.app import RunningRouter


async def test_credits_show_what_an_x402_payment_left(accounts_router: RunningRouter) -> None:
    router = accounts_router
    payer = router.payers[4]
    paid_nano_usd, cost_nano_usd = await pay_for_credit(router, payer, max_tokens=256)
    key = (await obtain_key(router, payer))["key"]

    response = await router.client.get("/v1/credits", headers=bearer(key))
    assert response.status == 200, await response.text()
    credit = await response.json()
    left_nano_usd = paid_nano_usd - cost_nano_usd
    assert credit["wallet"] == payer.address.lower()
    assert credit["balance"]["available_nano_usd"] == left_nano_usd
    assert credit["balance"]["posted_nano_usd"] == left_nano_usd
    assert credit["balance"]["pending_nano_usd"] == 0
    assert Decimal(credit["balance"]["available_usd"]).scaleb(9) == left_nano_usd
    assert credit["holds"] == []
    # Newest first: the charge for the completion, then the x402 deposit.
    assert [(m["code"], m["amount_nano_usd"]) for m in credit["movements"]] == [
        ("inference_hold", -cost_nano_usd),
        ("x402_deposit", paid_nano_usd),
    ]
    assert credit["movements"][0]["balance_after_nano_usd"] == left_nano_usd
    assert credit["movements"][1]["external_ref"].startswith("eip155:31337:0x")


async def test_a_wallet_that_never_paid_has_zero_credit(accounts_router: RunningRouter) -> None:
    key = (await obtain_key(accounts_router, accounts_router.payers[5]))["key"]
    credit = await (await accounts_router.client.get("/v1/credits", headers=bearer(key))).json()
    assert credit["balance"]["available_nano_usd"] == 0
    assert credit["balance"]["available_usd"] == "0"
    assert credit["movements"] == []


async def test_concurrent_withdrawals_never_exceed_the_credit(accounts_router: RunningRouter) -> None:
    router = accounts_router
    payer = router.payers[6]
    usdc = router.tokens.usdc.address
    paid_nano_usd, cost_nano_usd = await pay_for_credit(router, payer, max_tokens=4096)
    ledger = router.app[LEDGER]
    credit_account = chart.credit_wallet(payer.address)
    available_nano_usd = (await ledger.balance(credit_account)).available
    assert available_nano_usd == paid_nano_usd - cost_nano_usd
    amount_atomic = available_nano_usd * 40 // 100 // 1_000
    assert amount_atomic > 0
    fits = available_nano_usd // (amount_atomic * 1_000)
    assert fits == 2
    payer_before = await router.token_balance(usdc, payer.address)
    wallet_before = await router.token_balance(usdc, router.settlement_wallet)

    async def withdraw() -> tuple[int, dict[str, object]]:
        body = signed_withdrawal(router, payer, amount_atomic=amount_atomic)
        response = await router.client.post("/v1/credits/withdraw", json=body)
        return response.status, await response.json()

    results = await asyncio.gather(*(withdraw() for _ in range(10)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * fits + [400] * (10 - fits), results
    refused = [body for status, body in results if status == 400]
    assert {body["error"]["code"] for body in refused} == {"insufficient_credit"}  # type: ignore[index]
    done = [body for status, body in results if status == 200]
    assert all(body["status"] == "completed" and body["tx_hash"] for body in done)

    withdrawn_atomic = fits * amount_atomic
    assert await router.token_balance(usdc, payer.address) == payer_before + withdrawn_atomic
    assert await router.token_balance(usdc, router.settlement_wallet) == wallet_before - withdrawn_atomic
    balance = await ledger.balance(credit_account)
    assert balance.available == balance.posted == available_nano_usd - withdrawn_atomic * 1_000
    assert (await ledger.balance(chart.in_transit(router.settings.network, usdc))).posted == 0
    for body in done:
        ref = f"{router.settings.network}:{body['tx_hash']}:{body['transfer_log_index']}".lower()
        transaction = await ledger.transaction_by_external_ref(ref)
        assert transaction is not None
        assert transaction.code == "withdrawal_settled"
    assert await check_ledger(router.app[DB_ENGINE]) == []


async def test_bad_withdrawal_requests_are_refused_and_change_nothing(accounts_router: RunningRouter) -> None:
    router = accounts_router
    payer = router.payers[7]
    await pay_for_credit(router, payer, max_tokens=1024)
    now = int(time.time())
    cases = [
        (
            signed_withdrawal(router, payer, amount_atomic=1, signer=Account.create()),
            400,
            "signature_mismatch",
        ),
        (
            signed_withdrawal(router, payer, amount_atomic=1, destination=router.payers[8].address),
            400,
            "invalid_destination",
        ),
        (
            signed_withdrawal(
                router, payer, amount_atomic=1, issued_at_unix_s=now - 600, expires_at_unix_s=now - 1
            ),
            400,
            "withdrawal_expired",
        ),
        (
            signed_withdrawal(router, payer, amount_atomic=1, expires_at_unix_s=now + 86_400),
            400,
            "withdrawal_expiry_too_far",
        ),
        (signed_withdrawal(router, payer, amount_atomic=1, asset="0x" + "11" * 20), 400, "unsupported_asset"),
        (signed_withdrawal(router, payer, amount_atomic=10**9), 400, "insufficient_credit"),
    ]
    cases.append(
        (
            signed_withdrawal(router, payer, amount_atomic=1, issued_at_unix_s=now + 120),
            400,
            "withdrawal_not_yet_valid",
        )
    )
    # Terms changed after signing: the message no longer states them, or (restated) the signature is stale.
    tampered = signed_withdrawal(router, payer, amount_atomic=1)
    cases.append(({**tampered, "amount_atomic": 2}, 400, "withdrawal_message_mismatch"))
    restated = signed_withdrawal(router, payer, amount_atomic=2, nonce=tampered["nonce"])
    cases.append(({**restated, "signature": tampered["signature"]}, 400, "signature_mismatch"))
    cases.append(({**tampered, "message": "hello"}, 400, "message_malformed"))
    before = await router.snapshot()
    for body, status, code in cases:
        response = await router.client.post("/v1/credits/withdraw", json=body)
        assert response.status == status, (code, await response.text())
        assert (await response.json())["error"]["code"] == code
    assert await router.snapshot() == before

    once = signed_withdrawal(router, payer, amount_atomic=1)
    assert (await router.client.post("/v1/credits/withdraw", json=once)).status == 200
    replay = await router.client.post("/v1/credits/withdraw", json=once)
    assert replay.status == 409
    assert (await replay.json())["error"]["code"] == "withdrawal_nonce_used"
    assert await check_ledger(router.app[DB_ENGINE]) == []


@pytest.mark.parametrize("copies", [5])
async def test_concurrent_copies_of_one_signed_withdrawal_pay_once(
    accounts_router: RunningRouter, copies: int
) -> None:
    router = accounts_router
    payer = router.payers[8]
    await pay_for_credit(router, payer, max_tokens=1024)
    usdc = router.tokens.usdc.address
    payer_before = await router.token_balance(usdc, payer.address)
    body = signed_withdrawal(router, payer, amount_atomic=3)
    responses = await asyncio.gather(
        *(router.client.post("/v1/credits/withdraw", json=body) for _ in range(copies))
    )
    assert sorted(response.status for response in responses) == [200] + [409] * (copies - 1)
    assert await router.token_balance(usdc, payer.address) == payer_before + 3
    assert await check_ledger(router.app[DB_ENGINE]) == []
