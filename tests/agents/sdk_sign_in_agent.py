"""A paying agent on the official x402 SDK with its sign-in-with-x client extension, run by the tests in
their own venv (.venv-agent, x402[extensions]).

Usage: .venv-agent/bin/python tests/agents/sdk_sign_in_agent.py URL PRIVATE_KEY ASSET NETWORK BODY_JSON
Prints one JSON line: {"status", "body", "payment_response"}. On a 402 that offers sign-in-with-x the SDK
first asks again signed in (served from credit when the server allows), and pays only if that is refused.
Never imported by the test suite: its `x402` import is the SDK, which our own `x402/` would shadow.
"""

from __future__ import annotations

import asyncio
import json
import sys

from eth_account import Account
from x402.extensions.sign_in_with_x import CreateSIWxClientExtensionOptions, create_siwx_client_extension
from x402.http.clients import x402HttpxClient
from x402.mechanisms.evm.exact.register import register_exact_evm_client

from x402 import x402Client

MAX_AMOUNT_PER_PAYMENT_ATOMIC = "100000000"
REQUEST_TIMEOUT_S = 60.0


async def call_once(
    url: str, private_key: str, asset: str, network: str, body: dict[str, object]
) -> dict[str, object]:
    account = Account.from_key(private_key)
    client = x402Client()
    register_exact_evm_client(client, account, networks=network)
    client.register_extension(
        create_siwx_client_extension(CreateSIWxClientExtensionOptions(signers=[account]))
    )
    client.set_spend_controls(
        {
            "allowed_assets": [
                {"network": network, "asset": asset, "max_amount_per_payment": MAX_AMOUNT_PER_PAYMENT_ATOMIC}
            ]
        }
    )
    async with x402HttpxClient(client, timeout=REQUEST_TIMEOUT_S) as http:
        response = await http.post(url, json=body)
    return {
        "status": response.status_code,
        "body": response.json()
        if response.headers.get("content-type", "").startswith("application/json")
        else response.text,
        "payment_response": response.headers.get("PAYMENT-RESPONSE"),
    }


def main() -> int:
    url, private_key, asset, network, body_json = sys.argv[1:6]
    print(json.dumps(asyncio.run(call_once(url, private_key, asset, network, json.loads(body_json)))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
