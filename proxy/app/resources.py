"""One aiohttp cleanup context per resource; each is opened in order by create_app and closed in reverse.

Teardown of a context runs only if its setup finished. Nothing here lives at module level.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from eth_account import Account
from redis.asyncio import Redis
from web3 import AsyncHTTPProvider, AsyncWeb3

from ledger import Ledger, create_ledger_engine, migrate, unix_ms_now
from proxy.accounts.keys import ApiKeys
from proxy.accounts.rate_limit import TokenBuckets
from proxy.accounts.settings import signing_scope
from proxy.accounts.withdrawal_recovery import periodic_withdrawal_recovery, recover_withdrawals
from proxy.accounts.withdrawals import Withdrawals
from proxy.api.app_keys import (
    ALERT_DELIVERER,
    ALERT_DETECTORS,
    ALERTS,
    ALERTS_CLOCK,
    API_KEYS,
    BILLING,
    CATALOG,
    CHAIN_WATCHER,
    CHAIN_WEB3,
    CHALLENGE_RATE_LIMITER,
    CHART_ACCOUNTS,
    CLASSIFIER,
    DB_ENGINE,
    DISPATCHER,
    HEALTH_CLOCK,
    HEALTH_TRACKER,
    HTTP_SESSION,
    LEDGER,
    METRICS,
    MODEL_INDEX,
    ORG_BUDGET_ALERTS,
    ORG_BUDGET_LEDGER,
    ORG_CLOCK,
    ORGANIZATIONS,
    PAYMENT_GATE,
    ROUTE_PREVIEW_LIMITER,
    SERVING_INSTANCE,
    SETTINGS,
    SETTLEMENT_INTENTS,
    SETTLER,
    SIGNING_SCOPE,
    SPAN_EXPORTER,
    TOKEN_READER,
    TRACER,
    UPSTREAMS,
    USAGE_CLOCK,
    USAGE_LOG,
    WATCHER_SETTINGS,
    WITHDRAWALS,
)
from proxy.catalog import load_catalog
from proxy.chain.watcher import ChainWatcher, watcher_settings_from
from proxy.chart_accounts import ChartAccounts
from proxy.db.migrate import migrate_proxy
from proxy.governance.budgets import BudgetLedger, StoredBudgetAlerts
from proxy.governance.enforcement import OrgBudgets
from proxy.governance.rate_limits import InProcessCounters, RateLimiter, RedisCounters, WindowCounters
from proxy.governance.store import Organizations
from proxy.observability.alerts import (
    AlertDeliverer,
    Alerts,
    BreakerOpenDetector,
    BudgetThresholdDetector,
    DeliveryPolicy,
    ReconciliationBreakDetector,
    SettlementFailureDetector,
    SpendAnomalyDetector,
    UsageRollupsHourlySpend,
    WebhookEndpoint,
    evaluate_all,
)
from proxy.observability.alerts.detectors import Detector
from proxy.observability.metrics import RouterMetrics
from proxy.observability.tracing import record_usage_on_span, tracer_of, tracer_provider
from proxy.payments.gate import PaymentGate
from proxy.payments.intents import SettlementIntents
from proxy.payments.recovery import recover_settlements
from proxy.routing.candidates import ModelIndex
from proxy.routing.classifier import load_classifier_model
from proxy.routing.health import InMemoryHealthTracker, RedisHealthTracker
from proxy.serving.billing import HOLD_CODE, Billing
from proxy.serving.dispatch import Dispatcher
from proxy.serving.instances import (
    HEARTBEAT_INTERVAL_S,
    ServingInstance,
    instance_name,
    release_orphaned_holds,
)
from proxy.serving.observers import AttemptObserver, UsageObserver
from proxy.serving.upstreams import Upstreams
from proxy.serving.usage_log import UsageLog
from x402.chain import TokenReader
from x402.settle import Settler

__all__ = [
    "accounts_ctx",
    "alerts_ctx",
    "catalog_ctx",
    "chain_ctx",
    "chain_watcher_ctx",
    "database_ctx",
    "hold_expiry_ctx",
    "http_session_ctx",
    "observability_ctx",
    "payment_gate_ctx",
    "routing_ctx",
    "serving_ctx",
    "serving_instance_ctx",
    "settlement_recovery_ctx",
]

log = structlog.get_logger("megarouter.resources")
HOLD_EXPIRY_INTERVAL_S = 15.0
RECOVERY_INTERVAL_S = 30.0
UPSTREAM_CONNECT_TIMEOUT_S = 10.0
REDIS_TIMEOUT_S = 0.5
# One evaluation of one alert detector may take this long before it is abandoned (and logged).
ALERT_DETECTOR_TIMEOUT_S = 30.0


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engine_kwargs: dict[str, Any] = {}
    if not settings.database_url.startswith("sqlite"):
        engine_kwargs["pool_size"] = settings.db_pool_size_max
    engine = create_ledger_engine(settings.database_url, **engine_kwargs)
    try:
        await migrate(engine)
        await migrate_proxy(engine)
        ledger = Ledger(engine)
        app[DB_ENGINE] = engine
        app[LEDGER] = ledger
        app[CHART_ACCOUNTS] = ChartAccounts(ledger)
        app[SETTLEMENT_INTENTS] = SettlementIntents(engine)
        yield
    finally:
        await engine.dispose()


async def http_session_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    # Whole-request bounds are applied per call by the adapters; the session bounds only connecting.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=UPSTREAM_CONNECT_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        app[HTTP_SESSION] = session
        app[UPSTREAMS] = Upstreams(session, settings.providers, timeout_s=settings.upstream_timeout_s)
        yield


async def chain_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    provider = AsyncHTTPProvider(
        settings.chain_rpc_url,
        request_kwargs={"timeout": aiohttp.ClientTimeout(total=settings.rpc_timeout_s)},
    )
    w3 = AsyncWeb3(provider)
    try:
        account = Account.from_key(settings.settlement_private_key.get_secret_value())
        token_reader = TokenReader(w3, call_timeout_s=settings.rpc_timeout_s)
        app[CHAIN_WEB3] = w3
        app[TOKEN_READER] = token_reader
        app[SETTLER] = Settler(
            w3,
            account,
            reader=token_reader,
            receipt_timeout_s=settings.settle_receipt_timeout_s,
            rpc_timeout_s=settings.rpc_timeout_s,
        )
        yield
    finally:
        await provider.disconnect()


async def catalog_ctx(app: web.Application) -> AsyncIterator[None]:
    catalog = load_catalog(app[SETTINGS].catalog_overrides_path)
    app[CATALOG] = catalog
    # The catalog never changes while the app runs: routing's per-model keys are computed here, once.
    app[MODEL_INDEX] = ModelIndex.build(catalog)
    yield


async def routing_ctx(app: web.Application) -> AsyncIterator[None]:
    """Deployment health (shared through Redis when configured) and the request classifier."""
    settings = app[SETTINGS]
    app[CLASSIFIER] = load_classifier_model()
    if ROUTE_PREVIEW_LIMITER not in app:
        preview = settings.route_preview
        app[ROUTE_PREVIEW_LIMITER] = TokenBuckets(
            capacity=preview.burst, refill_interval_s=preview.refill_interval_s, keys_max=preview.clients_max
        )
    clock = app.get(HEALTH_CLOCK)  # None: each tracker's own default clock.
    if settings.redis_url is None:
        app[HEALTH_TRACKER] = InMemoryHealthTracker(policy=settings.health_policy, clock=clock)
        yield
        return
    redis_client = Redis.from_url(
        settings.redis_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
    )
    try:
        app[HEALTH_TRACKER] = RedisHealthTracker(redis_client, policy=settings.health_policy, clock=clock)
        yield
    finally:
        await redis_client.aclose()


async def serving_instance_ctx(app: web.Application) -> AsyncIterator[None]:
    """Registers this process (its holds name it) and beats its heartbeat; ends the row on a clean stop."""
    instance = ServingInstance(app[DB_ENGINE], name=instance_name(app[SETTINGS].port))
    await instance.register()
    app[SERVING_INSTANCE] = instance
    task = asyncio.create_task(_every(HEARTBEAT_INTERVAL_S, "serving_instance_heartbeat", instance.heartbeat))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await instance.end()


async def observability_ctx(app: web.Application) -> AsyncIterator[None]:
    """The app's tracer (no-op unless OTLP is configured or a test injects an exporter) and, unless
    disabled, its metrics; the provider flushes what it holds on the way out."""
    settings = app[SETTINGS]
    provider = tracer_provider(otlp_endpoint=settings.otlp_endpoint, span_exporter=app.get(SPAN_EXPORTER))
    app[TRACER] = tracer_of(provider)
    if settings.metrics_enabled:
        deployments = [model for model in app[CATALOG] if model.provider in settings.providers]
        app[METRICS] = RouterMetrics(
            deployments=deployments, tracker=app[HEALTH_TRACKER], engine=app[DB_ENGINE]
        )
    try:
        yield
    finally:
        if provider is not None:
            provider.shutdown()


async def serving_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    instance = app[SERVING_INSTANCE]
    metrics = app.get(METRICS)
    usage_observers: list[UsageObserver] = [record_usage_on_span]
    attempt_observers: list[AttemptObserver] = []
    if metrics is not None:
        usage_observers.append(metrics.usage_recorded)
        attempt_observers.append(metrics.attempt_finished)
    usage_clock = app.get(USAGE_CLOCK)  # None: the wall clock.
    app[USAGE_LOG] = (
        UsageLog(app[DB_ENGINE]) if usage_clock is None else UsageLog(app[DB_ENGINE], clock=usage_clock)
    )
    org_clock = app.get(ORG_CLOCK, time.time)
    app[ORGANIZATIONS] = Organizations(app[DB_ENGINE], clock_unix_s=org_clock)
    app[ORG_BUDGET_ALERTS] = StoredBudgetAlerts(app[DB_ENGINE])
    app[ORG_BUDGET_LEDGER] = BudgetLedger(app[LEDGER], alerts=app[ORG_BUDGET_ALERTS], clock_unix_s=org_clock)
    # Org keys' rate limits: shared by every replica through Redis when configured, else per process.
    redis_client = (
        None
        if settings.redis_url is None
        else Redis.from_url(
            settings.redis_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
    )
    counters: WindowCounters = (
        InProcessCounters(org_clock)
        if redis_client is None
        else RedisCounters(redis_client, key_prefix=settings.orgs.rate_limit_key_prefix)
    )
    app[BILLING] = Billing(
        ledger=app[LEDGER],
        accounts=app[CHART_ACCOUNTS],
        usage_log=app[USAGE_LOG],
        catalog_version=app[CATALOG].version,
        hold_timeout_s=settings.hold_timeout_s,
        instance_id=lambda: instance.id,
        observers=usage_observers,
        org_budgets=OrgBudgets(
            app[ORGANIZATIONS], app[ORG_BUDGET_LEDGER], RateLimiter(counters, clock_s=org_clock)
        ),
    )
    app[DISPATCHER] = Dispatcher(
        upstreams=app[UPSTREAMS],
        tracker=app[HEALTH_TRACKER],
        attempts_max=settings.route_attempts_max,
        deadline_s=settings.request_deadline_s,
        attempt_observers=attempt_observers,
        tracer=app[TRACER],
    )
    try:
        yield
    finally:
        if redis_client is not None:
            await redis_client.aclose()


async def payment_gate_ctx(app: web.Application) -> AsyncIterator[None]:
    app[PAYMENT_GATE] = PaymentGate(
        settings=app[SETTINGS],
        settler=app[SETTLER],
        token_reader=app[TOKEN_READER],
        intents=app[SETTLEMENT_INTENTS],
        accounts=app[CHART_ACCOUNTS],
        tracer=app[TRACER],
    )
    yield


async def _recover(app: web.Application, *, older_than_s: float) -> None:
    await recover_settlements(
        intents=app[SETTLEMENT_INTENTS],
        settler=app[SETTLER],
        accounts=app[CHART_ACCOUNTS],
        assets=app[SETTINGS].assets,
        older_than_s=older_than_s,
        upto=app[PAYMENT_GATE].upto,
    )


async def _every(interval_s: float, what: str, work: Any) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await work()
        except Exception:
            log.exception("periodic_task_failed", task=what)


async def settlement_recovery_ctx(app: web.Application) -> AsyncIterator[None]:
    """Finishes what a crash left before serving, then keeps finishing intents left pending by slow chains."""
    await _recover(app, older_than_s=0.0)
    # Only intents idle longer than a receipt wait can be orphans; younger ones belong to live requests.
    idle_s = app[SETTINGS].settle_receipt_timeout_s * 2

    async def again() -> None:
        await _recover(app, older_than_s=idle_s)

    task = asyncio.create_task(_every(RECOVERY_INTERVAL_S, "settlement_recovery", again))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _release_orphaned_holds(app: web.Application) -> None:
    await release_orphaned_holds(
        ledger=app[LEDGER],
        instance=app[SERVING_INSTANCE],
        usage_log=app[USAGE_LOG],
        hold_code=HOLD_CODE,
        catalog_version=app[CATALOG].version,
    )


async def hold_expiry_ctx(app: web.Application) -> AsyncIterator[None]:
    """Releases holds whose request died without resolving them: at once where their process is known
    dead (before serving, then periodically), else when they expire (the ledger also expires them lazily).
    """
    ledger = app[LEDGER]
    await _release_orphaned_holds(app)

    async def sweep() -> None:
        await ledger.expire_due(now_unix_ms=unix_ms_now())
        await _release_orphaned_holds(app)

    task = asyncio.create_task(_every(HOLD_EXPIRY_INTERVAL_S, "hold_expiry", sweep))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def chain_watcher_ctx(app: web.Application) -> AsyncIterator[None]:
    """Runs the watcher as a background task for the app's lifetime; needs the database and chain contexts.

    Settings come from `app[WATCHER_SETTINGS]` when set, else from `Settings` with the watcher's defaults.
    """
    settings = app.get(WATCHER_SETTINGS) or watcher_settings_from(
        app[SETTINGS], settlement_wallet=app[SETTLER].address
    )
    if not settings.enabled:
        yield
        return
    watcher = ChainWatcher(
        app[CHAIN_WEB3],
        settings=settings,
        accounts=app[CHART_ACCOUNTS],
        engine=app[DB_ENGINE],
        credit_account_for=app[ORGANIZATIONS].deposit_credit_account,
    )
    app[CHAIN_WATCHER] = watcher
    task = asyncio.create_task(watcher.run(), name="chain_watcher")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def accounts_ctx(app: web.Application) -> AsyncIterator[None]:
    """API keys, withdrawals (finishing those a crash left open before serving, then periodically), the
    signing scope (from configuration only) and the per-IP challenge rate limiter."""
    settings = app[SETTINGS].accounts
    scope = signing_scope(app[SETTINGS], settings)
    app[SIGNING_SCOPE] = scope
    if CHALLENGE_RATE_LIMITER not in app:
        app[CHALLENGE_RATE_LIMITER] = TokenBuckets(
            capacity=settings.challenge_burst_per_ip,
            refill_interval_s=settings.challenge_refill_interval_s,
            keys_max=settings.challenge_rate_ips_max,
        )
    app[API_KEYS] = ApiKeys(app[DB_ENGINE], settings, scope=scope)
    withdrawals = Withdrawals(
        engine=app[DB_ENGINE],
        accounts=app[CHART_ACCOUNTS],
        settings=app[SETTINGS],
        accounts_settings=settings,
        scope=scope,
        # Withdrawals share the settlement wallet's transaction nonces with x402 settlements.
        sender=app[SETTLER],
    )
    app[WITHDRAWALS] = withdrawals
    settler = app[SETTLER]
    await recover_withdrawals(withdrawals=withdrawals, settler=settler, older_than_s=0.0)
    idle_s = app[SETTINGS].settle_receipt_timeout_s * 2

    async def again() -> None:
        await recover_withdrawals(withdrawals=withdrawals, settler=settler, older_than_s=idle_s)

    async with periodic_withdrawal_recovery(again):
        yield


def _alert_detectors(app: web.Application, alerts: Alerts, clock: Any) -> tuple[Detector, ...]:
    settings = app[SETTINGS].alerts
    detectors: list[Detector] = [
        BreakerOpenDetector(alerts, app[HEALTH_TRACKER], open_after_s=settings.breaker_open_after_s),
        SettlementFailureDetector(alerts, app[DB_ENGINE], lookback_s=settings.lookback_s, clock=clock),
        ReconciliationBreakDetector(alerts, app[DB_ENGINE], lookback_s=settings.lookback_s, clock=clock),
        BudgetThresholdDetector(alerts, app[DB_ENGINE], lookback_s=settings.lookback_s, clock=clock),
    ]
    if settings.spend_anomaly.enabled:
        source = UsageRollupsHourlySpend(app[DB_ENGINE])
        detectors.append(SpendAnomalyDetector(alerts, source, settings=settings.spend_anomaly, clock=clock))
    return tuple(detectors)


async def alerts_ctx(app: web.Application) -> AsyncIterator[None]:
    """The alert outbox, its webhook deliverer (which first delivers what a previous run left undelivered)
    and the detectors, evaluated at start and then every `evaluate_interval_s`."""
    settings = app[SETTINGS].alerts
    clock = app.get(ALERTS_CLOCK) or time.time
    endpoints = {
        endpoint.endpoint_name: WebhookEndpoint(
            name=endpoint.endpoint_name, url=endpoint.url, secret=endpoint.secret.get_secret_value()
        )
        for endpoint in settings.endpoints
    }
    policy = DeliveryPolicy(
        attempts_max=settings.delivery_attempts_max,
        retry_base_s=settings.retry_base_s,
        retry_max_s=settings.retry_max_s,
        timeout_s=settings.delivery_timeout_s,
        lease_s=settings.lease_s,
        per_pass_max=settings.deliveries_per_pass_max,
    )
    deliverer = AlertDeliverer(
        app[DB_ENGINE], app[HTTP_SESSION], endpoints=endpoints, policy=policy, clock=clock
    )
    alerts = Alerts(app[DB_ENGINE], endpoints=list(endpoints), clock=clock, on_raised=deliverer.wake)
    detectors = _alert_detectors(app, alerts, clock)
    app[ALERTS] = alerts
    app[ALERT_DELIVERER] = deliverer
    app[ALERT_DETECTORS] = detectors

    async def detect() -> None:
        await evaluate_all(detectors, timeout_s=ALERT_DETECTOR_TIMEOUT_S)

    tasks = [
        asyncio.create_task(
            deliverer.run(poll_interval_s=settings.delivery_poll_interval_s), name="alert_delivery"
        ),
        asyncio.create_task(_every_from_now(settings.evaluate_interval_s, "alert_detectors", detect)),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _every_from_now(interval_s: float, what: str, work: Any) -> None:
    try:
        await work()
    except Exception:
        log.exception("periodic_task_failed", task=what)
    await _every(interval_s, what, work)
