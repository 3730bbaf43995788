"""Exact conversion of USD prices into the catalog's unit, integer nano-USD per million tokens.

Sources quote USD per million tokens as decimals ("0.15") or USD per token as floats (1.5e-07).
Both go through `Decimal(str(x))`, never float arithmetic, and any value that does not land on a
whole nano-USD per MTok, or is negative, is refused: a rounded price would silently charge users
something other than the provider's native price. Pure functions, no I/O.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from proxy.money import NANO_USD_PER_USD, TOKENS_PER_MTOK

__all__ = [
    "NANO_USD_PER_USD",
    "TOKENS_PER_MTOK",
    "InexactPrice",
    "nano_usd_per_mtok_from_usd_per_mtok",
    "nano_usd_per_mtok_from_usd_per_token",
    "usd_per_mtok_from_nano_usd_per_mtok",
]


class InexactPrice(ValueError):
    """A price is negative, not a finite decimal, or finer than 1 nano-USD per MTok."""


def _decimal_from(value: Decimal | str | int | float) -> Decimal:
    # str() of a float is its shortest round-tripping repr, so 1.5e-07 becomes Decimal("1.5E-7")
    # exactly as printed in the source, not the binary expansion of the float.
    if isinstance(value, bool):
        raise InexactPrice(f"price must be a number, got boolean {value!r}")
    try:
        decimal_value = Decimal(str(value).strip())
    except InvalidOperation as error:
        raise InexactPrice(f"price {value!r} is not a decimal number") from error
    if not decimal_value.is_finite():
        raise InexactPrice(f"price {value!r} is not finite")
    if decimal_value < 0:
        raise InexactPrice(f"price {value!r} is negative")
    return decimal_value


def _exact_int(scaled: Decimal, original: Decimal | str | int | float) -> int:
    if scaled != scaled.to_integral_value():
        raise InexactPrice(f"price {original!r} is not a whole number of nano-USD per million tokens")
    result = int(scaled)
    assert result >= 0
    return result


def nano_usd_per_mtok_from_usd_per_mtok(value: Decimal | str | int | float) -> int:
    """Convert USD per million tokens (e.g. "0.15") to int nano-USD per MTok (150_000_000)."""
    decimal_value = _decimal_from(value)
    return _exact_int(decimal_value * NANO_USD_PER_USD, value)


def nano_usd_per_mtok_from_usd_per_token(value: Decimal | str | int | float) -> int:
    """Convert USD per token (e.g. 1.5e-07) to int nano-USD per MTok (150_000_000)."""
    decimal_value = _decimal_from(value)
    return _exact_int(decimal_value * NANO_USD_PER_USD * TOKENS_PER_MTOK, value)


def usd_per_mtok_from_nano_usd_per_mtok(price_nano_usd_per_mtok: int) -> str:
    """Render an int price back as a plain USD-per-MTok decimal string, for display and audit."""
    assert price_nano_usd_per_mtok >= 0
    text = format(Decimal(price_nano_usd_per_mtok) / NANO_USD_PER_USD, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
