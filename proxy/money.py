"""Integer money arithmetic shared by pricing and payments: nano-USD and token atomic units.

The ledger counts nano-USD (1e-9 USD). A stablecoin with `decimals` decimals at par has
10**(9 - decimals) nano-USD per atomic unit (1,000 for USDC/USDT's 6 decimals). Nothing here uses floats.
"""

from __future__ import annotations

__all__ = [
    "NANO_USD_DECIMALS",
    "NANO_USD_PER_USD",
    "TOKENS_PER_MTOK",
    "atomic_to_nano_usd",
    "div_ceil",
    "nano_usd_per_atomic",
]

NANO_USD_DECIMALS = 9
NANO_USD_PER_USD = 10**NANO_USD_DECIMALS
TOKENS_PER_MTOK = 1_000_000


def div_ceil(numerator: int, denominator: int) -> int:
    """Integer division rounding towards +infinity, for non-negative numerators."""
    assert numerator >= 0
    assert denominator > 0
    return -(-numerator // denominator)


def nano_usd_per_atomic(decimals: int) -> int:
    # A token with more decimals than the ledger unit could not be booked exactly.
    assert 0 <= decimals <= NANO_USD_DECIMALS
    factor: int = 10 ** (NANO_USD_DECIMALS - decimals)
    return factor


def atomic_to_nano_usd(amount_atomic: int, *, decimals: int) -> int:
    assert amount_atomic >= 0
    return amount_atomic * nano_usd_per_atomic(decimals)

