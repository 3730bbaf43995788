"""Serving instances: which process owns which inference holds, so a crashed process's holds are released.

Without this, a hold whose request died with its process stays pending until it expires (`hold_timeout_s`,
900 s by default), locking that much of the payer's credit. With several processes on one database, a
starting process must not release the holds of another's requests still in flight, so each hold names its
owner and only the holds of owners known to be dead are released:

- Every start registers a row under a fresh id (`inst_<uuid4 hex>`), named after where it serves
  (`<hostname>:<port>`), and beats its heartbeat every `HEARTBEAT_INTERVAL_S`. Inference holds carry the
  id in their metadata (`instance_id`).
- An instance ends, once and for good (a compare-and-set on `ended_at_unix_ms`): when it stops cleanly;
  when a new start takes its name (two live processes cannot listen on one host and port, so the older one
  is a previous incarnation that died); or when its heartbeat is older than `INSTANCE_STALE_S` (a host
  that died, or one that never came back under the same name).
- A pending inference hold whose instance has ended is voided, at start-up before serving and by the
  periodic hold sweeper, with a usage event (outcome `instance_lost`) saying why the credit came back.

A live process whose heartbeat could not be written for longer than the staleness bound (a database outage
that long) is taken for dead: it notices on its next beat, logs it, and registers again under a new id, so
only its requests in flight during the outage lose their holds (they fail as they would on hold expiry).
The bound also has to exceed the clock skew between hosts, whose clocks write and judge the heartbeats.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterable

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger import Hold, HoldAlreadyResolved, HoldExpired, HoldState, Ledger, unix_ms_now
from proxy.db.tables import serving_instances
from proxy.serving.usage_log import UsageEvent, UsageLog

__all__ = [
    "HEARTBEAT_INTERVAL_S",
    "INSTANCE_STALE_S",
    "ServingInstance",
    "instance_name",
    "release_orphaned_holds",
]

HEARTBEAT_INTERVAL_S = 10.0
# Six missed beats: long enough for a slow database, short enough that a dead host's holds come back soon.
INSTANCE_STALE_S = 60.0
ORPHAN_OUTCOME = "instance_lost"
log = structlog.get_logger("megarouter.instances")


def _unix_ms_now() -> int:
    return int(time.time() * 1000)


def instance_name(port: int) -> str:
    """Where this process serves: a new start under the same name replaces the one before it."""
    assert 0 < port < 65_536
    return f"{socket.gethostname()}:{port}"


class ServingInstance:
    """This process's registration; `id` changes only if the row was ended behind our back."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        name: str,
        stale_s: float = INSTANCE_STALE_S,
        clock_unix_ms: Callable[[], int] = _unix_ms_now,
    ) -> None:
        assert stale_s > HEARTBEAT_INTERVAL_S
        self._engine = engine
        self._name = name
        self._stale_ms = int(stale_s * 1000)
        self._clock_unix_ms = clock_unix_ms
        self.id = ""

    async def register(self, *, replacing: bool = True) -> None:
        """A fresh row under a new id; with `replacing`, earlier starts under this name are ended as
        previous incarnations (only a process's own start does that, see `heartbeat`)."""
        instance_id = f"inst_{uuid.uuid4().hex}"
        now = self._clock_unix_ms()
        async with self._engine.begin() as connection:
            await connection.execute(
                serving_instances.insert().values(
                    id=instance_id,
                    name=self._name,
                    started_at_unix_ms=now,
                    heartbeat_at_unix_ms=now,
                )
            )
        self.id = instance_id
        replaced: list[str] = []
        if replacing:
            replaced = await self._end_where(
                serving_instances.c.name == self._name,
                serving_instances.c.id != instance_id,
                reason="replaced",
            )
        log.info("serving_instance_registered", instance_id=instance_id, name=self._name, replaced=replaced)

    async def heartbeat(self) -> None:
        assert self.id
        table = serving_instances
        statement = (
            table.update()
            .where(table.c.id == self.id, table.c.ended_at_unix_ms.is_(None))
            .values(heartbeat_at_unix_ms=self._clock_unix_ms())
        )
        async with self._engine.begin() as connection:
            beaten = (await connection.execute(statement)).rowcount
        if beaten == 0:
            # Another process judged us dead (our beats were blocked too long, or it started under our name:
            # a misconfiguration) and may release our holds: new holds must name an id that is alive. Not
            # replacing: two live processes sharing a name must not keep ending each other.
            log.error("serving_instance_was_ended", instance_id=self.id, name=self._name)
            await self.register(replacing=False)

    async def end(self) -> None:
        """A clean stop: whatever hold is still pending under this id can no longer be resolved by us."""
        assert self.id
        await self._end_where(serving_instances.c.id == self.id, reason="stopped")

    async def end_stale(self) -> list[str]:
        """Ends every instance whose heartbeat is older than the staleness bound; returns their ids."""
        cutoff_unix_ms = self._clock_unix_ms() - self._stale_ms
        stale = serving_instances.c.heartbeat_at_unix_ms < cutoff_unix_ms
        return await self._end_where(stale, reason="stale")

    async def live_ids(self, instance_ids: Iterable[str]) -> set[str]:
        """Which of these instances have not ended (an id with no row is not live)."""
        wanted = sorted(set(instance_ids))
        if not wanted:
            return set()
        table = serving_instances
        statement = sa.select(table.c.id).where(table.c.id.in_(wanted), table.c.ended_at_unix_ms.is_(None))
        async with self._engine.connect() as connection:
            return set((await connection.execute(statement)).scalars().all())

    async def _end_where(self, *conditions: sa.ColumnElement[bool], reason: str) -> list[str]:
        table = serving_instances
        statement = (
            table.update()
            .where(*conditions, table.c.ended_at_unix_ms.is_(None))
            .values(ended_at_unix_ms=self._clock_unix_ms(), end_reason=reason)
            .returning(table.c.id)
        )
        async with self._engine.begin() as connection:
            ended = list((await connection.execute(statement)).scalars().all())
        for instance_id in ended:
            log.warning("serving_instance_ended", instance_id=instance_id, reason=reason)
        return ended


