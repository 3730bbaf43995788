"""A hold made towards one account can be captured into another of the same unit (failover to another
provider), atomically, with the debit side's reservation unchanged and the books balanced."""

from __future__ import annotations

import pytest

from ledger import AccountType, Ledger, UnitMismatch, check_ledger
from tests.fixtures.ledger import open_demo_accounts
from tests.integration.ledger.test_ledger import ALICE, PAYABLE, deposit

OTHER_PAYABLE = "provider_payable:anthropic"


async def test_capture_into_another_account_moves_only_the_captured_amount(ledger: Ledger) -> None:
    await open_demo_accounts(ledger)
    await ledger.ensure_account(OTHER_PAYABLE, type=AccountType.LIABILITY, unit="nano_usd")
    await deposit(ledger, 1_000)
    hold = await ledger.hold(
        idempotency_key="h", debit_account=ALICE, credit_account=PAYABLE, amount=300, timeout_s=60
    )
    captured = await ledger.capture(hold.id, 120, idempotency_key="c", credit_account=OTHER_PAYABLE)
    assert captured.captured_amount == 120
    assert (await ledger.balance(ALICE)).available == 880
    assert (await ledger.balance(PAYABLE)).posted == 0
    assert (await ledger.balance(PAYABLE)).pending == 0
    assert (await ledger.balance(OTHER_PAYABLE)).posted == 120
    replay = await ledger.capture(hold.id, 120, idempotency_key="c", credit_account=OTHER_PAYABLE)
    assert replay.id == hold.id
    assert await check_ledger(ledger.engine) == []


async def test_capture_into_an_account_of_another_unit_is_refused(ledger: Ledger) -> None:
    await open_demo_accounts(ledger)
    await ledger.ensure_account("provider_payable:wei", type=AccountType.LIABILITY, unit="wei")
    await deposit(ledger, 1_000)
    hold = await ledger.hold(
        idempotency_key="h", debit_account=ALICE, credit_account=PAYABLE, amount=300, timeout_s=60
    )
    with pytest.raises(UnitMismatch):
        await ledger.capture(hold.id, 10, idempotency_key="c", credit_account="provider_payable:wei")
    assert await check_ledger(ledger.engine) == []
