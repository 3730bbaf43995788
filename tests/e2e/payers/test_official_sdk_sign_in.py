"""The official x402 SDK's sign-in-with-x client, unmodified, spends a returning payer's credit.

Goal: an agent on `x402==2.25.0` with `create_siwx_client_extension` calls a paid endpoint: with enough
credit it is served after signing in, paying nothing (no PAYMENT-RESPONSE, its token balance unchanged);
without, the signed-in retry is refused and the SDK pays the offer as usual.

Method: a router whose configured public URL is the test server's own address (the SDK checks that the
sign-in terms name the origin it talks to), on a port chosen before it starts; the SDK runs as a separate
process from .venv-agent (tests/agents/sdk_sign_in_agent.py).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from ledger import chart, check_ledger
from proxy.api.app_keys import DB_ENGINE, LEDGER
from proxy.devnet.anvil import AnvilNode
from proxy.devnet.simulator import Simulators
from proxy.devnet.tokens import DevnetTokens
from tests.e2e.api.support import topup
from tests.e2e.official_x402_agent import AGENT_PYTHON, DEVNET_NETWORK
from tests.fixtures.app import RunningRouter, router_settings, start_router

AGENT_SCRIPT = Path(__file__).resolve().parents[2] / "agents" / "sdk_sign_in_agent.py"
AGENT_TIMEOUT_S = 90.0
BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 200}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
async def public_router(
    aiohttp_client: Any,
    anvil: AnvilNode,
    tokens: DevnetTokens,
    anvil_accounts: list[LocalAccount],
    simulator: Simulators,
    database_url: str,
) -> AsyncIterator[RunningRouter]:
    port = _free_port()
    settings = router_settings(
        anvil=anvil,
        tokens=tokens,
        settlement_key=anvil_accounts[0].key.hex(),
        simulator_base_url=simulator.base_url,
        database_url=database_url,
        public_base_url=f"http://127.0.0.1:{port}",
    )
    client_on_port = functools.partial(aiohttp_client, server_kwargs={"port": port})
    async with start_router(
        client_on_port,
        settings,
        anvil=anvil,
        tokens=tokens,
        anvil_accounts=anvil_accounts,
        simulator=simulator,
    ) as running:
        yield running


async def _sdk_call(router: RunningRouter, payer: LocalAccount) -> dict[str, Any]:
    assert AGENT_PYTHON.exists(), "no .venv-agent: run ./scripts/bootstrap --agent-sdk"
    process = await asyncio.create_subprocess_exec(
        str(AGENT_PYTHON),
        str(AGENT_SCRIPT),
        str(router.client.make_url("/v1/chat/completions")),
        "0x" + payer.key.hex().removeprefix("0x"),
        router.settings.assets[0].address,
        DEVNET_NETWORK,
        json.dumps(BODY),
        env={name: value for name, value in os.environ.items() if name != "PYTHONPATH"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(AGENT_TIMEOUT_S):
            stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()[-3000:]
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_official_sdk_signs_in_and_spends_credit(public_router: RunningRouter) -> None:
    router = public_router
    payer = router.payers[1]
    token = router.settings.assets[0].address
    await topup(router, payer, amount_usd="0.5")
    credit_account = chart.credit_wallet(payer.address)
    credit_before = await router.app[LEDGER].balance(credit_account)
    chain_before = await router.token_balance(token, payer.address)

    result = await _sdk_call(router, payer)
    assert result["status"] == 200, result
    assert result["payment_response"] is None  # Served from credit: nothing was paid.
    assert await router.token_balance(token, payer.address) == chain_before
    credit_after = await router.app[LEDGER].balance(credit_account)
    assert 0 < credit_before.available - credit_after.available < credit_before.available
    assert credit_after.pending == 0
    assert await check_ledger(router.app[DB_ENGINE]) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_official_sdk_without_credit_pays(public_router: RunningRouter) -> None:
    router = public_router
    payer = router.payers[0]
    token = router.settings.assets[0].address
    chain_before = await router.token_balance(token, payer.address)
    result = await _sdk_call(router, payer)
    assert result["status"] == 200, result
    assert result["payment_response"] is not None
    assert await router.token_balance(token, payer.address) < chain_before
    assert await check_ledger(router.app[DB_ENGINE]) == []
