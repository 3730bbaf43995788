#!/usr/bin/env python3
"""What an agent pays relative to what it uses, with x402 `exact` (pay the quote) and `upto` (pay the cost),
and the gas per request of each on Anvil.

Self-contained: starts its own Anvil (test tokens deployed; Permit2 and the x402 upto proxy from contracts/
placed at their canonical addresses; payers approving Permit2), the simulators and MegaRouter on SQLite in
a temporary directory, all in this process. The workload is a small mix of everyday prompts as a new agent
would send them (`model auto`, with and without `max_tokens`); each prompt is paid once with `exact` and
once with `upto` by the same kind of agent (x402/client.py and x402/upto_client.py). For every request it
reads the quote and the captured cost (X-MegaRouter-Quote/Cost-Nano-USD), what left the payer's wallet on
chain, and the gas of the settlement transaction (its receipt). `exact` is the baseline measured in the
same run: the report prints each scheme's paid/used ratio and upto's gas per request relative to exact's.

Usage: .venv/bin/python scripts/bench/upto_payments.py
"""

from __future__ import annotations

import base64
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from _harness import anvil_accounts, bench_main, deploy_and_fund, fresh_database, machine_description, serve
from eth_account.signers.local import LocalAccount
from web3 import AsyncHTTPProvider, AsyncWeb3

from ledger import check_ledger
from proxy.api.app_keys import DB_ENGINE
from proxy.app import create_app
from proxy.devnet.anvil import run_anvil
from proxy.devnet.permit2 import approve_permit2, install_permit2_contracts
from proxy.devnet.settings import devnet_settings
from proxy.devnet.simulator import start_simulators
from x402.client import sign_payment
from x402.codec import decode_payment_required_header, encode_header
from x402.models import PaymentRequirements, ResourceInfo
from x402.upto_client import sign_upto_payment

# (prompt, max_tokens): what agents ask every day, with the limit a careful agent sets, or none.
WORKLOAD: tuple[tuple[str, int | None], ...] = (
    ("What is 2+2?", 200),
    ("hi", None),
    ("Translate 'good morning' into French.", 200),
    ("Summarise in one sentence: the quick brown fox jumps over the lazy dog.", 200),
    ("Write a haiku about routers.", None),
    ("List three prime numbers.", 64),
)
ANVIL_ACCOUNT_COUNT = 4
PAYER_INDEXES = (1, 2)
PAYER_FUNDS_ATOMIC = 1_000 * 10**6
NANO_USD_PER_ATOMIC = 1_000
HTTP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Paid:
    prompt: str
    scheme: str
    quote_nano_usd: int
    cost_nano_usd: int
    paid_atomic: int
    gas_used: int

    @property
    def paid_nano_usd(self) -> int:
        return self.paid_atomic * NANO_USD_PER_ATOMIC


