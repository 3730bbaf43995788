"""Detectors: each reads the state it watches and raises alerts into the outbox, deduplicated there, so
evaluating again (or on several replicas) never raises twice.

- `spend_anomaly`: a key's or payer's spend in the current UTC hour departs from its own trailing hours
  (proxy.observability.alerts.spend); once per subject per hour.
- `breaker_open`: a deployment's breaker has been open (or half-open, not yet recovered) for at least
  `breaker_open_after_s`; once per episode (the episode is named by when the breaker left closed).
- `settlement_failed`: an x402 settlement intent failed (refused or reverted on chain); once per intent.
- `reconciliation_break`: a stored reconciliation run found breaks; once per run.

Budget thresholds are raised by governance itself (kind `budget_threshold`, see the README).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.reconcile import list_runs, run_breaks
from proxy.db.tables import org_budget_alerts, x402_settlements
from proxy.observability.alerts.kinds import AlertKind
from proxy.observability.alerts.outbox import Alerts, RaisedAlert
from proxy.observability.alerts.spend import spend_baseline
from proxy.observability.alerts.spend_source import HOUR_S, HourlySpendSource
from proxy.routing.health import HealthTracker
from proxy.settings import SpendAnomalySettings

__all__ = [
    "BreakerOpenDetector",
    "Detector",
    "ReconciliationBreakDetector",
    "SettlementFailureDetector",
    "SpendAnomalyDetector",
    "evaluate_all",
]

Clock = Callable[[], float]
log = structlog.get_logger("megarouter.alerts.detectors")
MS_PER_S = 1000
FAILED_SETTLEMENTS_PER_PASS_MAX = 200
BUDGET_CROSSINGS_PER_PASS_MAX = 500
RUNS_PER_PASS_MAX = 50
BREAKS_IN_PAYLOAD_MAX = 20


class Detector(Protocol):
    async def evaluate(self) -> list[RaisedAlert]: ...


async def evaluate_all(detectors: Sequence[Detector], *, timeout_s: float) -> list[RaisedAlert]:
    """Runs every detector; one that fails or overruns is logged and the others still run."""
    raised: list[RaisedAlert] = []
    for detector in detectors:
        try:
            async with asyncio.timeout(timeout_s):
                raised.extend(await detector.evaluate())
        except Exception:
            log.exception("alert_detector_failed", detector=type(detector).__name__)
    return raised


class SpendAnomalyDetector:
    def __init__(
        self, alerts: Alerts, source: HourlySpendSource, *, settings: SpendAnomalySettings, clock: Clock
    ) -> None:
        self._alerts = alerts
        self._source = source
        self._settings = settings
        self._clock = clock

    async def evaluate(self) -> list[RaisedAlert]:
        hour_unix_s = int(self._clock()) // HOUR_S * HOUR_S
        hours = self._settings.baseline_hours
        spenders = await self._source.top_spenders(
            hour_start_unix_s=hour_unix_s, limit=self._settings.subjects_max
        )
        raised: list[RaisedAlert] = []
        for spender in spenders:
            # Cheap first: a spend within the floor can never alert, whatever the baseline.
            if spender.spend_nano_usd <= self._settings.min_excess_nano_usd:
                continue
            dedup_key = f"{spender.subject.name}:{hour_unix_s}"
            if await self._alerts.exists(AlertKind.SPEND_ANOMALY, dedup_key):
                continue
            history = await self._source.hourly_spend(
                spender.subject, first_hour_unix_s=hour_unix_s - hours * HOUR_S, hours=hours
            )
            baseline = spend_baseline(
                history,
                mad_multiplier=self._settings.mad_multiplier,
                min_excess_nano_usd=self._settings.min_excess_nano_usd,
            )
            if not baseline.departs(spender.spend_nano_usd):
                continue
            payload = {
                "subject_kind": spender.subject.kind,
                "subject_id": spender.subject.id,
                "hour_start": datetime.fromtimestamp(hour_unix_s, UTC).isoformat().replace("+00:00", "Z"),
                "spend_nano_usd": spender.spend_nano_usd,
                "threshold_nano_usd": baseline.threshold_nano_usd,
                # Rounded to whole nano-USD for display; the threshold was computed exactly.
                "baseline_median_nano_usd": round(baseline.median_nano_usd),
                "baseline_mad_nano_usd": round(baseline.mad_nano_usd),
                "baseline_hours": hours,
                "baseline_hourly_nano_usd": history,
            }
            raised.append(
                await self._alerts.raise_alert(
                    AlertKind.SPEND_ANOMALY, dedup_key, spender.subject.name, payload
                )
            )
        return raised


class BreakerOpenDetector:
    def __init__(self, alerts: Alerts, tracker: HealthTracker, *, open_after_s: float) -> None:
        assert open_after_s > 0
        self._alerts = alerts
        self._tracker = tracker
        self._open_after_s = open_after_s

    async def evaluate(self) -> list[RaisedAlert]:
        raised: list[RaisedAlert] = []
        for deployment_id, health in (await self._tracker.snapshots()).items():
            if health.opened_at_s is None or health.unhealthy_for_s < self._open_after_s:
                continue
            payload = {
                "deployment": deployment_id,
                "breaker": health.breaker,
                "open_for_s": round(health.unhealthy_for_s, 3),
                "open_after_s": self._open_after_s,
                "consecutive_failures": health.consecutive_failures,
                "last_failure_kind": health.last_failure_kind,
                "error_rate": health.error_rate,
            }
            dedup_key = f"{deployment_id}:{health.opened_at_s!r}"
            raised.append(
                await self._alerts.raise_alert(
                    AlertKind.BREAKER_OPEN, dedup_key, f"deployment:{deployment_id}", payload
                )
            )
        return raised


class SettlementFailureDetector:
    """Failed x402 settlement intents updated within `lookback_s` (refused by the chain or reverted)."""

    def __init__(self, alerts: Alerts, engine: AsyncEngine, *, lookback_s: int, clock: Clock) -> None:
        self._alerts = alerts
        self._engine = engine
        self._lookback_s = lookback_s
        self._clock = clock

    async def evaluate(self) -> list[RaisedAlert]:
        table = x402_settlements
        since = datetime.fromtimestamp(self._clock() - self._lookback_s, UTC)
        statement = (
            sa.select(table)
            .where(table.c.status == "failed", table.c.updated_at >= since)
            .order_by(table.c.id)
            .limit(FAILED_SETTLEMENTS_PER_PASS_MAX)
        )
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        raised: list[RaisedAlert] = []
        for row in rows:
            payload = {
                "settlement_id": row["id"],
                "network": row["network"],
                "asset": row["asset"],
                "payer": row["payer"],
                "value_atomic": row["value_atomic"],
                "reason": row["error_reason"],
                "reverted_tx_hash": row["tx_hash"],
                "block_number": row["block_number"],
                "request_id": row["request_id"],
            }
            raised.append(
                await self._alerts.raise_alert(
                    AlertKind.SETTLEMENT_FAILED, f"x402:{row['id']}", f"settlement:{row['id']}", payload
                )
            )
        return raised


class ReconciliationBreakDetector:
    """Stored reconciliation runs (by the CLI or anyone sharing the database) that found breaks."""

    def __init__(self, alerts: Alerts, engine: AsyncEngine, *, lookback_s: int, clock: Clock) -> None:
        self._alerts = alerts
        self._engine = engine
        self._lookback_s = lookback_s
        self._clock = clock

    async def evaluate(self) -> list[RaisedAlert]:
        since_ms = int((self._clock() - self._lookback_s) * MS_PER_S)
        raised: list[RaisedAlert] = []
        for run in await list_runs(self._engine, limit=RUNS_PER_PASS_MAX):
            if run.breaks_count == 0 or run.started_at_unix_ms < since_ms:
                continue
            dedup_key = f"run:{run.id}"
            if await self._alerts.exists(AlertKind.RECONCILIATION_BREAK, dedup_key):
                continue
            breaks = (await run_breaks(self._engine, run.id))[:BREAKS_IN_PAYLOAD_MAX]
            payload = {
                "run_id": run.id,
                "started_at_unix_ms": run.started_at_unix_ms,
                "movements_count": run.movements_count,
                "matched_count": run.matched_count,
                "breaks_count": run.breaks_count,
                "scope": {key: value for key, value in run.metadata.items() if key != "accounts"},
                "breaks": [item.model_dump(mode="json") for item in breaks],
            }
            raised.append(
                await self._alerts.raise_alert(
                    AlertKind.RECONCILIATION_BREAK, dedup_key, f"reconcile_run:{run.id}", payload
                )
            )
        return raised


class BudgetThresholdDetector:
    """Budget threshold crossings that governance recorded (table org_budget_alerts, one row per budget,
    period and threshold, whichever replica saw it) within `lookback_s`, each raised once as
    `budget_threshold`: the crossing is durable before it is an alert, so a crash between the two loses
    nothing."""

    def __init__(self, alerts: Alerts, engine: AsyncEngine, *, lookback_s: int, clock: Clock) -> None:
        self._alerts = alerts
        self._engine = engine
        self._lookback_s = lookback_s
        self._clock = clock

    async def evaluate(self) -> list[RaisedAlert]:
        table = org_budget_alerts
        since_s = int(self._clock()) - self._lookback_s
        statement = (
            sa.select(table)
            .where(table.c.crossed_at_unix_s >= since_s)
            .order_by(table.c.id)
            .limit(BUDGET_CROSSINGS_PER_PASS_MAX)
        )
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        raised: list[RaisedAlert] = []
        for row in rows:
            percent = row["threshold_bp"] / 100
            payload = {
                "org_id": row["org_id"],
                "budget_id": row["budget_id"],
                "period_start_unix_s": row["period_start_unix_s"],
                "threshold_percent": percent,
                "spent_nano_usd": row["spend_nano_usd"],
                "limit_nano_usd": row["amount_nano_usd"],
                "crossed_at_unix_s": row["crossed_at_unix_s"],
            }
            dedup_key = f"{row['budget_id']}:{row['period_start_unix_s']}:{row['threshold_bp']}"
            raised.append(
                await self._alerts.raise_alert(
                    AlertKind.BUDGET_THRESHOLD, dedup_key, f"budget:{row['budget_id']}", payload
                )
            )
        return raised
