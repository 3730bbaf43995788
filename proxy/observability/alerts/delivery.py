"""Delivers the outbox's alerts to webhook endpoints, signed by the Standard Webhooks scheme.

A pass claims the due deliveries (state pending, next attempt due on the injected clock) with a conditional
UPDATE that counts the attempt and pushes the next attempt past a lease, then POSTs each one. A 2xx marks it
delivered; anything else schedules the next attempt after an exponential back-off with jitter, until
`attempts_max`, when it is marked failed (the alert stays in the history). A process killed while a request
is in flight leaves the claim behind: the delivery is due again when the lease passes, and is sent again
with the same `webhook-id` (the alert's id), so receivers deduplicate. Several replicas may run passes at
once: a claim is won by exactly one of them. A process claims only deliveries to endpoints it has
configured; one to an endpoint removed from every configuration stays pending in the history.

The signature's `webhook-timestamp` is the real wall clock (receivers compare it with theirs); every
scheduling decision uses the injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import sqlalchemy as sa
import structlog
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook

from proxy.db.tables import alert_deliveries, alerts

__all__ = ["AlertDeliverer", "DeliveryPolicy", "WebhookEndpoint", "alert_body", "backoff_s"]

Clock = Callable[[], float]
log = structlog.get_logger("megarouter.alerts.delivery")
MS_PER_S = 1000
ERROR_LENGTH_MAX = 500


class WebhookEndpoint(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    url: str
    secret: str


class DeliveryPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    attempts_max: int = Field(ge=1)
    retry_base_s: float = Field(gt=0)
    retry_max_s: float = Field(gt=0)
    timeout_s: float = Field(gt=0)
    # A claim outlives the request it covers: only then may another pass send the delivery again.
    lease_s: float = Field(gt=0)
    per_pass_max: int = Field(ge=1)

    @model_validator(mode="after")
    def _lease_covers_the_request(self) -> DeliveryPolicy:
        if self.lease_s <= self.timeout_s:
            raise ValueError("lease_s must exceed timeout_s")
        return self


def backoff_s(attempts: int, *, base_s: float, max_s: float, unit_random: float) -> float:
    """Wait after `attempts` failed attempts: half of min(max_s, base_s·2^(attempts-1)) fixed, half random
    ("equal jitter"), so endpoints that failed together do not retry together."""
    assert attempts >= 1
    assert 0.0 <= unit_random <= 1.0
    ceiling_s = min(max_s, base_s * 2.0 ** min(attempts - 1, 60))
    return ceiling_s / 2 + unit_random * ceiling_s / 2


def alert_body(row: Mapping[str, Any]) -> str:
    """The webhook body (the Standard Webhooks envelope), identical on every attempt."""
    created_at = datetime.fromtimestamp(row["created_at_unix_ms"] / MS_PER_S, UTC)
    envelope = {
        "type": f"alert.{row['kind']}",
        "timestamp": created_at.isoformat().replace("+00:00", "Z"),
        "data": {
            "id": row["id"],
            "kind": row["kind"],
            "subject": row["subject"],
            "created_at": row["created_at_unix_ms"] // MS_PER_S,
            "payload": json.loads(row["payload_json"]),
        },
    }
    return json.dumps(envelope, sort_keys=True, separators=(",", ":"))


class AlertDeliverer:
    def __init__(
        self,
        engine: AsyncEngine,
        session: aiohttp.ClientSession,
        *,
        endpoints: Mapping[str, WebhookEndpoint],
        policy: DeliveryPolicy,
        clock: Clock,
        rng: random.Random | None = None,
        signing_clock: Clock = time.time,
    ) -> None:
        self._engine = engine
        self._session = session
        self._endpoints = dict(endpoints)
        self._webhooks = {name: Webhook(endpoint.secret) for name, endpoint in endpoints.items()}
        self._policy = policy
        self._clock = clock
        self._rng = rng or random.Random()
        self._signing_clock = signing_clock
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Run a pass now (an alert was raised, or a test moved the clock)."""
        self._wake.set()

    async def run(self, *, poll_interval_s: float) -> None:
        """Passes for the app's lifetime: at once when woken, else every `poll_interval_s`."""
        assert poll_interval_s > 0
        while True:
            try:
                claimed = await self.deliver_due()
            except Exception:
                log.exception("alert_delivery_pass_failed")
                claimed = 0
            if claimed >= self._policy.per_pass_max:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=poll_interval_s)
            self._wake.clear()

    async def deliver_due(self) -> int:
        """One pass: claims up to `per_pass_max` due deliveries and sends them; returns how many."""
        claimed = await self._claim_due()
        await asyncio.gather(*(self._send(row) for row in claimed))
        return len(claimed)

    async def _claim_due(self) -> list[Mapping[str, Any]]:
        # Only deliveries to endpoints this process knows: during a configuration change, replicas that
        # have not got an endpoint yet (or have dropped it) leave its deliveries to those that have.
        if not self._endpoints:
            return []
        now_ms = int(self._clock() * MS_PER_S)
        lease_ms = int(self._policy.lease_s * MS_PER_S)
        d = alert_deliveries
        due = (
            sa.select(
                d.c.id.label("delivery_id"),
                d.c.endpoint,
                d.c.attempts,
                alerts.c.id,
                alerts.c.kind,
                alerts.c.subject,
                alerts.c.payload_json,
                alerts.c.created_at_unix_ms,
            )
            .join(alerts, alerts.c.seq == d.c.alert_seq)
            .where(
                d.c.state == "pending",
                d.c.next_attempt_at_unix_ms <= now_ms,
                d.c.endpoint.in_(list(self._endpoints)),
            )
            .order_by(d.c.next_attempt_at_unix_ms, d.c.id)
            .limit(self._policy.per_pass_max)
        )
        claimed: list[Mapping[str, Any]] = []
        async with self._engine.begin() as connection:
            rows = (await connection.execute(due)).mappings().all()
            for row in rows:
                won = await connection.execute(
                    sa.update(d)
                    .where(
                        d.c.id == row["delivery_id"], d.c.state == "pending", d.c.attempts == row["attempts"]
                    )
                    .values(
                        attempts=row["attempts"] + 1,
                        next_attempt_at_unix_ms=now_ms + lease_ms,
                        last_attempt_at_unix_ms=now_ms,
                    )
                )
                if won.rowcount == 1:
                    claimed.append({**row, "attempt": row["attempts"] + 1})
        return claimed

    async def _send(self, claim: Mapping[str, Any]) -> None:
        endpoint = self._endpoints[claim["endpoint"]]
        body = alert_body(claim)
        signed_at = datetime.fromtimestamp(self._signing_clock(), UTC)
        headers = {
            "Content-Type": "application/json",
            "webhook-id": claim["id"],
            "webhook-timestamp": str(int(signed_at.timestamp())),
            "webhook-signature": self._webhooks[endpoint.name].sign(claim["id"], signed_at, body),
        }
        status: int | None = None
        error: str | None = None
        try:
            async with self._session.post(
                endpoint.url,
                data=body.encode(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._policy.timeout_s),
                allow_redirects=False,
            ) as response:
                # The answer's body is not read: only the status counts, and a receiver cannot make us buffer.
                status = response.status
                if not 200 <= status < 300:
                    error = f"HTTP {status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as failure:
            error = f"{type(failure).__name__}: {failure}"[:ERROR_LENGTH_MAX]
        await self._finish(claim, status=status, error=error)

    async def _finish(self, claim: Mapping[str, Any], *, status: int | None, error: str | None) -> None:
        now_ms = int(self._clock() * MS_PER_S)
        attempt: int = claim["attempt"]
        values: dict[str, Any] = {"last_status": status}
        if error is None:
            values |= {"state": "delivered", "delivered_at_unix_ms": now_ms, "last_error": None}
            log.info("alert_delivered", alert_id=claim["id"], endpoint=claim["endpoint"], attempt=attempt)
        elif attempt >= self._policy.attempts_max:
            values |= {"state": "failed", "last_error": error[:ERROR_LENGTH_MAX]}
            log.error("alert_delivery_failed", alert_id=claim["id"], endpoint=claim["endpoint"], error=error)
        else:
            wait_s = backoff_s(
                attempt,
                base_s=self._policy.retry_base_s,
                max_s=self._policy.retry_max_s,
                unit_random=self._rng.random(),
            )
            values |= {"next_attempt_at_unix_ms": now_ms + int(wait_s * MS_PER_S), "last_error": error}
            log.warning(
                "alert_delivery_retrying", alert_id=claim["id"], endpoint=claim["endpoint"], retry_in_s=wait_s
            )
        d = alert_deliveries
        async with self._engine.begin() as connection:
            # Only the claim's own attempt may finish it: a lease that ran out lets another pass take over.
            await connection.execute(
                sa.update(d).where(d.c.id == claim["delivery_id"], d.c.attempts == attempt).values(**values)
            )
