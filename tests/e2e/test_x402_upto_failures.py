"""Every way to break an x402 `upto` payment gets its reason code and books nothing wrong.

Method: the running app on the session chain (Permit2 and the upto proxy placed, payers approving Permit2);
payers sign with x402/upto_client.py, then one field is changed (re-signed, or tampered after signing).
Refusals at verification leave no intent and no ledger transaction. A payer that withdraws its allowance or
balance while its request is served (the simulated upstream answers slowly; the withdrawal lands while the
intent is claimed) gets a 402 with the reason and no answer, nothing moves on chain, and the operator's
loss is booked in `expense:x402_upto_loss:<network>`. A replayed authorization and a second promise of the
same funds are refused.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from ledger import Ledger, chart, check_ledger
from proxy.api.app_keys import DB_ENGINE
from proxy.devnet.permit2 import approve_permit2
from proxy.devnet.tokens import await_devnet_success, send_devnet_transaction, transfer
from tests.e2e.payments import decode_b64_json, encode_b64_json
from tests.e2e.upto_support import CHAT_BODY, NETWORK, intent_rows, upto_offer, upto_payment_header
from tests.fixtures.app import RunningRouter
from tests.fixtures.chain import token_balance_atomic
from x402.models import PaymentRequirements, to_wire
from x402.networks import chain_id_from_caip2
from x402.permit2 import PERMIT2_ADDRESS, Permit2TokenPermissions, sign_upto_authorization
from x402.upto_client import sign_upto_payment

INTENT_WAIT_S = 10.0
UPSTREAM_LATENCY_MS = 4_000
OTHER_ADDRESS = "0x000000000000000000000000000000000000bEEF"


def tampered_header(
    payer: LocalAccount,
    offer: PaymentRequirements,
    *,
    signer: LocalAccount | None = None,
    authorization: dict[str, Any] | None = None,
    witness: dict[str, Any] | None = None,
    after_signing: dict[str, Any] | None = None,
    accepted: dict[str, Any] | None = None,
) -> str:
    """A payload for `offer` whose authorization fields are changed, signed by `signer` (default: the
    payer); `after_signing` changes the witness once the signature is made."""
    payload = sign_upto_payment(payer, offer, now_unix_s=int(time.time()))
    auth = payload.payload.permit2_authorization
    changed_witness = auth.witness.model_copy(update=witness)
    auth = auth.model_copy(update={**(authorization or {}), "witness": changed_witness})
    chain_id = chain_id_from_caip2(offer.network)
    if signer is None:
        signature = sign_upto_authorization(payer, chain_id, auth)
    else:
        forged = auth.model_copy(update={"from_": signer.address})
        signature = sign_upto_authorization(signer, chain_id, forged)
    if after_signing:
        auth = auth.model_copy(update={"witness": auth.witness.model_copy(update=after_signing)})
    document = to_wire(payload)
    document["payload"] = {"signature": signature, "permit2Authorization": to_wire(auth)}
    document["accepted"] = {**document["accepted"], **(accepted or {})}
    return encode_b64_json(document)


Tamper = Callable[[LocalAccount, PaymentRequirements, LocalAccount], str]
CASES: dict[str, tuple[Tamper, str]] = {
    "wrong_spender": (
        lambda p, o, _: tampered_header(p, o, authorization={"spender": OTHER_ADDRESS}),
        "invalid_permit2_spender",
    ),
    "witness_pays_someone_else": (
        lambda p, o, _: tampered_header(p, o, witness={"to": OTHER_ADDRESS}),
        "invalid_permit2_recipient_mismatch",
    ),
    "witness_names_another_facilitator": (
        lambda p, o, _: tampered_header(p, o, witness={"facilitator": OTHER_ADDRESS}),
        "upto_facilitator_mismatch",
    ),
    "witness_changed_after_signing": (
        lambda p, o, _: tampered_header(p, o, after_signing={"valid_after": 1}),
        "invalid_permit2_signature",
    ),
    "witness_not_yet_valid": (
        lambda p, o, _: tampered_header(p, o, witness={"valid_after": int(time.time()) + 3_600}),
        "permit2_not_yet_valid",
    ),
    "deadline_before_the_request_can_end": (
        lambda p, o, _: tampered_header(p, o, authorization={"deadline": int(time.time()) + 60}),
        "permit2_deadline_expired",
    ),
    "deadline_beyond_the_offer": (
        lambda p, o, _: tampered_header(p, o, authorization={"deadline": int(time.time()) + 86_400}),
        "permit2_deadline_expired",
    ),
    "amount_above_the_maximum": (
        lambda p, o, _: tampered_header(
            p,
            o,
            authorization={"permitted": Permit2TokenPermissions(token=o.asset, amount=o.amount + 1)},
            accepted={"amount": str(o.amount + 1)},
        ),
        "permit2_amount_mismatch",
    ),
    "another_token": (
        lambda p, o, _: tampered_header(
            p, o, authorization={"permitted": Permit2TokenPermissions(token=OTHER_ADDRESS, amount=o.amount)}
        ),
        "permit2_token_mismatch",
    ),
    "signed_by_someone_else": (
        lambda p, o, other: tampered_header(p, o, signer=other),
        "invalid_permit2_signature",
    ),
}


async def _paid(router: RunningRouter, header: str) -> Any:
    return await router.client.post(
        "/v1/chat/completions", json=CHAT_BODY, headers={"PAYMENT-SIGNATURE": header}
    )


async def _assert_nothing_booked(router: RunningRouter, payer: LocalAccount) -> None:
    engine = router.app[DB_ENGINE]
    assert await intent_rows(engine) == []
    ledger = Ledger(engine)
    assert [tx.code for tx in await ledger.transactions()] == []
    assert chart.credit_wallet(payer.address) not in {a.name for a in await ledger.accounts()}
    assert await check_ledger(engine) == []


@pytest.mark.parametrize("case", list(CASES))
async def test_a_broken_authorization_gets_its_reason_and_books_nothing(
    router: RunningRouter, case: str
) -> None:
    tamper, reason = CASES[case]
    payer, other = router.payers[4], router.payers[5]
    offer = await upto_offer(router, CHAT_BODY, asset=router.tokens.usdc.address)
    header = tamper(payer, offer, other)
    response = await _paid(router, header)
    assert response.status == 402, await response.text()
    body = await response.json()
    assert body["error"] == reason
    assert decode_b64_json(response.headers["PAYMENT-REQUIRED"]) == body
    await _assert_nothing_booked(router, payer)


async def _invalidate_nonce(router: RunningRouter, payer: LocalAccount, nonce: int) -> None:
    # invalidateUnorderedNonces(uint256 wordPosition, uint256 mask) on Permit2, from the payer.
    selector = keccak(text="invalidateUnorderedNonces(uint256,uint256)")[:4].hex()
    word, mask = (nonce >> 8).to_bytes(32, "big"), (1 << (nonce & 0xFF)).to_bytes(32, "big")
    data = "0x" + selector + word.hex() + mask.hex()
    tx = {"to": PERMIT2_ADDRESS, "data": data, "gas": 80_000}
    account_nonce = await router.w3.eth.get_transaction_count(payer.address, "pending")
    await await_devnet_success(router.w3, await send_devnet_transaction(router.w3, payer, tx, account_nonce))


async def test_a_nonce_the_payer_invalidated_is_refused(router: RunningRouter) -> None:
    payer = router.payers[4]
    offer = await upto_offer(router, CHAT_BODY, asset=router.tokens.usdc.address)
    nonce = 12_345_678_901
    await _invalidate_nonce(router, payer, nonce)
    header = upto_payment_header(payer, offer, nonce=nonce)
    response = await _paid(router, header)
    assert response.status == 402
    assert (await response.json())["error"] == "permit2_invalid_nonce"
    await _assert_nothing_booked(router, payer)


async def test_a_replayed_authorization_is_refused_and_settled_once(router: RunningRouter) -> None:
    payer, usdc = router.payers[4], router.tokens.usdc.address
    offer = await upto_offer(router, CHAT_BODY, asset=usdc)
    header = upto_payment_header(payer, offer)
    before = await token_balance_atomic(router.w3, usdc, payer.address)
    first = await _paid(router, header)
    assert first.status == 200, await first.text()
    paid_atomic = int(decode_b64_json(first.headers["PAYMENT-RESPONSE"])["amount"])
    again = await _paid(router, header)
    assert again.status == 402
    assert (await again.json())["error"] == "permit2_invalid_nonce"
    assert await token_balance_atomic(router.w3, usdc, payer.address) == before - paid_atomic
    assert [row["status"] for row in await intent_rows(router.app[DB_ENGINE])] == ["booked"]
    assert await check_ledger(router.app[DB_ENGINE]) == []


async def _fresh_payer(router: RunningRouter, *, funds_atomic: int) -> LocalAccount:
    """A new payer with gas money, `funds_atomic` USDC (from a session payer: the supply stays what the
    fixture minted) and Permit2 approved: free to drain."""
    payer: LocalAccount = Account.create()
    await router.w3.provider.make_request("anvil_setBalance", [payer.address, hex(10**18)])
    usdc = router.tokens.usdc.address
    await transfer(router.w3, router.payers[8], token=usdc, to=payer.address, amount_atomic=funds_atomic)
    await approve_permit2(router.w3, [payer], tokens=[usdc])
    return payer


async def _claimed(router: RunningRouter, count: int) -> None:
    """Waits (bounded) until `count` upto intents are claimed: their requests are then being served."""
    async with asyncio.timeout(INTENT_WAIT_S):
        while True:
            rows = await intent_rows(router.app[DB_ENGINE])
            if len([row for row in rows if row["status"] == "claimed"]) >= count:
                return
            await asyncio.sleep(0.02)


async def _revoke_allowance(router: RunningRouter, payer: LocalAccount) -> None:
    await approve_permit2(router.w3, [payer], tokens=[router.tokens.usdc.address], amount_atomic=0)


async def _drain_balance(router: RunningRouter, payer: LocalAccount) -> None:
    usdc = router.tokens.usdc.address
    balance = await token_balance_atomic(router.w3, usdc, payer.address)
    sink = bytes.fromhex(OTHER_ADDRESS[2:]).rjust(32, b"\0").hex()
    tx = {"to": usdc, "data": "0xa9059cbb" + sink + balance.to_bytes(32, "big").hex(), "gas": 80_000}
    nonce = await router.w3.eth.get_transaction_count(payer.address, "pending")
    await await_devnet_success(router.w3, await send_devnet_transaction(router.w3, payer, tx, nonce))


WITHDRAWALS: dict[str, tuple[Callable[[RunningRouter, LocalAccount], Awaitable[None]], str]] = {
    "allowance": (_revoke_allowance, "permit2_allowance_required"),
    "balance": (_drain_balance, "permit2_insufficient_balance"),
}


@pytest.mark.parametrize("withdrawn", list(WITHDRAWALS))
async def test_funds_withdrawn_while_served_are_booked_as_a_visible_loss(
    router: RunningRouter, withdrawn: str
) -> None:
    withdraw, reason = WITHDRAWALS[withdrawn]
    payer, usdc = await _fresh_payer(router, funds_atomic=1_000_000), router.tokens.usdc.address
    offer = await upto_offer(router, CHAT_BODY, asset=usdc)
    header = upto_payment_header(payer, offer)
    router.simulator.first.set_fault("*", latency_ms=UPSTREAM_LATENCY_MS)
    wallet_nonce = await router.w3.eth.get_transaction_count(router.settlement_account.address)
    request = asyncio.create_task(_paid(router, header))
    await _claimed(router, 1)
    await withdraw(router, payer)
    payer_after_withdrawal = await token_balance_atomic(router.w3, usdc, payer.address)
    response = await request
    router.simulator.first.clear_fault("*")

    assert response.status == 402
    body = await response.json()
    assert body["error"] == reason
    assert "choices" not in body, "the answer is withheld when its payment cannot be collected"
    settlement = decode_b64_json(response.headers["PAYMENT-RESPONSE"])
    assert (settlement["success"], settlement["errorReason"]) == (False, reason)
    assert settlement["transaction"] == ""
    # Nothing moved on chain, and no transaction was sent (no gas burned on a settlement bound to revert).
    assert await token_balance_atomic(router.w3, usdc, payer.address) == payer_after_withdrawal
    assert await router.w3.eth.get_transaction_count(router.settlement_account.address) == wallet_nonce

    engine = router.app[DB_ENGINE]
    [intent] = await intent_rows(engine)
    assert (intent["status"], intent["error_reason"]) == ("lost", reason)
    ledger = Ledger(engine)
    loss = await ledger.balance(chart.upto_loss_expense(NETWORK))
    assert loss.posted == intent["value_atomic"] * 1_000 > 0
    assert (await ledger.balance(chart.in_transit(NETWORK, usdc))).posted == 0
    assert await check_ledger(engine) == []


async def test_a_payer_cannot_promise_the_same_funds_twice(router: RunningRouter) -> None:
    usdc = router.tokens.usdc.address
    offer = await upto_offer(router, CHAT_BODY, asset=usdc)
    # Enough for one maximum, not for two.
    payer = await _fresh_payer(router, funds_atomic=offer.amount * 3 // 2)
    router.simulator.first.set_fault("*", latency_ms=UPSTREAM_LATENCY_MS)
    first = asyncio.create_task(_paid(router, upto_payment_header(payer, offer)))
    await _claimed(router, 1)
    second = await _paid(router, upto_payment_header(payer, offer))
    assert second.status == 402
    assert (await second.json())["error"] == "insufficient_funds"
    assert (await first).status == 200
    router.simulator.first.clear_fault("*")
    assert [row["status"] for row in await intent_rows(router.app[DB_ENGINE])] == ["booked"]
    assert await check_ledger(router.app[DB_ENGINE]) == []


async def test_a_top_up_offers_and_takes_exact_only(router: RunningRouter) -> None:
    """A top-up has no cost to settle afterwards: `upto` is not offered there, and refused when sent."""
    payer = router.payers[4]
    url = "/v1/credits/topup?amount=0.01"
    response = await router.client.post(url)
    assert response.status == 402
    assert {entry["scheme"] for entry in (await response.json())["accepts"]} == {"exact"}
    offer = await upto_offer(router, CHAT_BODY, asset=router.tokens.usdc.address)
    paid = await router.client.post(url, headers={"PAYMENT-SIGNATURE": upto_payment_header(payer, offer)})
    assert paid.status == 402
    assert (await paid.json())["error"] == "unsupported_scheme"
    await _assert_nothing_booked(router, payer)
