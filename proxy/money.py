"""Integer money arithmetic shared by pricing and payments: nano-USD and token atomic units.

The ledger counts nano-USD (1e-9 USD). A stablecoin with `decimals` decimals at par has
10**(9 - decimals) nano-USD per atomic unit (1,000 for USDC/USDT's 6 decimals). Nothing here uses floats.
"""

from __future__ import annotations

import re

__all__ = [
    "NANO_USD_DECIMALS",
    "NANO_USD_PER_USD",
    "TOKENS_PER_MTOK",
    "atomic_to_nano_usd",
    "div_ceil",
    "nano_usd_per_atomic",
    "usd_text_to_nano_usd",
]

NANO_USD_DECIMALS = 9
NANO_USD_PER_USD = 10**NANO_USD_DECIMALS
TOKENS_PER_MTOK = 1_000_000
# Up to a quadrillion USD, to the nano-USD: ASCII digits and one optional point, nothing else. Decimal()
# and float() also take "1_000", "1e999999", " 5", "NaN" and non-ASCII digits, which callers never mean.
USD_TEXT_PATTERN = re.compile(r"([0-9]{1,15})(?:\.([0-9]{1,30}))?")


def div_ceil(numerator: int, denominator: int) -> int:
    """Integer division rounding towards +infinity, for non-negative numerators."""
    assert numerator >= 0
    assert denominator > 0
    return -(-numerator // denominator)


def usd_text_to_nano_usd(text: str) -> int:
    """`"5"`, `"0.25"`, `"0.000000001"` → nano-USD, exactly; ValueError for any other text."""
    match = USD_TEXT_PATTERN.fullmatch(text)
    if match is None:
        raise ValueError(
            f"{text[:40]!r} is not a plain decimal amount of USD (ASCII digits and at most one point)"
        )
    whole: str = match.group(1)
    fraction: str = (match.group(2) or "").rstrip("0")
    if len(fraction) > NANO_USD_DECIMALS:
        raise ValueError(f"{text!r} USD is finer than 1 nano-USD (1e-9 USD)")
    nano_usd: int = int(whole) * NANO_USD_PER_USD + int(fraction.ljust(NANO_USD_DECIMALS, "0"))
    assert nano_usd >= 0
    return nano_usd


def nano_usd_per_atomic(decimals: int) -> int:
    # A token with more decimals than the ledger unit could not be booked exactly.
    assert 0 <= decimals <= NANO_USD_DECIMALS
    factor: int = 10 ** (NANO_USD_DECIMALS - decimals)
    return factor


def atomic_to_nano_usd(amount_atomic: int, *, decimals: int) -> int:
    assert amount_atomic >= 0
    return amount_atomic * nano_usd_per_atomic(decimals)
