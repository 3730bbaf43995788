"""`megarouter credit` and `megarouter withdraw` for a keyless wallet: read the credit by signing in, take it
back with a signed withdrawal, and see the transaction.

Method: the commands' functions against the running router on Anvil (SQLite), the wallet key given by
environment and by file; the chain balance, the ledger and the printed JSON are compared.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from ledger import chart, check_ledger
from proxy.api.app_keys import DB_ENGINE, LEDGER
from proxy.cli.wallet import WALLET_KEY_ENV, run_credit_command, run_withdraw_command
from tests.e2e.api.support import topup
from tests.fixtures.app import RunningRouter


def _args(router: RunningRouter, **extra: object) -> argparse.Namespace:
    return argparse.Namespace(api=str(router.client.make_url("")).rstrip("/"), key_file=None, **extra)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_credit_then_withdraw_everything(
    router: RunningRouter, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    payer = router.payers[7]
    key = "0x" + payer.key.hex().removeprefix("0x")
    token = router.settings.assets[0].address
    await topup(router, payer, amount_usd="0.25")
    environ = {WALLET_KEY_ENV: key}

    assert await run_credit_command(_args(router), environ) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["balance"]["available_nano_usd"] == 250_000_000
    assert shown["wallet"] == payer.address.lower()

    chain_before = await router.token_balance(token, payer.address)
    key_file = tmp_path / "wallet.key"
    key_file.write_text(key + "\n", encoding="utf-8")
    args = _args(router, amount=None, all=True, asset=None)
    args.key_file = key_file
    assert await run_withdraw_command(args, {}) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert record["status"] == "completed"
    assert record["amount_atomic"] == 250_000
    assert record["tx_hash"] in captured.err
    assert await router.token_balance(token, payer.address) == chain_before + 250_000
    assert (await router.app[LEDGER].balance(chart.credit_wallet(payer.address))).available == 0
    assert await check_ledger(router.app[DB_ENGINE]) == []

    # Nothing left: the command says so and sends nothing.
    assert await run_withdraw_command(_args(router, amount=None, all=True, asset=None), environ) == 1
    assert await router.token_balance(token, payer.address) == chain_before + 250_000


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_withdraw_more_than_the_credit_is_refused(
    router: RunningRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    payer = router.payers[7]
    await topup(router, payer, amount_usd="0.01")
    environ = {WALLET_KEY_ENV: "0x" + payer.key.hex().removeprefix("0x")}
    assert await run_withdraw_command(_args(router, amount="5", all=False, asset="usdc"), environ) == 1
    answer = json.loads(capsys.readouterr().out)
    assert answer["error"]["code"] == "insufficient_credit"
    assert (await router.app[LEDGER].balance(chart.credit_wallet(payer.address))).available == 10_000_000
