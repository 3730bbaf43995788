"""Live health of deployments (one catalog model at its provider; id = catalog model id).

Owns the circuit breaker, the latency / time-to-first-token EWMAs and the sliding-window error rate.
Imports nothing from the payment or ledger side, nor from `aiohttp`.

Breaker (one per deployment):

    closed ──N consecutive failures, or error rate ≥ threshold over the window,──▶ open
           ──or any failure carrying Retry-After (open at least that long)───────▶ open
    open ──cool-down elapsed──▶ half-open: `try_acquire` grants exactly ONE probe at a time
    half-open ──probe succeeds──▶ closed (window and counters reset)
    half-open ──probe fails─────▶ open again, cool-down doubled (capped)

A probe whose outcome is never recorded (the request was cancelled, the replica died) holds its lease
for `probe_lease_s` only; after that the next `try_acquire` may probe again.

Caller errors (`bad_request`, `payload_too_large`, `context_length`) say nothing about the deployment:
they neither count as failures nor close a breaker; a probe that ends in one just gives back its lease.

The state transitions are pure functions over `DeploymentState`; the two trackers only differ in how
they make a read-modify-write atomic: `InMemoryHealthTracker` (one process: no await between read
and write) and `RedisHealthTracker` (several replicas: WATCH/MULTI optimistic transactions over one
JSON value per deployment). Both are async so the caller does not care which one it holds.

Clocks: the in-process tracker defaults to `time.monotonic`. The Redis tracker stores times that
other replicas read, so it defaults to `time.time` (wall clock; NTP-synchronised hosts agree far more
closely than breaker cool-downs need). Tests inject a fake clock into either.
"""

from __future__ import annotations

import asyncio
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import Literal, TypeVar

import structlog
from pydantic import BaseModel, ConfigDict, Field, model_validator
from redis.asyncio import Redis
from redis.exceptions import RedisError, WatchError

from proxy.routing.errors import HealthStoreUnavailable

__all__ = [
    "CALLER_ERROR_KINDS",
    "BreakerState",
    "Clock",
    "DeploymentHealth",
    "DeploymentState",
    "HealthPolicy",
    "HealthTracker",
    "InMemoryHealthTracker",
    "RedisHealthTracker",
]

log = structlog.get_logger("megarouter.routing.health")

Clock = Callable[[], float]
BreakerState = Literal["closed", "open", "half_open"]
ResultT = TypeVar("ResultT")

# Upstream error kinds that are the caller's fault (proxy/providers/errors.py names them): another
# deployment would refuse the same request, so they say nothing about this deployment's health.
CALLER_ERROR_KINDS: frozenset[str] = frozenset({"bad_request", "payload_too_large", "context_length"})

# A bound on how many deployments one tracker remembers: the catalog has a few hundred.
DEPLOYMENTS_MAX = 100_000


class HealthPolicy(BaseModel):
    """Tuning of the EWMAs, the error window and the breaker; the defaults suit interactive LLM traffic."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Weight of the newest sample: 0.3 forgets a latency spike after about ten requests.
    ewma_alpha: float = Field(default=0.3, gt=0, le=1)
    error_window_s: float = Field(default=60.0, gt=0)
    # The window is kept as buckets of this width so its size is bounded whatever the traffic.
    error_bucket_s: float = Field(default=5.0, gt=0)
    failures_to_open: int = Field(default=5, ge=1, le=1_000)
    # Also open when at least this share of the window's requests failed (with enough requests to judge).
    error_rate_to_open: float = Field(default=0.5, gt=0, le=1)
    window_requests_to_judge_min: int = Field(default=20, ge=1)
    # Cool-down after opening on failures; doubles on each failed probe, up to open_max_s.
    open_base_s: float = Field(default=10.0, gt=0)
    open_max_s: float = Field(default=300.0, gt=0)
    # Retry-After is honoured up to this bound, so one absurd header cannot disable a deployment for days.
    retry_after_max_s: float = Field(default=3_600.0, gt=0)
    probe_lease_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> HealthPolicy:
        buckets = self.error_window_s / self.error_bucket_s
        if not (1 <= buckets <= 120) or abs(buckets - round(buckets)) > 1e-9:
            raise ValueError("error_window_s must be a whole multiple (1..120) of error_bucket_s")
        if self.open_base_s > self.open_max_s:
            raise ValueError("open_base_s must not exceed open_max_s")
        return self

    @property
    def error_buckets(self) -> int:
        return round(self.error_window_s / self.error_bucket_s)


class DeploymentState(BaseModel):
    """What is stored per deployment (in memory or as JSON in Redis). Times are the tracker's clock."""

    model_config = ConfigDict(extra="forbid")

    breaker: BreakerState = "closed"
    open_until_s: float = 0.0
    probe_started_s: float | None = None
    consecutive_failures: int = 0
    reopen_count: int = 0
    latency_ewma_s: float | None = None
    ttft_ewma_s: float | None = None
    # [bucket index = floor(t / error_bucket_s), successes, failures], oldest first.
    window: list[tuple[int, int, int]] = Field(default_factory=list)
    last_failure_kind: str | None = None
    successes_total: int = 0
    failures_total: int = 0
    # When the breaker last left closed; kept through half-open probes that fail, cleared when it closes.
    opened_at_s: float | None = None


