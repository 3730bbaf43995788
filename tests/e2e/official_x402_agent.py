"""Pays MegaRouter with the official x402 SDK (PyPI `x402` 2.25.0), as a separate agent process would.

The SDK lives in its own virtual environment (.venv-agent, made by ./scripts/bootstrap --agent-sdk) because
its import name clashes with our `x402/`; tests/agents/sdk_agent.py runs there as a subprocess against the
router's real listening socket, POSTs one JSON body to one path and reports what it got back. Shared by
every test that pays with the SDK, whatever the endpoint.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from tests.fixtures.app import RunningRouter

__all__ = ["DEVNET_NETWORK", "pay_with_official_sdk"]

ROOT = Path(__file__).resolve().parents[2]
AGENT_PYTHON = ROOT / ".venv-agent" / "bin" / "python"
AGENT_SCRIPT = ROOT / "tests" / "agents" / "sdk_agent.py"
AGENT_TIMEOUT_S = 90.0
DEVNET_NETWORK = "eip155:31337"


async def pay_with_official_sdk(
    router: RunningRouter,
    *,
    path: str,
    body: dict[str, Any],
    payer: LocalAccount,
    asset: str,
    scheme: str = "exact",
) -> dict[str, Any]:
    """The agent's answer to `POST path` with `body`, paid by `payer` in `asset` with `scheme`.

    Returns {"status", "body", "payment_response"}: the final HTTP status, the JSON (or text) body, and the
    PAYMENT-RESPONSE header (None when absent).
    """
    assert AGENT_PYTHON.exists(), "no .venv-agent: run ./scripts/bootstrap --agent-sdk (./scripts/test does)"
    assert path.startswith("/")
    process = await asyncio.create_subprocess_exec(
        str(AGENT_PYTHON),
        str(AGENT_SCRIPT),
        str(router.client.make_url(path)),
        "0x" + payer.key.hex().removeprefix("0x"),
        asset,
        DEVNET_NETWORK,
        json.dumps(body),
        scheme,
        # A separate program: our own x402 package must never shadow the SDK's through PYTHONPATH.
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
