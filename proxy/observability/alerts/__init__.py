"""Alerts: a durable outbox (`outbox`), signed webhook delivery with retries (`delivery`) and the
detectors that raise into it (`detectors`). Imports routing, payments' tables and the ledger; never aiohttp
handlers (the API renders the history, the app wires the background tasks).

Raising an alert from anywhere above this package (governance's budget thresholds, for instance):

    await app[ALERTS].raise_alert("budget_threshold", f"{budget_id}:{period_start}:{percent}",
                                  f"budget:{budget_id}", {"budget_id": ..., "spent_nano_usd": ...})
"""

from proxy.observability.alerts.delivery import AlertDeliverer, DeliveryPolicy, WebhookEndpoint, backoff_s
from proxy.observability.alerts.detectors import (
    BreakerOpenDetector,
    BudgetThresholdDetector,
    Detector,
    ReconciliationBreakDetector,
    SettlementFailureDetector,
    SpendAnomalyDetector,
    evaluate_all,
)
from proxy.observability.alerts.kinds import AlertKind
from proxy.observability.alerts.outbox import ALERTS_LISTED_MAX, AlertPage, AlertRecord, Alerts, RaisedAlert
from proxy.observability.alerts.spend import SpendBaseline, spend_baseline
from proxy.observability.alerts.spend_rollups import UsageRollupsHourlySpend
from proxy.observability.alerts.spend_source import (
    HourlySpendSource,
    SpendSubject,
    SubjectSpend,
    UsageEventsHourlySpend,
)

__all__ = [
    "ALERTS_LISTED_MAX",
    "AlertDeliverer",
    "AlertKind",
    "AlertPage",
    "AlertRecord",
    "Alerts",
    "BreakerOpenDetector",
    "BudgetThresholdDetector",
    "DeliveryPolicy",
    "Detector",
    "HourlySpendSource",
    "RaisedAlert",
    "ReconciliationBreakDetector",
    "SettlementFailureDetector",
    "SpendAnomalyDetector",
    "SpendBaseline",
    "SpendSubject",
    "SubjectSpend",
    "UsageEventsHourlySpend",
    "UsageRollupsHourlySpend",
    "WebhookEndpoint",
    "backoff_s",
    "evaluate_all",
    "spend_baseline",
]
