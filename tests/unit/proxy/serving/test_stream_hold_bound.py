"""A streamed request can never outlive its hold: start-up refuses settings where it could.

Goal: issue 8 item 3: a stream longer than `hold_timeout_s` let the sweeper expire its hold mid-stream
(served free, no usage event). Method: Settings built with every phase bound of a stream (failover until
the first event, the relay's duration, the closing write, the charge) summed just under, at and just over
the hold timeout; the error names the settings to change.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from proxy.settings import Settings

REQUIRED: dict[str, Any] = {
    "chain_rpc_url": "http://127.0.0.1:8545",
    "chain_id": 31337,
    "settlement_private_key": "0x" + "11" * 32,
    "assets": [
        {
            "symbol": "USDC",
            "address": "0x" + "22" * 20,
            "eip712_name": "USD Coin",
            "eip712_version": "2",
        }
    ],
    "default_model": "openai/gpt-4o-mini",
}
# Whole seconds everywhere, so the sums below are exact.
BOUNDS = {
    "request_deadline_s": 100.0,
    "upstream_timeout_s": 50.0,
    "stream_duration_s_max": 200.0,
    "stream_write_timeout_s": 10.0,
    "settle_receipt_timeout_s": 40.0,
}
STREAM_HOLD_S_MAX = 400


def test_the_defaults_fit() -> None:
    settings = Settings.model_validate(REQUIRED)
    assert settings.stream_hold_s_max < settings.hold_timeout_s


def test_a_hold_timeout_longer_than_every_stream_bound_is_accepted() -> None:
    settings = Settings.model_validate({**REQUIRED, **BOUNDS, "hold_timeout_s": STREAM_HOLD_S_MAX + 1})
    assert settings.stream_hold_s_max == STREAM_HOLD_S_MAX


@pytest.mark.parametrize("hold_timeout_s", [STREAM_HOLD_S_MAX, STREAM_HOLD_S_MAX - 1])
def test_a_stream_that_could_outlive_its_hold_is_refused_at_start(hold_timeout_s: int) -> None:
    with pytest.raises(ValidationError, match="stream_duration_s_max") as refused:
        Settings.model_validate({**REQUIRED, **BOUNDS, "hold_timeout_s": hold_timeout_s})
    assert "hold_timeout_s" in str(refused.value)
    assert "stream_write_timeout_s" in str(refused.value)


@pytest.mark.parametrize("name", ["stream_duration_s_max", "stream_write_timeout_s"])
def test_stream_bounds_are_positive(name: str) -> None:
    with pytest.raises(ValidationError, match=name):
        Settings.model_validate({**REQUIRED, name: 0})
