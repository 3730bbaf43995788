"""A crash anywhere in a withdrawal loses nothing and books nothing twice.

Method: MegaRouter runs as a real OS process with a withdrawal crash point enabled (proxy/faults.py); a
wallet tops up its credit with one x402 payment and then asks for part of it back; the process dies with
os._exit at the crash point; a new process on the same database and chain starts, and its start-up
recovery must finish the withdrawal from the chain's state. A third start must change nothing. Then the
tokens have moved exactly once (or not at all when nothing was signed), the ledger holds exactly one
booking, and `ledger check` is clean. A last test drives the `sent` record whose transaction nonce went
to another transaction (never minable) in-process: recovery must release it, never send a second one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy import select
from web3 import AsyncWeb3

from ledger import Ledger, chart, check_ledger, create_ledger_engine
from proxy.accounts import SiweScope, WithdrawalRequest, Withdrawals
from proxy.accounts.withdrawal_recovery import recover_withdrawals
from proxy.api.app_keys import CHART_ACCOUNTS, DB_ENGINE, LEDGER, SETTLER, SIGNING_SCOPE, WITHDRAWALS
from proxy.db.tables import account_withdrawals
from proxy.devnet.anvil import AnvilNode
from proxy.devnet.simulator import Simulators
from proxy.devnet.tokens import DevnetTokens
from proxy.faults import CRASH_EXIT_CODE
from tests.e2e.accounts.helpers import pay_for_credit, top_up_credit, withdrawal_body
from tests.e2e.server_process import run_server_process
from tests.fixtures.app import RunningRouter, router_settings
from tests.fixtures.chain import token_balance_atomic
from x402.settle import SignedSettlement

TOPUP_USD = "0.25"
TOPUP_NANO_USD = 250_000_000
WITHDRAW_ATOMIC = 100_000  # 0.1 USDC
HTTP_TIMEOUT_S = 30.0


async def _withdraw_until_crash(base_url: str, body: dict[str, Any]) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)) as session:
        with pytest.raises(aiohttp.ClientError):
            async with session.post(f"{base_url}/v1/credits/withdraw", json=body) as response:
                await response.read()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("crash_point", "moved"),
    [("after_withdrawal_held", False), ("after_withdrawal_signed", True), ("after_withdrawal_mined", True)],
)
async def test_crash_during_withdrawal_is_recovered_once(
    crash_point: str,
    moved: bool,
    tmp_path: Path,
    anvil: AnvilNode,
    tokens: DevnetTokens,
    anvil_accounts: list[LocalAccount],
    simulator: Simulators,
    database_url: str,
    chain_w3: AsyncWeb3[Any],
) -> None:
    payer = anvil_accounts[9]
    settlement = anvil_accounts[0]
    settings = router_settings(
        anvil=anvil,
        tokens=tokens,
        settlement_key="0x" + settlement.key.hex().removeprefix("0x"),
        simulator_base_url=simulator.base_url,
        database_url=database_url,
    )
    w3 = chain_w3
    usdc = tokens.usdc.address
    payer_before = await token_balance_atomic(w3, usdc, payer.address)
    wallet_before = await token_balance_atomic(w3, usdc, settlement.address)

    async with run_server_process(
        settings.model_copy(update={"fault_injection": frozenset({crash_point})}), tmp_path
    ) as server:
        timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await top_up_credit(
                session, server.base_url, payer, amount_usd=TOPUP_USD, credited_nano_usd=TOPUP_NANO_USD
            )
        # A server with no public_base_url signs as the URL it listens on.
        scope = SiweScope.from_base_url(server.base_url, chain_id=settings.chain_id)
        body = withdrawal_body(scope, payer, asset=usdc, amount_atomic=WITHDRAW_ATOMIC)
        await _withdraw_until_crash(server.base_url, body)
        assert await server.wait_exit() == CRASH_EXIT_CODE

    for _ in range(2):  # Recovery runs at start, before serving; a second start must change nothing.
        async with run_server_process(settings, tmp_path):
            pass

    withdrawn_atomic = WITHDRAW_ATOMIC if moved else 0
    topup_atomic = TOPUP_NANO_USD // 1_000
    assert (
        await token_balance_atomic(w3, usdc, payer.address) == payer_before - topup_atomic + withdrawn_atomic
    )
    assert (
        await token_balance_atomic(w3, usdc, settlement.address)
        == wallet_before + topup_atomic - withdrawn_atomic
    )
    engine = create_ledger_engine(database_url)
    try:
        assert await check_ledger(engine) == []
        ledger = Ledger(engine)
        settled = [tx for tx in await ledger.transactions() if tx.code == "withdrawal_settled"]
        assert len(settled) == (1 if moved else 0)
        credit = await ledger.balance(chart.credit_wallet(payer.address))
        assert credit.posted == credit.available == TOPUP_NANO_USD - withdrawn_atomic * 1_000
        assert credit.pending == 0
        transit = await ledger.balance(chart.in_transit(settings.network, usdc))
        assert (transit.posted, transit.pending) == (0, 0)
        async with engine.connect() as connection:
            rows = (await connection.execute(select(account_withdrawals))).mappings().all()
        assert [row["status"] for row in rows] == ["completed" if moved else "failed"]
    finally:
        await engine.dispose()


class _DiesAfterPersisting(Exception):
    """Stands for a crash right after the signed transfer was stored: nothing reaches the chain."""


class _DyingSender:
    """The app's Settler, except that `transfer` dies after `before_send`, as a power cut would."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    @property
    def address(self) -> str:
        return str(self._inner.address)

    async def transfer(
        self,
        asset: str,
        to: str,
        amount_atomic: int,
        *,
        before_send: Callable[[SignedSettlement], Awaitable[None]] | None = None,
    ) -> Any:
        async def persist_then_die(signed: SignedSettlement) -> None:
            assert before_send is not None
            await before_send(signed)
            raise _DiesAfterPersisting(signed.tx_hash)

        return await self._inner.transfer(asset, to, amount_atomic, before_send=persist_then_die)


