"""The official x402 SDK (PyPI `x402` 2.25.0) pays MegaRouter as a separate agent process.

Method: tests/e2e/official_x402_agent.py runs the SDK agent (tests/agents/sdk_agent.py) in its own virtual
environment, as a subprocess against the router's real listening socket. The Messages and Responses doors
are paid the same way in tests/e2e/test_x402_official_sdk_formats.py.
"""

from __future__ import annotations

from ledger import check_ledger
from proxy.api.app_keys import DB_ENGINE
from tests.e2e.official_x402_agent import pay_with_official_sdk
from tests.e2e.payments import decode_b64_json
from tests.fixtures.app import RunningRouter


async def test_official_sdk_agent_pays_and_gets_its_completion(router: RunningRouter) -> None:
    body = {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "Say hi"}],
        "max_tokens": 32,
    }
    usdc = router.tokens.usdc.address
    result = await pay_with_official_sdk(
        router, path="/v1/chat/completions", body=body, payer=router.payers[6], asset=usdc
    )
    assert result["status"] == 200, result
    assert result["body"]["choices"][0]["message"]["content"]
    settlement = decode_b64_json(result["payment_response"])
    assert settlement["success"] is True
    receipt = await router.w3.eth.get_transaction_receipt(settlement["transaction"])
    assert receipt["status"] == 1
    assert await check_ledger(router.app[DB_ENGINE]) == []
