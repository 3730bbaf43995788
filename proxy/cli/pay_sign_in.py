"""`megarouter pay --sign-in`: spend the wallet's credit first, with x402's `sign-in-with-x`.

After the first 402 the agent signs the offer's `sign-in-with-x` terms (EIP-191 over the EIP-4361 text) and
asks again: a wallet whose credit covers the quote is served with no payment at all; otherwise the 402 offers
only the shortfall, which the agent pays on a request signed in again (each proof is accepted once).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import aiohttp
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from x402.codec import decode_header_json
from x402.siwx import SIGN_IN_WITH_X, SiwxPayload, render_siwx_message

__all__ = ["CreditAttempt", "sign_in_header", "spend_credit"]


def sign_in_header(account: LocalAccount, document: dict[str, Any]) -> str | None:
    """The SIGN-IN-WITH-X header answering a 402 document's terms; None when it offers no EVM sign-in."""
    declaration = (document.get("extensions") or {}).get(SIGN_IN_WITH_X)
    if not isinstance(declaration, dict):
        return None
    chains = [chain for chain in declaration.get("supportedChains", []) if chain.get("type") == "eip191"]
    if not chains:
        return None
    fields = {
        **declaration["info"],
        "chainId": chains[0]["chainId"],
        "type": "eip191",
        "address": account.address,
    }
    message = render_siwx_message(SiwxPayload.model_validate({**fields, "signature": "0x"}))
    signature = Account.sign_message(encode_defunct(text=message), private_key=account.key).signature
    text = json.dumps(
        {**fields, "signature": "0x" + signature.hex().removeprefix("0x")}, separators=(",", ":")
    )
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


@dataclass(frozen=True)
class CreditAttempt:
    """What signing in gave: the served response (status 200), or the next 402 document to pay."""

    status: int
    text: str
    headers: dict[str, str]
    offer: dict[str, Any] | None


async def spend_credit(
    session: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
    *,
    account: LocalAccount,
    offer: dict[str, Any],
) -> CreditAttempt | None:
    """Asks again signed in; None when the server offers no sign-in."""
    header = sign_in_header(account, offer)
    if header is None:
        return None
    async with session.post(url, json=body, headers={SIGN_IN_WITH_X: header}) as response:
        text = await response.text()
        headers = dict(response.headers)
        next_offer = (
            decode_header_json(response.headers["PAYMENT-REQUIRED"])
            if response.status == 402 and "PAYMENT-REQUIRED" in response.headers
            else None
        )
        return CreditAttempt(status=response.status, text=text, headers=headers, offer=next_offer)
