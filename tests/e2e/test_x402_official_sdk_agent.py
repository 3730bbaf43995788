"""The official x402 SDK (PyPI `x402` 2.25.0) pays MegaRouter as a separate agent process.

Method: the SDK lives in its own virtual environment (.venv-agent, made by ./scripts/bootstrap --agent-sdk)
because its import name clashes with our `x402/`; tests/agents/sdk_agent.py runs there as a subprocess
against the router's real listening socket.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from ledger import check_ledger
from proxy.api.app_keys import DB_ENGINE
from tests.e2e.payments import decode_b64_json
from tests.fixtures.app import RunningRouter

ROOT = Path(__file__).resolve().parents[2]
AGENT_PYTHON = ROOT / ".venv-agent" / "bin" / "python"
AGENT_SCRIPT = ROOT / "tests" / "agents" / "sdk_agent.py"
AGENT_TIMEOUT_S = 90.0


async def _run_agent(router: RunningRouter, body: dict[str, Any], asset: str) -> dict[str, Any]:
    assert AGENT_PYTHON.exists(), "no .venv-agent: run ./scripts/bootstrap --agent-sdk (./scripts/test does)"
    url = str(router.client.make_url("/v1/chat/completions"))
    process = await asyncio.create_subprocess_exec(
        str(AGENT_PYTHON),
        str(AGENT_SCRIPT),
        url,
        "0x" + router.payers[6].key.hex().removeprefix("0x"),
        asset,
        "eip155:31337",
        json.dumps(body),
        # A separate program: our own x402 package must never shadow the SDK's through PYTHONPATH.
        env={name: value for name, value in os.environ.items() if name != "PYTHONPATH"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(AGENT_TIMEOUT_S):
        stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()[-3000:]
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


async def test_official_sdk_agent_pays_and_gets_its_completion(router: RunningRouter) -> None:
    body = {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "Say hi"}],
        "max_tokens": 32,
    }
    result = await _run_agent(router, body, router.tokens.usdc.address)
    assert result["status"] == 200, result
    assert result["body"]["choices"][0]["message"]["content"]
    settlement = decode_b64_json(result["payment_response"])
    assert settlement["success"] is True
    receipt = await router.w3.eth.get_transaction_receipt(settlement["transaction"])
    assert receipt["status"] == 1
    assert await check_ledger(router.app[DB_ENGINE]) == []
