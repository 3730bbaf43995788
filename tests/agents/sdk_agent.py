"""A paying agent built on the official x402 SDK (PyPI `x402`), run by the tests in its own venv.

Usage: .venv-agent/bin/python tests/agents/sdk_agent.py URL PRIVATE_KEY ASSET NETWORK BODY_JSON [SCHEME]
SCHEME: `exact` (the default) or `upto` (UptoEvmClientScheme, registered alone so the SDK chooses it).
Prints one JSON line: {"status", "body", "payment_response", "headers"}. This file is never imported by the
test suite: its `x402` import is the SDK, which our own `x402/` package would shadow.
"""

from __future__ import annotations

import asyncio
import json
import sys

from eth_account import Account
from x402.http.clients import x402HttpxClient
from x402.mechanisms.evm.exact.register import register_exact_evm_client
from x402.mechanisms.evm.upto import UptoEvmClientScheme

from x402 import x402Client

MAX_AMOUNT_PER_PAYMENT_ATOMIC = "100000000"
REQUEST_TIMEOUT_S = 60.0


async def pay_once(
    url: str, private_key: str, asset: str, network: str, body: dict[str, object], scheme: str
) -> dict[str, object]:
    client = x402Client()
    if scheme == "upto":
        client.register(network, UptoEvmClientScheme(Account.from_key(private_key)))
    else:
        register_exact_evm_client(client, Account.from_key(private_key), networks=network)
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
        "headers": dict(response.headers),
    }


def main() -> int:
    url, private_key, asset, network, body_json = sys.argv[1:6]
    scheme = sys.argv[6] if len(sys.argv) > 6 else "exact"
    result = asyncio.run(pay_once(url, private_key, asset, network, json.loads(body_json), scheme))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
