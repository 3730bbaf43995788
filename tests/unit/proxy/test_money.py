"""USD amounts typed by people (`?amount=`, `route.max_price`) parse strictly and exactly, or not at all."""

from __future__ import annotations

import pytest

from proxy.money import usd_text_to_nano_usd


@pytest.mark.parametrize(
    ("text", "nano_usd"),
    [("5", 5_000_000_000), ("0.25", 250_000_000), ("0.000000001", 1), ("1.500000000000", 1_500_000_000)],
)
def test_plain_decimals_convert_exactly(text: str, nano_usd: int) -> None:
    assert usd_text_to_nano_usd(text) == nano_usd


@pytest.mark.parametrize(
    "text",
    [
        "1_000",
        "1e3",
        "1e999999",
        " 5",
        "5 ",
        "+5",
        "-5",
        "NaN",
        "Infinity",
        "",
        ".5",
        "5.",
        "1.2.3",
        "١٢",
        "0.0000000001",
        "9" * 16,
    ],
)
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        usd_text_to_nano_usd(text)
