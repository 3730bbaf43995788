"""`megarouter pay --scheme upto` pays the cost instead of the quote, and says what was paid against what
was used; `--scheme exact` (the default) pays the quote.

Method: the command's coroutine against the running app on the session chain (payers approve Permit2), its
stderr captured; the chain shows what left the payer's wallet.
"""

from __future__ import annotations

import argparse
import json

import pytest

from proxy.cli.pay import run_pay_command
from tests.fixtures.app import RunningRouter
from tests.fixtures.chain import token_balance_atomic


def _args(router: RunningRouter, scheme: str) -> argparse.Namespace:
    return argparse.Namespace(
        prompt="What is 2+2?",
        api=str(router.client.make_url("/")).rstrip("/"),
        model="openai/gpt-4o-mini",
        asset="usdc",
        max_tokens=200,
        private_key="0x" + router.payers[3].key.hex().removeprefix("0x"),
        scheme=scheme,
    )


@pytest.mark.parametrize("scheme", ["exact", "upto"])
async def test_pay_prints_what_was_paid_against_what_was_used(
    router: RunningRouter, capsys: pytest.CaptureFixture[str], scheme: str
) -> None:
    payer, usdc = router.payers[3], router.tokens.usdc.address
    before = await token_balance_atomic(router.w3, usdc, payer.address)
    assert await run_pay_command(_args(router, scheme), environ={}) == 0
    captured = capsys.readouterr()
    assert captured.out.strip()
    summary = json.loads(captured.err.strip().splitlines()[-1])
    paid_atomic, cost_nano_usd = int(summary["paid_atomic"]), int(summary["cost_nano_usd"])
    assert summary["scheme"] == scheme
    assert await token_balance_atomic(router.w3, usdc, payer.address) == before - paid_atomic
    if scheme == "upto":
        assert paid_atomic == -(-cost_nano_usd // 1_000) < int(summary["max_atomic"])
    else:
        assert paid_atomic == int(summary["max_atomic"])
    paid_line = captured.err.strip().splitlines()[-2]
    assert paid_line.startswith(f"paid {paid_atomic // 10**6}.{paid_atomic % 10**6:06d}000 USD for ")
    assert paid_line.endswith("x)")
