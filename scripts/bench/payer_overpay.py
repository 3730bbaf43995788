#!/usr/bin/env python3
"""What a keyless agent pays against what it uses, over a mixed workload: `exact` as today (every call pays
its quote), and a returning payer (`sign-in-with-x`: calls are served from the credit earlier payments left,
paying only a shortfall), with the settlement gas per request on Anvil.

Self-contained: its own Anvil with the test tokens, the simulated providers and MegaRouter (create_app on a
real TCP port of 127.0.0.1, SQLite in a temporary directory). Each mode uses its own funded wallet and runs
the same prompts (`model: auto`, `max_tokens` 200), `--rounds` times over. Paid is what left the wallet
(the sum of settled amounts); used is what the calls cost (X-MegaRouter-Cost-Nano-USD); gas is read from
the settlement transactions' receipts. The baseline is used: the ratio paid/used says how much more than its
usage the agent had to hand over (what is not used stays as its credit, withdrawable).

Usage: .venv/bin/python scripts/bench/payer_overpay.py [--rounds N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from _harness import anvil_accounts, bench_main, deploy_and_fund, fresh_database, machine_description, serve
from eth_account.signers.local import LocalAccount
from web3 import AsyncHTTPProvider, AsyncWeb3

from ledger import check_ledger
from proxy.api.app_keys import DB_ENGINE
from proxy.app import create_app
from proxy.cli.pay_sign_in import sign_in_header
from proxy.devnet.anvil import run_anvil
from proxy.devnet.settings import devnet_settings
from proxy.devnet.simulator import start_simulators
from x402.client import sign_payment
from x402.codec import decode_header_json, decode_payment_required_header, encode_header
from x402.siwx import SIGN_IN_WITH_X

PROMPTS = (
    "What is 2+2?",
    "hi",
    "Translate 'good morning' into French.",
    "Write a haiku about autumn rain.",
    "Summarise in one sentence: the mitochondria is the powerhouse of the cell.",
    "List three uses of a paperclip.",
)
MAX_TOKENS = 200
PAYER_FUNDS_ATOMIC = 1_000 * 10**6
NANO_USD_PER_ATOMIC = 1_000
HTTP_TIMEOUT_S = 60.0


@dataclass
class Tally:
    requests: int = 0
    paid_nano_usd: int = 0
    used_nano_usd: int = 0
    settlements: int = 0
    gas: int = 0
    tx_hashes: list[str] = field(default_factory=list)


async def _call(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], payer: LocalAccount, *, sign_in: bool
) -> tuple[int, str | None]:
    """(cost nano-USD, settlement transaction or None) of one call paid as the mode says."""
    async with session.post(url, json=body) as first:
        assert first.status == 402, await first.text()
        header = first.headers["PAYMENT-REQUIRED"]
    extra: dict[str, str] = {}
    if sign_in:
        proof = sign_in_header(payer, decode_header_json(header))
        assert proof is not None
        async with session.post(url, json=body, headers={SIGN_IN_WITH_X: proof}) as signed:
            if signed.status == 200:
                return int(signed.headers["X-MegaRouter-Cost-Nano-USD"]), None
            assert signed.status == 402, await signed.text()
            header = signed.headers["PAYMENT-REQUIRED"]
            again = sign_in_header(payer, decode_header_json(header))
            assert again is not None
            extra = {SIGN_IN_WITH_X: again}
    offer = decode_payment_required_header(header)
    payment = sign_payment(offer.accepts[0], payer, now_unix_s=int(time.time()), resource=offer.resource)
    async with session.post(
        url, json=body, headers={"PAYMENT-SIGNATURE": encode_header(payment), **extra}
    ) as paid:
        assert paid.status == 200, await paid.text()
        settled = decode_header_json(paid.headers["PAYMENT-RESPONSE"])
        return int(paid.headers["X-MegaRouter-Cost-Nano-USD"]), str(settled["transaction"])


async def _mode(
    session: aiohttp.ClientSession,
    w3: AsyncWeb3[Any],
    url: str,
    payer: LocalAccount,
    *,
    sign_in: bool,
    rounds: int,
) -> Tally:
    tally = Tally()
    for _ in range(rounds):
        for prompt in PROMPTS:
            body = {
                "model": "auto",
                "messages": [{"role": "user", "content": prompt}],
                "max_tokens": MAX_TOKENS,
            }
            cost_nano_usd, tx_hash = await _call(session, url, body, payer, sign_in=sign_in)
            tally.requests += 1
            tally.used_nano_usd += cost_nano_usd
            if tx_hash is not None:
                receipt = await w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
                tally.settlements += 1
                tally.gas += int(receipt["gasUsed"])
                tx = await w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
                # transferWithAuthorization(from, to, value, ...): the value is the third argument word.
                tally.paid_nano_usd += (
                    int.from_bytes(bytes(tx["input"])[4 + 64 : 4 + 96], "big") * NANO_USD_PER_ATOMIC
                )
    return tally


def _row(name: str, tally: Tally) -> str:
    ratio = tally.paid_nano_usd / tally.used_nano_usd if tally.used_nano_usd else float("nan")
    return (
        f"| {name} | {tally.requests} | {tally.paid_nano_usd / 1e9:.6f} | {tally.used_nano_usd / 1e9:.6f} | "
        f"{ratio:.2f}× | {tally.settlements} | {tally.gas / tally.requests:,.0f} |"
    )


async def run(rounds: int) -> None:
    accounts = anvil_accounts(4)
    with tempfile.TemporaryDirectory(prefix="megarouter-bench-") as directory:
        async with (
            run_anvil(extra_args=("--accounts", "4")) as anvil,
            start_simulators(("bench",)) as simulators,
            fresh_database(None, Path(directory)) as db_url,
        ):
            print(machine_description(db_url))
            w3 = AsyncWeb3(AsyncHTTPProvider(anvil.rpc_url))
            try:
                tokens = await deploy_and_fund(
                    w3, accounts, payer_indexes=(1, 2), amount_atomic=PAYER_FUNDS_ATOMIC
                )
                settings = devnet_settings(
                    anvil=anvil,
                    tokens=tokens,
                    settlement_key=accounts[0].key.hex(),
                    simulator_base_url=simulators.base_url,
                    database_url=db_url,
                    default_model="openai/gpt-4o-mini",
                    log_format="json",
                    chain_watcher_enabled=False,
                )
                app = create_app(settings)
                timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
                async with serve(app) as router_url, aiohttp.ClientSession(timeout=timeout) as session:
                    url = f"{router_url}/v1/chat/completions"
                    exact = await _mode(session, w3, url, accounts[1], sign_in=False, rounds=rounds)
                    returning = await _mode(session, w3, url, accounts[2], sign_in=True, rounds=rounds)
                    problems = await check_ledger(app[DB_ENGINE])
                    assert not problems, problems
            finally:
                await w3.provider.disconnect()
    print(
        f"\n{len(PROMPTS)} prompts × {rounds} rounds, model auto, max_tokens {MAX_TOKENS}; baseline: used\n"
    )
    print("| mode | requests | paid USD | used USD | paid / used | settlements | gas per request |")
    print("|---|---|---|---|---|---|---|")
    print(_row("exact, every call pays its quote", exact))
    print(_row("returning payer (sign-in-with-x)", returning))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args(argv)
    assert 1 <= arguments.rounds <= 100
    return bench_main(lambda: run(arguments.rounds))


if __name__ == "__main__":
    sys.exit(main())
