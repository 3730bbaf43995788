"""`megarouter pay`: a minimal x402 agent — ask, read the 402 offer, sign a payment, ask again.

It shows exactly what any agent does: no account and no API key, only a funded wallet key. `--scheme exact`
signs an EIP-3009 transfer of the quote; `--scheme upto` signs the quote as a Permit2 maximum and the router
settles the real cost. Either way it prints what was paid against what was used.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
from eth_account import Account

from proxy.accounts.credits import nano_usd_to_usd_string
from proxy.cli.pay_sign_in import CreditAttempt, sign_in_header, spend_credit
from x402.client import sign_payment
from x402.codec import decode_header_json, decode_payment_required_header, encode_header
from x402.models import PaymentRequired, PaymentRequirements
from x402.siwx import SIGN_IN_WITH_X
from x402.upto_client import sign_upto_payment

__all__ = ["run_pay_command"]

AGENT_KEY_ENV = "MEGAROUTER_AGENT_KEY"
REQUEST_TIMEOUT_S = 120.0
# The offered tokens are USD stablecoins of 6 decimals: one atomic unit is 1,000 nano-USD.
NANO_USD_PER_ATOMIC = 1_000


# Token symbols an operator may type, by the EIP-712 domain name the offer carries.
_SYMBOLS_BY_DOMAIN_NAME = {"USD Coin": ("usdc",), "USDT0": ("usdt", "usdt0")}


def _choose(
    accepts: list[PaymentRequirements], asset: str | None, scheme: str = "exact"
) -> PaymentRequirements:
    """The offer to pay in `scheme`: by token address or symbol, else the first (the server's choice)."""
    offered = accepts
    accepts = [requirement for requirement in offered if requirement.scheme == scheme]
    if not accepts:
        schemes = sorted({requirement.scheme for requirement in offered})
        raise SystemExit(f"pay: scheme {scheme} is not offered; offered: {schemes}")
    if asset is None:
        return accepts[0]
    for requirement in accepts:
        domain_name = str((requirement.extra or {}).get("name", ""))
        names = {
            requirement.asset.lower(),
            domain_name.lower(),
            *_SYMBOLS_BY_DOMAIN_NAME.get(domain_name, ()),
        }
        if asset.lower() in names:
            return requirement
    raise SystemExit(f"pay: asset {asset} is not offered; offered: {[r.asset for r in accepts]}")


async def run_pay_command(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    key = args.private_key or environ.get(AGENT_KEY_ENV)
    if not key:
        print(f"pay: pass --private-key or set {AGENT_KEY_ENV}", file=sys.stderr)
        return 2
    account = Account.from_key(key)
    body: dict[str, Any] = {"model": args.model, "messages": [{"role": "user", "content": args.prompt}]}
    if args.max_tokens:
        body["max_tokens"] = args.max_tokens
    url = f"{args.api.rstrip('/')}/v1/chat/completions"
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.post(url, json=body) as offer_response:
            if offer_response.status != 402:
                print(
                    f"pay: expected 402, got {offer_response.status}: {await offer_response.text()}",
                    file=sys.stderr,
                )
                return 1
            offer = decode_payment_required_header(offer_response.headers["PAYMENT-REQUIRED"])
            offer_document = decode_header_json(offer_response.headers["PAYMENT-REQUIRED"])
        sign_in_headers: dict[str, str] = {}
        if getattr(args, "sign_in", False):
            attempt = await spend_credit(session, url, body, account=account, offer=offer_document)
            if attempt is not None and attempt.status == 200:
                return _served_from_credit(attempt)
            if attempt is not None and attempt.offer is not None:
                # Only the shortfall is asked for: pay it on a request signed in again (a proof serves once).
                offer = decode_payment_required_header(attempt.headers["PAYMENT-REQUIRED"])
                sign_in_headers = {SIGN_IN_WITH_X: sign_in_header(account, attempt.offer) or ""}
        requirement = _choose(offer.accepts, args.asset, getattr(args, "scheme", "exact"))
        payment = _sign(requirement, account, offer)
        verb = "authorizing at most" if requirement.scheme == "upto" else "paying"
        print(
            f"{verb} {requirement.amount} atomic units of {requirement.asset} to {requirement.pay_to}",
            file=sys.stderr,
        )
        async with session.post(
            url, json=body, headers={"PAYMENT-SIGNATURE": encode_header(payment), **sign_in_headers}
        ) as paid:
            text = await paid.text()
            if paid.status != 200:
                print(f"pay: refused with {paid.status}: {text}", file=sys.stderr)
                return 1
            settlement = decode_header_json(paid.headers["PAYMENT-RESPONSE"])
            completion = json.loads(text)
    print(
        completion["choices"][0]["message"].get("content") or json.dumps(completion["choices"][0]["message"])
    )
    cost_nano_usd = int(paid.headers.get("X-MegaRouter-Cost-Nano-USD", "0"))
    # `exact` settles the quote; `upto` settles what the response says it did (the cost, rounded up).
    paid_atomic = int(settlement.get("amount") or 0) if requirement.scheme == "upto" else requirement.amount
    print(_paid_against_used(paid_atomic=paid_atomic, used_nano_usd=cost_nano_usd), file=sys.stderr)
    print(
        json.dumps(
            {
                "model": paid.headers.get("X-MegaRouter-Model"),
                "scheme": requirement.scheme,
                "transaction": settlement.get("transaction"),
                "max_atomic": str(requirement.amount),
                "paid_atomic": str(paid_atomic),
                "cost_nano_usd": str(cost_nano_usd),
                **_paid_against_used_usd(paid_atomic, str(cost_nano_usd)),
            }
        ),
        file=sys.stderr,
    )
    return 0


def _paid_against_used_usd(paid_atomic: int, cost_header: str | None) -> dict[str, str]:
    """What left the wallet against what the call cost, in USD; the rest stays as the wallet's credit.
    The offered tokens are 6-decimal stablecoins at par (one atomic unit is 1,000 nano-USD)."""
    paid_nano_usd = paid_atomic * 1_000
    used_nano_usd = int(cost_header or 0)
    return {
        "paid_usd": nano_usd_to_usd_string(paid_nano_usd),
        "used_usd": nano_usd_to_usd_string(used_nano_usd),
        "kept_as_credit_usd": nano_usd_to_usd_string(max(paid_nano_usd - used_nano_usd, 0)),
    }


def _served_from_credit(attempt: CreditAttempt) -> int:
    completion = json.loads(attempt.text)
    print(
        completion["choices"][0]["message"].get("content") or json.dumps(completion["choices"][0]["message"])
    )
    cost = attempt.headers.get("X-MegaRouter-Cost-Nano-USD")
    print(
        json.dumps(
            {
                "model": attempt.headers.get("X-MegaRouter-Model"),
                "transaction": None,
                "paid_atomic": "0",
                "cost_nano_usd": cost,
                "served_from_credit": True,
                **_paid_against_used_usd(0, cost),
            }
        ),
        file=sys.stderr,
    )
    return 0


def _sign(requirement: PaymentRequirements, account: Any, offer: PaymentRequired) -> Any:
    now_unix_s = int(time.time())
    if requirement.scheme == "upto":
        return sign_upto_payment(account, requirement, now_unix_s=now_unix_s, resource=offer.resource)
    return sign_payment(requirement, account, now_unix_s=now_unix_s, resource=offer.resource)


def _paid_against_used(*, paid_atomic: int, used_nano_usd: int) -> str:
    """`paid 0.000018 USD for 0.000017550 USD used (1.03x)`: money is integers; only the ratio is a float."""
    paid_nano_usd = paid_atomic * NANO_USD_PER_ATOMIC
    ratio = f" ({paid_nano_usd / used_nano_usd:.2f}x)" if used_nano_usd else ""
    return f"paid {_usd(paid_nano_usd)} USD for {_usd(used_nano_usd)} USD used{ratio}"


def _usd(amount_nano_usd: int) -> str:
    whole, fraction = divmod(amount_nano_usd, 10**9)
    return f"{whole}.{fraction:09d}"