class DeploymentHealth(BaseModel):
    """A read-only view of one deployment's health, as strategies and `GET /v1/deployments` use it."""

    model_config = ConfigDict(frozen=True)

    deployment_id: str
    # "half_open" also when the cool-down has elapsed but no probe has been granted yet.
    breaker: BreakerState
    open_remaining_s: float
    probe_in_flight: bool
    latency_ewma_s: float | None
    ttft_ewma_s: float | None
    error_rate: float
    requests_in_window: int
    failures_in_window: int
    consecutive_failures: int
    last_failure_kind: str | None
    successes_total: int
    failures_total: int
    # Seconds since the breaker left closed without closing again (0 while closed); alerts read it, and
    # `opened_at_s` (the tracker's clock) names the episode.
    unhealthy_for_s: float = 0.0
    opened_at_s: float | None = None

    @property
    def admits_traffic(self) -> bool:
        """False while the breaker is open and cooling down (try_acquire would refuse)."""
        return self.breaker != "open"


# ---------------------------------------------------------------- pure transitions


def _ewma(previous: float | None, sample: float, alpha: float) -> float:
    return sample if previous is None else alpha * sample + (1 - alpha) * previous


def _pruned_window(state: DeploymentState, now_s: float, policy: HealthPolicy) -> list[tuple[int, int, int]]:
    current = math.floor(now_s / policy.error_bucket_s)
    return [bucket for bucket in state.window if bucket[0] > current - policy.error_buckets]


def _window_counted(
    state: DeploymentState, now_s: float, policy: HealthPolicy, *, failed: bool
) -> list[tuple[int, int, int]]:
    window = _pruned_window(state, now_s, policy)
    current = math.floor(now_s / policy.error_bucket_s)
    if window and window[-1][0] == current:
        index, successes, failures = window[-1]
        window[-1] = (index, successes + (not failed), failures + failed)
    else:
        window.append((current, int(not failed), int(failed)))
    assert len(window) <= policy.error_buckets
    return window


def _window_counts(state: DeploymentState, now_s: float, policy: HealthPolicy) -> tuple[int, int]:
    """(requests, failures) inside the sliding window ending now."""
    window = _pruned_window(state, now_s, policy)
    requests = sum(successes + failures for _, successes, failures in window)
    failures = sum(failures for _, _, failures in window)
    return requests, failures


def _probe_live(state: DeploymentState, now_s: float, policy: HealthPolicy) -> bool:
    return state.probe_started_s is not None and now_s < state.probe_started_s + policy.probe_lease_s


def apply_acquire(
    state: DeploymentState, now_s: float, policy: HealthPolicy
) -> tuple[DeploymentState | None, bool]:
    """(new state or None when unchanged, granted). Only half-open can change state: it grants one probe."""
    if state.breaker == "closed":
        return None, True
    if state.breaker == "open" and now_s < state.open_until_s:
        return None, False
    if state.breaker == "half_open" and _probe_live(state, now_s, policy):
        return None, False
    probing = state.model_copy(update={"breaker": "half_open", "probe_started_s": now_s})
    return probing, True


