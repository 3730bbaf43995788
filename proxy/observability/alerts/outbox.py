"""The durable alert outbox: raise an alert once per (kind, dedup_key), read the history back.

An alert and one delivery row per configured webhook endpoint are written in one transaction, so an alert
that exists is always delivered (by `proxy.observability.alerts.delivery`), across restarts. Raising the
same (kind, dedup_key) again changes nothing and returns the first alert: detectors may re-evaluate as
often as they like, and several replicas may raise the same alert at once.

Imports only the database tables; never aiohttp.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from proxy.db.tables import alert_deliveries, alerts

__all__ = [
    "ALERTS_LISTED_MAX",
    "AlertDelivery",
    "AlertPage",
    "AlertRecord",
    "Alerts",
    "DeliveryState",
    "DeliverySummary",
    "RaisedAlert",
]

Clock = Callable[[], float]
DeliveryState = Literal["pending", "delivered", "failed"]
ALERTS_LISTED_MAX = 100
PAYLOAD_BYTES_MAX = 16_384
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_DEDUP_KEY_LENGTH_MAX = 255
_SUBJECT_LENGTH_MAX = 255
MS_PER_S = 1000


class RaisedAlert(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    # False when (kind, dedup_key) had been raised before: nothing was written, `id` is the first alert's.
    created: bool


class AlertDelivery(BaseModel):
    model_config = ConfigDict(frozen=True)

    endpoint: str
    state: DeliveryState
    attempts: int
    last_error: str | None
    last_status: int | None
    delivered_at_unix_ms: int | None


class DeliverySummary(BaseModel):
    """All endpoints together: delivered when every one was, failed when one gave up, else pending;
    `no_endpoints` when none was configured as the alert was raised."""

    model_config = ConfigDict(frozen=True)

    state: Literal["pending", "delivered", "failed", "no_endpoints"]
    attempts: int
    last_error: str | None
    endpoints: tuple[AlertDelivery, ...]


class AlertRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    kind: str
    subject: str
    created_at_unix_ms: int
    payload: dict[str, Any]
    delivery: DeliverySummary


class AlertPage(BaseModel):
    model_config = ConfigDict(frozen=True)

    data: tuple[AlertRecord, ...]
    has_more: bool


def _summary(deliveries: Sequence[AlertDelivery], last_errors: Sequence[tuple[int, str]]) -> DeliverySummary:
    states = {delivery.state for delivery in deliveries}
    state: Literal["pending", "delivered", "failed", "no_endpoints"]
    if not deliveries:
        state = "no_endpoints"
    elif "pending" in states:
        state = "pending"
    elif states == {"delivered"}:
        state = "delivered"
    else:
        state = "failed"
    last_error = max(last_errors)[1] if last_errors else None
    return DeliverySummary(
        state=state,
        attempts=sum(delivery.attempts for delivery in deliveries),
        last_error=last_error,
        endpoints=tuple(deliveries),
    )


class Alerts:
    """The outbox. `endpoints` names the webhooks each new alert is delivered to; `on_raised` wakes the
    deliverer; `clock` is unix seconds (tests inject a fake one)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        endpoints: Sequence[str],
        clock: Clock,
        on_raised: Callable[[], None] | None = None,
    ) -> None:
        assert len(set(endpoints)) == len(endpoints), "endpoint names must be unique"
        self._engine = engine
        self._endpoints = tuple(endpoints)
        self._clock = clock
        self._on_raised = on_raised

    async def raise_alert(
        self, kind: str, dedup_key: str, subject: str, payload: Mapping[str, Any]
    ) -> RaisedAlert:
        """Records the alert for delivery unless (kind, dedup_key) was raised before. `payload` is JSON
        (money as integer nano-USD), at most 16 KiB."""
        assert _KIND.match(kind), f"alert kind must be snake_case: {kind!r}"
        assert 0 < len(dedup_key) <= _DEDUP_KEY_LENGTH_MAX, dedup_key
        assert 0 < len(subject) <= _SUBJECT_LENGTH_MAX, subject
        payload_json = json.dumps(dict(payload), sort_keys=True, separators=(",", ":"))
        assert len(payload_json.encode()) <= PAYLOAD_BYTES_MAX, "alert payload too large"
        now_ms = int(self._clock() * MS_PER_S)
        alert_id = f"alert_{uuid.uuid4().hex}"
        insert = postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert
        statement = (
            insert(alerts)
            .values(
                id=alert_id,
                kind=kind,
                dedup_key=dedup_key,
                subject=subject,
                payload_json=payload_json,
                created_at_unix_ms=now_ms,
            )
            .on_conflict_do_nothing(index_elements=["kind", "dedup_key"])
            .returning(alerts.c.seq)
        )
        async with self._engine.begin() as connection:
            seq = (await connection.execute(statement)).scalar_one_or_none()
            if seq is not None and self._endpoints:
                await connection.execute(
                    sa.insert(alert_deliveries),
                    [
                        {
                            "alert_seq": seq,
                            "endpoint": endpoint,
                            "state": "pending",
                            "attempts": 0,
                            "next_attempt_at_unix_ms": now_ms,
                        }
                        for endpoint in self._endpoints
                    ],
                )
            if seq is None:
                existing = await connection.execute(
                    sa.select(alerts.c.id).where(alerts.c.kind == kind, alerts.c.dedup_key == dedup_key)
                )
                return RaisedAlert(id=existing.scalar_one(), created=False)
        if self._on_raised is not None and self._endpoints:
            self._on_raised()
        return RaisedAlert(id=alert_id, created=True)

    async def exists(self, kind: str, dedup_key: str) -> bool:
        statement = sa.select(alerts.c.seq).where(alerts.c.kind == kind, alerts.c.dedup_key == dedup_key)
        async with self._engine.connect() as connection:
            return (await connection.execute(statement)).first() is not None

    async def get(self, alert_id: str) -> AlertRecord | None:
        page = await self._records(sa.select(alerts).where(alerts.c.id == alert_id))
        return page[0] if page else None

    async def history(
        self, *, kind: str | None = None, after: str | None = None, limit: int = 20
    ) -> AlertPage:
        """Newest first; `after` is the id of the last alert of the previous page."""
        assert 1 <= limit <= ALERTS_LISTED_MAX
        statement = sa.select(alerts).order_by(alerts.c.seq.desc()).limit(limit + 1)
        if kind is not None:
            statement = statement.where(alerts.c.kind == kind)
        if after is not None:
            cursor = sa.select(alerts.c.seq).where(alerts.c.id == after).scalar_subquery()
            statement = statement.where(alerts.c.seq < cursor)
        records = await self._records(statement)
        return AlertPage(data=tuple(records[:limit]), has_more=len(records) > limit)

    async def _records(self, statement: sa.Select[Any]) -> list[AlertRecord]:
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).mappings().all()
            seqs = [row["seq"] for row in rows]
            deliveries = (
                (
                    await connection.execute(
                        sa.select(alert_deliveries)
                        .where(alert_deliveries.c.alert_seq.in_(seqs))
                        .order_by(alert_deliveries.c.id)
                    )
                )
                .mappings()
                .all()
                if seqs
                else []
            )
        by_alert: dict[int, list[Any]] = {}
        for delivery in deliveries:
            by_alert.setdefault(delivery["alert_seq"], []).append(delivery)
        return [_record(row, by_alert.get(row["seq"], [])) for row in rows]


def _record(row: Mapping[str, Any], deliveries: Sequence[Mapping[str, Any]]) -> AlertRecord:
    views = [
        AlertDelivery(
            endpoint=d["endpoint"],
            state=d["state"],
            attempts=d["attempts"],
            last_error=d["last_error"],
            last_status=d["last_status"],
            delivered_at_unix_ms=d["delivered_at_unix_ms"],
        )
        for d in deliveries
    ]
    errors = [(d["last_attempt_at_unix_ms"] or 0, d["last_error"]) for d in deliveries if d["last_error"]]
    return AlertRecord(
        id=row["id"],
        kind=row["kind"],
        subject=row["subject"],
        created_at_unix_ms=row["created_at_unix_ms"],
        payload=json.loads(row["payload_json"]),
        delivery=_summary(views, errors),
    )