def _decode(header: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(base64.b64decode(header))
    return document


async def _balance_atomic(w3: AsyncWeb3[Any], token: str, owner: str) -> int:
    data = "0x70a08231" + owner.lower().removeprefix("0x").rjust(64, "0")
    call: Any = {"to": AsyncWeb3.to_checksum_address(token), "data": data}
    return int.from_bytes(await w3.eth.call(call), "big")


async def pay_once(
    session: aiohttp.ClientSession,
    w3: AsyncWeb3[Any],
    url: str,
    payer: LocalAccount,
    *,
    prompt: str,
    max_tokens: int | None,
    scheme: str,
) -> Paid:
    body: dict[str, Any] = {"model": "auto", "messages": [{"role": "user", "content": prompt}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    async with session.post(url, json=body) as response:
        assert response.status == 402, await response.text()
        offer = decode_payment_required_header(response.headers["PAYMENT-REQUIRED"])
    requirement: PaymentRequirements = next(r for r in offer.accepts if r.scheme == scheme)
    resource: ResourceInfo = offer.resource
    now = int(time.time())
    payment: Any = (
        sign_upto_payment(payer, requirement, now_unix_s=now, resource=resource)
        if scheme == "upto"
        else sign_payment(requirement, payer, now_unix_s=now, resource=resource)
    )
    before = await _balance_atomic(w3, requirement.asset, payer.address)
    async with session.post(url, json=body, headers={"PAYMENT-SIGNATURE": encode_header(payment)}) as paid:
        assert paid.status == 200, await paid.text()
        await paid.read()
        settlement = _decode(paid.headers["PAYMENT-RESPONSE"])
        quote = int(paid.headers["X-MegaRouter-Quote-Nano-USD"])
        cost = int(paid.headers["X-MegaRouter-Cost-Nano-USD"])
    paid_atomic = before - await _balance_atomic(w3, requirement.asset, payer.address)
    gas_used = 0
    if settlement["transaction"]:
        gas_used = int((await w3.eth.get_transaction_receipt(settlement["transaction"]))["gasUsed"])
    return Paid(prompt, scheme, quote, cost, paid_atomic, gas_used)


def _usd(amount_nano_usd: int) -> str:
    whole, fraction = divmod(amount_nano_usd, 10**9)
    return f"{whole}.{fraction:09d}"


def report(results: list[Paid], approve_gas: int) -> None:
    columns = ("cost USD", "exact paid", "upto paid")
    print(f"\n{'prompt':<44} " + " ".join(f"{c:>13}" for c in columns) + f" {'exact gas':>9} {'upto gas':>9}")
    by_prompt: dict[str, dict[str, Paid]] = {}
    for paid in results:
        by_prompt.setdefault(paid.prompt, {})[paid.scheme] = paid
    for prompt, pair in by_prompt.items():
        exact, upto = pair["exact"], pair["upto"]
        print(
            f"{prompt[:44]:<44} {_usd(upto.cost_nano_usd):>13} {_usd(exact.paid_nano_usd):>13} "
            f"{_usd(upto.paid_nano_usd):>13} {exact.gas_used:>9} {upto.gas_used:>9}"
        )
    print()
    gas_mean: dict[str, float] = {}
    for scheme in ("exact", "upto"):
        rows = [paid for paid in results if paid.scheme == scheme]
        used, paid_total = sum(r.cost_nano_usd for r in rows), sum(r.paid_nano_usd for r in rows)
        ratios = [r.paid_nano_usd / r.cost_nano_usd for r in rows if r.cost_nano_usd]
        gas_mean[scheme] = sum(r.gas_used for r in rows) / len(rows)
        print(
            f"{scheme:<6} paid {_usd(paid_total)} USD for {_usd(used)} USD used: "
            f"{paid_total / used:.2f}x overall, per request {min(ratios):.2f}x..{max(ratios):.2f}x; "
            f"gas per request {gas_mean[scheme]:.0f}"
        )
    print(f"upto gas per request relative to exact (same run): {gas_mean['upto'] / gas_mean['exact']:.2f}x")
    print(f"one-time Permit2 approval per payer and token (before its first upto payment): {approve_gas} gas")


async def run() -> None:
    accounts = anvil_accounts(ANVIL_ACCOUNT_COUNT)
    with tempfile.TemporaryDirectory(prefix="megarouter-bench-") as directory:
        async with (
            run_anvil(extra_args=("--accounts", str(ANVIL_ACCOUNT_COUNT))) as anvil,
            start_simulators(("bench",)) as simulators,
            fresh_database(None, Path(directory)) as db_url,
        ):
            print(machine_description(db_url))
            w3 = AsyncWeb3(AsyncHTTPProvider(anvil.rpc_url))
            try:
                tokens = await deploy_and_fund(
                    w3, accounts, payer_indexes=PAYER_INDEXES, amount_atomic=PAYER_FUNDS_ATOMIC
                )
                await install_permit2_contracts(w3)
                payer_exact, payer_upto = accounts[PAYER_INDEXES[0]], accounts[PAYER_INDEXES[1]]
                await approve_permit2(w3, [payer_upto], tokens=[tokens.usdc.address])
                approve_gas = await _last_gas(w3, payer_upto.address)
                settings = devnet_settings(
                    anvil=anvil,
                    tokens=tokens,
                    settlement_key=accounts[0].key.hex(),
                    simulator_base_url=simulators.base_url,
                    database_url=db_url,
                    default_model="openai/gpt-4o-mini",
                    log_format="json",
                )
                app = create_app(settings)
                timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
                async with serve(app) as router_url, aiohttp.ClientSession(timeout=timeout) as session:
                    url = f"{router_url}/v1/chat/completions"
                    results = []
                    for prompt, max_tokens in WORKLOAD:
                        for scheme, payer in (("exact", payer_exact), ("upto", payer_upto)):
                            paid = await pay_once(
                                session, w3, url, payer, prompt=prompt, max_tokens=max_tokens, scheme=scheme
                            )
                            results.append(paid)
                    assert await check_ledger(app[DB_ENGINE]) == []
                report(results, approve_gas)
            finally:
                await w3.provider.disconnect()


async def _last_gas(w3: AsyncWeb3[Any], owner: str) -> int:
    """The gas of `owner`'s transaction in the latest block (its Permit2 approval)."""
    block: Any = await w3.eth.get_block("latest", full_transactions=True)
    for tx in block["transactions"]:
        if str(tx["from"]).lower() == owner.lower():
            return int((await w3.eth.get_transaction_receipt(tx["hash"]))["gasUsed"])
    raise AssertionError("no approval in the latest block")


def main() -> int:
    return bench_main(run)


if __name__ == "__main__":
    raise SystemExit(main())