def apply_success(
    state: DeploymentState, now_s: float, policy: HealthPolicy, *, latency_s: float, ttft_s: float | None
) -> DeploymentState:
    update: dict[str, object] = {
        "latency_ewma_s": _ewma(state.latency_ewma_s, latency_s, policy.ewma_alpha),
        "ttft_ewma_s": state.ttft_ewma_s
        if ttft_s is None
        else _ewma(state.ttft_ewma_s, ttft_s, policy.ewma_alpha),
        "successes_total": state.successes_total + 1,
    }
    cooling = state.breaker == "open" and now_s < state.open_until_s
    if cooling:
        # A request admitted before the breaker opened finished late: evidence, but not a probe.
        update["window"] = _window_counted(state, now_s, policy, failed=False)
    elif state.breaker == "closed":
        update["window"] = _window_counted(state, now_s, policy, failed=False)
        update["consecutive_failures"] = 0
    else:
        # The probe (or a straggler after the cool-down) succeeded: start over with a clean window.
        update.update(
            breaker="closed",
            open_until_s=0.0,
            probe_started_s=None,
            consecutive_failures=0,
            reopen_count=0,
            opened_at_s=None,
            window=_window_counted(DeploymentState(), now_s, policy, failed=False),
        )
    return state.model_copy(update=update)


def _open_duration_s(policy: HealthPolicy, *, reopen_count: int, retry_after_s: float | None) -> float:
    backoff_s = min(policy.open_max_s, policy.open_base_s * (1 << min(reopen_count, 30)))
    if retry_after_s is None:
        return backoff_s
    return max(backoff_s, min(max(retry_after_s, 0.0), policy.retry_after_max_s))


def apply_failure(
    state: DeploymentState, now_s: float, policy: HealthPolicy, *, kind: str, retry_after_s: float | None
) -> DeploymentState | None:
    """The state after a failed request, or None when the failure says nothing about the deployment."""
    if kind in CALLER_ERROR_KINDS:
        if state.breaker == "half_open" and state.probe_started_s is not None:
            return state.model_copy(update={"probe_started_s": None})
        return None
    window = _window_counted(state, now_s, policy, failed=True)
    counted = state.model_copy(
        update={
            "window": window,
            "consecutive_failures": state.consecutive_failures + 1,
            "failures_total": state.failures_total + 1,
            "last_failure_kind": kind,
        }
    )
    if state.breaker == "half_open" or (state.breaker == "open" and now_s >= state.open_until_s):
        reopen_count = state.reopen_count + 1
        duration_s = _open_duration_s(policy, reopen_count=reopen_count, retry_after_s=retry_after_s)
        return counted.model_copy(
            update={
                "breaker": "open",
                "open_until_s": now_s + duration_s,
                "probe_started_s": None,
                "reopen_count": reopen_count,
                "opened_at_s": now_s if state.opened_at_s is None else state.opened_at_s,
            }
        )
    if state.breaker == "open":
        if retry_after_s is None:
            return counted
        until_s = now_s + _open_duration_s(
            policy, reopen_count=state.reopen_count, retry_after_s=retry_after_s
        )
        return counted.model_copy(update={"open_until_s": max(state.open_until_s, until_s)})
    requests, failures = _window_counts(counted, now_s, policy)
    too_many_in_a_row = counted.consecutive_failures >= policy.failures_to_open
    too_many_in_window = (
        requests >= policy.window_requests_to_judge_min and failures >= policy.error_rate_to_open * requests
    )
    if retry_after_s is None and not too_many_in_a_row and not too_many_in_window:
        return counted
    duration_s = _open_duration_s(policy, reopen_count=0, retry_after_s=retry_after_s)
    return counted.model_copy(
        update={
            "breaker": "open",
            "open_until_s": now_s + duration_s,
            "reopen_count": 0,
            "opened_at_s": now_s,
        }
    )


def health_view(
    deployment_id: str, state: DeploymentState, now_s: float, policy: HealthPolicy
) -> DeploymentHealth:
    """The snapshot of a stored state at `now_s`."""
    breaker: BreakerState = state.breaker
    if breaker == "open" and now_s >= state.open_until_s:
        breaker = "half_open"
    requests, failures = _window_counts(state, now_s, policy)
    view = DeploymentHealth(
        deployment_id=deployment_id,
        breaker=breaker,
        open_remaining_s=max(0.0, state.open_until_s - now_s) if breaker == "open" else 0.0,
        probe_in_flight=breaker == "half_open" and _probe_live(state, now_s, policy),
        latency_ewma_s=state.latency_ewma_s,
        ttft_ewma_s=state.ttft_ewma_s,
        error_rate=failures / requests if requests else 0.0,
        requests_in_window=requests,
        failures_in_window=failures,
        consecutive_failures=state.consecutive_failures,
        last_failure_kind=state.last_failure_kind,
        successes_total=state.successes_total,
        failures_total=state.failures_total,
        unhealthy_for_s=0.0
        if breaker == "closed" or state.opened_at_s is None
        else max(0.0, now_s - state.opened_at_s),
        opened_at_s=None if breaker == "closed" else state.opened_at_s,
    )
    assert 0.0 <= view.error_rate <= 1.0
    return view