async def release_orphaned_holds(
    *,
    ledger: Ledger,
    instance: ServingInstance,
    usage_log: UsageLog,
    hold_code: str,
    catalog_version: str,
) -> list[Hold]:
    """Voids pending `hold_code` holds whose instance has ended; idempotent, safe in every process at once."""
    await instance.end_stale()
    # Holds are listed before liveness is read: a hold is taken only after its instance's row is committed,
    # so every hold listed here has its instance's row visible to the read below.
    pending = [hold for hold in await ledger.open_holds() if hold.code == hold_code]
    owned = [hold for hold in pending if isinstance(hold.metadata.get("instance_id"), str)]
    live = await instance.live_ids(str(hold.metadata["instance_id"]) for hold in owned)
    released = []
    groups_seen: set[int] = set()
    for hold in owned:
        if hold.metadata["instance_id"] in live:
            continue
        if hold.group_id is not None:
            # An org key's request holds on its payer and its budgets as one group: released as one.
            if hold.group_id in groups_seen:
                continue
            groups_seen.add(hold.group_id)
            voided = await _void_orphan_group(
                ledger,
                hold.group_id,
                releaser_id=instance.id,
                usage_log=usage_log,
                catalog_version=catalog_version,
            )
        else:
            voided = await _void_orphan(
                ledger, hold, releaser_id=instance.id, usage_log=usage_log, catalog_version=catalog_version
            )
        if voided is not None:
            released.append(voided)
    return released


async def _void_orphan_group(
    ledger: Ledger, group_id: int, *, releaser_id: str, usage_log: UsageLog, catalog_version: str
) -> Hold | None:
    """As `_void_orphan`, for a hold group: every hold of it released, one usage event naming the payer's
    hold (a group's last, proxy/serving/billing.py); returns that hold, or None when resolved already."""
    payer_hold = (await ledger.get_hold_group(group_id)).holds[-1]

    async def insert_usage_event(connection: AsyncConnection) -> None:
        event = _orphan_usage_event(payer_hold, catalog_version, released_at_unix_ms=unix_ms_now())
        await usage_log.insert(connection, event)

    try:
        group = await ledger.void_group(
            group_id,
            idempotency_key=f"hold_group:{group_id}:orphan_void:{releaser_id}",
            also=insert_usage_event,
        )
    except (HoldAlreadyResolved, HoldExpired):
        return None
    assert group.state is HoldState.VOIDED
    log.warning(
        "orphaned_hold_group_released",
        hold_group_id=group_id,
        request_id=group.metadata.get("request_id"),
        instance_id=group.metadata.get("instance_id"),
        payer_account=payer_hold.debit_account,
        amount_nano_usd=payer_hold.amount,
    )
    return group.holds[-1]


async def _void_orphan(
    ledger: Ledger, hold: Hold, *, releaser_id: str, usage_log: UsageLog, catalog_version: str
) -> Hold | None:
    """None when someone else resolved it first (its request after all, or another process's sweeper).

    The key names the releasing instance, so of two sweepers racing for one hold exactly one voids it and
    the other is refused (HoldAlreadyResolved) rather than replayed: one usage event per released hold,
    committed in the void's own transaction (a crash between them cannot leave a release unexplained).
    """

    async def insert_usage_event(connection: AsyncConnection) -> None:
        # Inside the void's transaction no other connection may be opened: the time is read here.
        event = _orphan_usage_event(hold, catalog_version, released_at_unix_ms=unix_ms_now())
        await usage_log.insert(connection, event)

    try:
        voided = await ledger.void(
            hold.id,
            idempotency_key=f"hold:{hold.id}:orphan_void:{releaser_id}",
            also=insert_usage_event,
        )
    except (HoldAlreadyResolved, HoldExpired):
        return None
    assert voided.state is HoldState.VOIDED
    assert voided.resolved_at_unix_ms is not None
    log.warning(
        "orphaned_hold_released",
        hold_id=hold.id,
        request_id=hold.metadata.get("request_id"),
        instance_id=hold.metadata.get("instance_id"),
        payer_account=hold.debit_account,
        amount_nano_usd=hold.amount,
    )
    return voided


def _orphan_usage_event(hold: Hold, catalog_version: str, *, released_at_unix_ms: int) -> UsageEvent:
    """What the payer reads at /v1/usage/{request_id}: the request died with its process, nothing charged."""
    return UsageEvent(
        request_id=str(hold.metadata.get("request_id", f"hold:{hold.id}")),
        payer_account=hold.debit_account,
        api_key_id=None,
        outcome=ORPHAN_OUTCOME,
        model_id=None,
        provider=None,
        strategy=None,
        attempts=(),
        streamed=False,
        input_tokens=0,
        cached_input_tokens=0,
        cache_write_input_tokens=0,
        output_tokens=0,
        reasoning_tokens=0,
        usage_estimated=False,
        prices_nano_usd_per_mtok={},
        catalog_version=catalog_version,
        quote_nano_usd=hold.amount,
        cost_nano_usd=0,
        hold_id=hold.id,
        latency_ms=max(0, released_at_unix_ms - hold.created_at_unix_ms),
        time_to_first_token_ms=None,
    )
