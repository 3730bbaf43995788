"""Test-only crash points, enabled by `Settings.fault_injection` (empty in production).

A crash point ends the process at once, as a power cut would: no cleanup, no flush beyond what the
database already committed. The crash-safety tests use them to prove recovery loses and doubles nothing.
"""

from __future__ import annotations

import os
import sys
from typing import Literal

__all__ = ["CrashPoint", "crash_if_enabled"]

CrashPoint = Literal[
    "after_settlement_signed",  # the intent holds the signed transaction; nothing was sent
    "after_settlement_mined",  # the transaction is mined; nothing is booked
    "after_inference_held",  # a chat request's hold is taken; nothing was sent upstream
    "after_withdrawal_held",  # the withdrawal's credit is held and its row stored; nothing is signed
    "after_withdrawal_signed",  # the withdrawal holds its signed transfer (status sent); nothing was sent
    "after_withdrawal_mined",  # the withdrawal's transfer is mined; nothing is booked
    "after_upto_captured",  # an upto request is served and its cost captured (amount due); nothing is signed
    "after_upto_signed",  # the upto settlement's signed transaction is stored; nothing was sent
]
CRASH_EXIT_CODE = 86


def crash_if_enabled(enabled: frozenset[str], point: CrashPoint) -> None:
    if point in enabled:
        print(f"fault injection: crashing at {point}", file=sys.stderr, flush=True)
        os._exit(CRASH_EXIT_CODE)