def _log_transition(
    deployment_id: str, before: DeploymentState, after: DeploymentState | None, now_s: float
) -> None:
    if after is None or after.breaker == before.breaker:
        return
    if after.breaker == "open":
        log.warning(
            "breaker_opened",
            deployment=deployment_id,
            open_for_s=round(after.open_until_s - now_s, 3),
            consecutive_failures=after.consecutive_failures,
            failure_kind=after.last_failure_kind,
        )
    elif after.breaker == "closed":
        log.info("breaker_closed", deployment=deployment_id)
    else:
        log.info("breaker_half_open_probe", deployment=deployment_id)


# ---------------------------------------------------------------- trackers


class HealthTracker(ABC):
    """Records request outcomes per deployment and answers "may I send one now?" and "how healthy is it?".

    Subclasses only provide an atomic read-modify-write (`_update`) and a bulk read (`_load`).
    """

    def __init__(self, *, policy: HealthPolicy, clock: Clock) -> None:
        self.policy = policy
        self._clock = clock

    async def record_success(
        self, deployment_id: str, *, latency_s: float, ttft_s: float | None = None
    ) -> None:
        """A request to this deployment completed; `latency_s` is the whole call, `ttft_s` the first token."""
        assert latency_s >= 0, latency_s
        assert ttft_s is None or ttft_s >= 0, ttft_s

        def change(state: DeploymentState, now_s: float) -> tuple[DeploymentState | None, None]:
            after = apply_success(state, now_s, self.policy, latency_s=latency_s, ttft_s=ttft_s)
            _log_transition(deployment_id, state, after, now_s)
            return after, None

        await self._update(deployment_id, change)

    async def record_failure(
        self, deployment_id: str, *, kind: str, retry_after_s: float | None = None
    ) -> None:
        """A request to this deployment failed with an upstream error `kind` (proxy/providers/errors.py)."""
        assert kind, "failure kind must be named"
        assert retry_after_s is None or retry_after_s >= 0, retry_after_s

        def change(state: DeploymentState, now_s: float) -> tuple[DeploymentState | None, None]:
            after = apply_failure(state, now_s, self.policy, kind=kind, retry_after_s=retry_after_s)
            _log_transition(deployment_id, state, after, now_s)
            return after, None

        await self._update(deployment_id, change)

    async def try_acquire(self, deployment_id: str) -> bool:
        """May a request go to this deployment now? Closed: yes. Open: no. Half-open: one probe at a time."""

        def change(state: DeploymentState, now_s: float) -> tuple[DeploymentState | None, bool]:
            after, granted = apply_acquire(state, now_s, self.policy)
            _log_transition(deployment_id, state, after, now_s)
            return after, granted

        return await self._update(deployment_id, change)

    async def snapshot(self, deployment_id: str) -> DeploymentHealth:
        """Health of one deployment; a deployment never seen is closed with no samples."""
        return (await self.snapshots([deployment_id]))[deployment_id]

    async def snapshots(self, deployment_ids: Iterable[str] | None = None) -> dict[str, DeploymentHealth]:
        """Health of the given deployments (all of them, fresh ones included), or of every one seen."""
        ids = None if deployment_ids is None else list(dict.fromkeys(deployment_ids))
        states = await self._load(ids)
        now_s = self._clock()
        wanted = sorted(states) if ids is None else ids
        return {i: health_view(i, states.get(i) or DeploymentState(), now_s, self.policy) for i in wanted}

    @abstractmethod
    async def _update(
        self,
        deployment_id: str,
        change: Callable[[DeploymentState, float], tuple[DeploymentState | None, ResultT]],
    ) -> ResultT:
        """Apply `change(state, now)` atomically; store its new state unless it returned None."""

    @abstractmethod
    async def _load(self, deployment_ids: Sequence[str] | None) -> dict[str, DeploymentState]:
        """Stored states of these deployments (missing ones left out), or of all when None."""


