"""The alert kinds MegaRouter raises itself. `Alerts.raise_alert` takes any snake_case kind."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["AlertKind"]


class AlertKind(StrEnum):
    SPEND_ANOMALY = "spend_anomaly"
    BREAKER_OPEN = "breaker_open"
    SETTLEMENT_FAILED = "settlement_failed"
    RECONCILIATION_BREAK = "reconciliation_break"
    # Raised by governance when a budget's spend crosses one of its alert thresholds.
    BUDGET_THRESHOLD = "budget_threshold"
    # Raised on demand by an operator (POST /v1/alerts/test) to check a receiver end to end.
    TEST = "test"
