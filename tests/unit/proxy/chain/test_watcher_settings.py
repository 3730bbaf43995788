"""Pure checks of the watcher's settings and of the keys it books under (they must match x402 bookings)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from proxy.chain.transfers import transfer_external_ref
from proxy.chain.watcher import WatchedToken, WatcherSettings, transfer_deposit_key

WALLET = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
TOKEN = WatchedToken(address="0x5FbDB2315678afecb367f032d93F642f64180aa3")
TX_HASH = "0x" + "AB" * 32


def test_defaults_need_confirmations_and_bound_batches() -> None:
    settings = WatcherSettings(network="eip155:8453", settlement_wallet=WALLET, tokens=(TOKEN,))
    assert settings.confirmations >= 1
    assert settings.blocks_per_batch_max <= 100_000
    assert settings.start_block is None


@pytest.mark.parametrize(
    "overrides",
    [
        {"confirmations": -1},
        {"tokens": ()},
        {"network": "base"},
        {"blocks_per_batch_max": 0},
        {"settlement_wallet": "0x12"},
    ],
)
def test_invalid_settings_are_refused(overrides: dict[str, object]) -> None:
    fields: dict[str, object] = {"network": "eip155:1", "settlement_wallet": WALLET, "tokens": (TOKEN,)}
    with pytest.raises(ValidationError):
        WatcherSettings.model_validate({**fields, **overrides})


def test_external_ref_matches_the_x402_booking_format() -> None:
    # proxy/payments/booking.py: f"{intent.network}:{tx_hash}:{transfer_log_index}".lower()
    assert transfer_external_ref("eip155:8453", TX_HASH, 3) == f"eip155:8453:{TX_HASH}:3".lower()
    assert transfer_deposit_key("eip155:8453", TX_HASH, 3) == f"transfer:eip155:8453:{TX_HASH.lower()}:3"