class InMemoryHealthTracker(HealthTracker):
    """Health for one process. Atomic because nothing awaits between reading and writing a state."""

    def __init__(self, *, policy: HealthPolicy | None = None, clock: Clock | None = None) -> None:
        super().__init__(policy=policy or HealthPolicy(), clock=clock or time.monotonic)
        self._states: dict[str, DeploymentState] = {}

    async def _update(
        self,
        deployment_id: str,
        change: Callable[[DeploymentState, float], tuple[DeploymentState | None, ResultT]],
    ) -> ResultT:
        assert deployment_id
        state = self._states.get(deployment_id) or DeploymentState()
        after, result = change(state, self._clock())
        if after is not None:
            assert deployment_id in self._states or len(self._states) < DEPLOYMENTS_MAX
            self._states[deployment_id] = after
        return result

    async def _load(self, deployment_ids: Sequence[str] | None) -> dict[str, DeploymentState]:
        if deployment_ids is None:
            return dict(self._states)
        return {i: self._states[i] for i in deployment_ids if i in self._states}


class RedisHealthTracker(HealthTracker):
    """Health shared by every replica that uses the same Redis and key prefix.

    One JSON value per deployment under `<prefix>d:<id>` (expiring after `state_ttl_s` without
    writes) and a set `<prefix>ids` of the ids seen. Updates are WATCH/MULTI transactions, retried
    up to `retries_max` times when another replica wrote first; every call is bounded by
    `op_timeout_s`. Failures raise `HealthStoreUnavailable`: the caller decides whether to route blind.
    The Redis client belongs to the app (created and closed in its cleanup context).
    """

    def __init__(
        self,
        redis: Redis,
        *,
        key_prefix: str = "megarouter:health:",
        policy: HealthPolicy | None = None,
        clock: Clock | None = None,
        op_timeout_s: float = 0.5,
        retries_max: int = 16,
        state_ttl_s: int = 86_400,
    ) -> None:
        assert key_prefix, "a key prefix keeps deployments apart from other users of the Redis"
        assert op_timeout_s > 0
        assert 1 <= retries_max <= 1_000
        assert state_ttl_s > 0
        super().__init__(policy=policy or HealthPolicy(), clock=clock or time.time)
        self._redis = redis
        self._prefix = key_prefix
        self._op_timeout_s = op_timeout_s
        self._retries_max = retries_max
        self._state_ttl_s = state_ttl_s

    def _key(self, deployment_id: str) -> str:
        return f"{self._prefix}d:{deployment_id}"

    @property
    def _ids_key(self) -> str:
        return f"{self._prefix}ids"

    async def _update(
        self,
        deployment_id: str,
        change: Callable[[DeploymentState, float], tuple[DeploymentState | None, ResultT]],
    ) -> ResultT:
        assert deployment_id
        key = self._key(deployment_id)
        try:
            async with asyncio.timeout(self._op_timeout_s), self._redis.pipeline(transaction=True) as pipe:
                for _ in range(self._retries_max):
                    try:
                        await pipe.watch(key)
                        state = _decode_state(await pipe.get(key))
                        after, result = change(state, self._clock())
                        if after is None:
                            await pipe.unwatch()  # type: ignore[no-untyped-call]
                            return result
                        pipe.multi()  # type: ignore[no-untyped-call]
                        pipe.set(key, after.model_dump_json(), ex=self._state_ttl_s)
                        pipe.sadd(self._ids_key, deployment_id)
                        await pipe.execute()
                        return result
                    except WatchError:
                        continue
        except (RedisError, OSError, TimeoutError) as error:
            raise HealthStoreUnavailable(f"health store failed for {deployment_id}: {error!r}") from error
        raise HealthStoreUnavailable(
            f"health store contention: {self._retries_max} retries for {deployment_id}"
        )

    async def _load(self, deployment_ids: Sequence[str] | None) -> dict[str, DeploymentState]:
        try:
            async with asyncio.timeout(self._op_timeout_s):
                if deployment_ids is None:
                    members = await self._redis.smembers(self._ids_key)
                    ids = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)
                else:
                    ids = list(deployment_ids)
                assert len(ids) <= DEPLOYMENTS_MAX
                if not ids:
                    return {}
                raws = await self._redis.mget([self._key(i) for i in ids])
        except (RedisError, OSError, TimeoutError) as error:
            raise HealthStoreUnavailable(f"health store read failed: {error!r}") from error
        return {i: _decode_state(raw) for i, raw in zip(ids, raws, strict=True) if raw is not None}


def _decode_state(raw: bytes | str | None) -> DeploymentState:
    if raw is None:
        return DeploymentState()
    return DeploymentState.model_validate_json(raw)
