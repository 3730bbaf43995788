"""Shared pure test data for x402 unit tests: a fixed payer key, an offer, a clock."""

from __future__ import annotations

from eth_account import Account
from eth_account.signers.local import LocalAccount

from x402.models import PaymentRequirements
from x402.requirements import AcceptedAsset, build_requirements

NOW_UNIX_S = 1_780_000_000
PAYER: LocalAccount = Account.from_key("0x" + "11" * 32)
OTHER: LocalAccount = Account.from_key("0x" + "22" * 32)
PAY_TO = "0x" + "ab" * 20
USDC = AcceptedAsset(address="0x" + "cd" * 20, name="USD Coin", version="2")
USDT = AcceptedAsset(address="0x" + "ef" * 20, name="USDT0", version="1")


def offers(quote_nano_usd: int = 2_500_000, chain_id: int = 31337) -> list[PaymentRequirements]:
    return build_requirements(
        quote_nano_usd=quote_nano_usd,
        chain_id=chain_id,
        assets=[USDC, USDT],
        pay_to=PAY_TO,
        max_timeout_s=120,
    )
