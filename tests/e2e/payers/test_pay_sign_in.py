"""`megarouter pay --sign-in`: an agent with credit pays nothing, one without pays only the shortfall, and
the command prints what was paid against what was used.

Method: run_pay_command against the running router (SQLite), as the CLI runs it; stderr's JSON summary is
compared with the chain and the ledger.
"""

from __future__ import annotations

import argparse
import json

import pytest

from ledger import chart, check_ledger
from proxy.api.app_keys import DB_ENGINE, LEDGER
from proxy.cli.pay import run_pay_command
from tests.e2e.api.support import topup
from tests.fixtures.app import RunningRouter


def _args(router: RunningRouter, key: str) -> argparse.Namespace:
    return argparse.Namespace(
        prompt="What is 2+2?",
        api=str(router.client.make_url("")).rstrip("/"),
        model="openai/gpt-4o-mini",
        asset=None,
        max_tokens=200,
        private_key=key,
        sign_in=True,
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_pay_with_enough_credit_pays_nothing(
    router: RunningRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    payer = router.payers[2]
    key = "0x" + payer.key.hex().removeprefix("0x")
    token = router.settings.assets[0].address
    await topup(router, payer, amount_usd="0.01")
    chain_before = await router.token_balance(token, payer.address)

    assert await run_pay_command(_args(router, key), environ={}) == 0
    summary = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert summary["served_from_credit"] is True
    assert summary["paid_usd"] == "0"
    assert int(summary["cost_nano_usd"]) > 0
    assert await router.token_balance(token, payer.address) == chain_before

    assert await check_ledger(router.app[DB_ENGINE]) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_pay_with_short_credit_pays_only_the_shortfall(
    router: RunningRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    payer = router.payers[3]
    key = "0x" + payer.key.hex().removeprefix("0x")
    token = router.settings.assets[0].address
    await topup(router, payer, amount_usd="0.000001")  # One atomic unit of credit.
    offer = await router.client.post(
        "/v1/chat/completions",
        json={
            "model": "openai/gpt-4o-mini",
            "messages": [{"role": "user", "content": "What is 2+2?"}],
            "max_tokens": 200,
        },
    )
    full_quote_atomic = int((await offer.json())["accepts"][0]["amount"])
    chain_before = await router.token_balance(token, payer.address)
    credit_before = (await router.app[LEDGER].balance(chart.credit_wallet(payer.address))).available

    assert await run_pay_command(_args(router, key), environ={}) == 0
    summary = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert int(summary["paid_atomic"]) == full_quote_atomic - 1
    assert summary["transaction"].startswith("0x")
    assert await router.token_balance(token, payer.address) == chain_before - (full_quote_atomic - 1)
    cost_nano_usd = int(summary["cost_nano_usd"])
    credit_after = (await router.app[LEDGER].balance(chart.credit_wallet(payer.address))).available
    assert credit_after == credit_before + (full_quote_atomic - 1) * 1_000 - cost_nano_usd
    assert summary["kept_as_credit_usd"] != summary["paid_usd"]
    assert await check_ledger(router.app[DB_ENGINE]) == []