async def test_sent_withdrawal_whose_nonce_went_elsewhere_is_released_not_resent(
    accounts_router: RunningRouter,
) -> None:
    router = accounts_router
    payer = router.payers[3]
    usdc = router.tokens.usdc.address
    await pay_for_credit(router, payer, max_tokens=1024)
    ledger = router.app[LEDGER]
    credit_account = chart.credit_wallet(payer.address)
    credit_before = await ledger.balance(credit_account)
    live: Withdrawals = router.app[WITHDRAWALS]
    dying = Withdrawals(
        engine=router.app[DB_ENGINE],
        accounts=router.app[CHART_ACCOUNTS],
        settings=router.settings,
        accounts_settings=router.settings.accounts,
        scope=router.app[SIGNING_SCOPE],
        sender=_DyingSender(router.app[SETTLER]),
    )
    body = withdrawal_body(router.app[SIGNING_SCOPE], payer, asset=usdc, amount_atomic=1)
    with pytest.raises(_DiesAfterPersisting):
        await dying.withdraw(WithdrawalRequest.model_validate(body))
    [record] = await live.unfinished()
    assert record.status == "sent"
    # Another transfer takes the stored transaction's nonce: the stored one can never be mined now.
    other = await router.app[SETTLER].transfer(usdc, router.payers[2].address, 1)
    payer_tokens_before = await router.token_balance(usdc, payer.address)

    report = await recover_withdrawals(withdrawals=live, settler=router.app[SETTLER])
    assert (report.booked, report.released, report.pending) == (0, 1, 0)
    assert (await live.get(record.id)).status == "failed"
    assert (await live.get(record.id)).error_reason == "never_mined"
    assert await router.token_balance(usdc, payer.address) == payer_tokens_before
    assert other.tx_hash != record.tx_hash
    credit_after = await ledger.balance(credit_account)
    assert (credit_after.posted, credit_after.available) == (credit_before.posted, credit_before.available)
    again = await recover_withdrawals(withdrawals=live, settler=router.app[SETTLER])
    assert again == type(again)()
    assert await check_ledger(router.app[DB_ENGINE]) == []
