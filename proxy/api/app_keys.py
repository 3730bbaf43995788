"""Every typed aiohttp AppKey in one module, UPPER_SNAKE so no function name can shadow one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace import Tracer
from sqlalchemy.ext.asyncio import AsyncEngine
from web3 import AsyncWeb3

from ledger import Ledger
from proxy.accounts.credit_return import CreditReturns
from proxy.accounts.keys import ApiKeys
from proxy.accounts.rate_limit import TokenBuckets
from proxy.accounts.sign_in_with_x import WalletSignIns
from proxy.accounts.siwe import SiweScope
from proxy.accounts.withdrawals import Withdrawals
from proxy.api.dashboard.assets import DashboardAssets
from proxy.api.dashboard.sessions import DashboardSessions
from proxy.catalog import Catalog
from proxy.chain.watcher import ChainWatcher, WatcherSettings
from proxy.chart_accounts import ChartAccounts
from proxy.governance.budgets import BudgetLedger, StoredBudgetAlerts
from proxy.governance.store import Organizations
from proxy.observability.alerts import AlertDeliverer, Alerts, Detector
from proxy.observability.metrics import RouterMetrics
from proxy.payments.gate import PaymentGate
from proxy.payments.intents import SettlementIntents
from proxy.routing.candidates import ModelIndex
from proxy.routing.classifier import ClassifierModel
from proxy.routing.health import Clock, HealthTracker
from proxy.serving.billing import Billing
from proxy.serving.dispatch import Dispatcher
from proxy.serving.instances import ServingInstance
from proxy.serving.upstreams import Upstreams
from proxy.serving.usage_log import UsageLog
from proxy.settings import Settings
from x402.chain import TokenReader
from x402.settle import Settler

__all__ = [
    "ALERTS",
    "ALERTS_CLOCK",
    "ALERT_DELIVERER",
    "ALERT_DETECTORS",
    "API_KEYS",
    "BILLING",
    "CATALOG",
    "CHAIN_WATCHER",
    "CHAIN_WEB3",
    "CHALLENGE_RATE_LIMITER",
    "CHART_ACCOUNTS",
    "CLASSIFIER",
    "CREDIT_RETURNS",
    "DASHBOARD_ASSETS",
    "DASHBOARD_SESSIONS",
    "DB_ENGINE",
    "DISPATCHER",
    "HEALTH_CLOCK",
    "HEALTH_TRACKER",
    "HTTP_SESSION",
    "LEDGER",
    "METRICS",
    "MODEL_INDEX",
    "ORGANIZATIONS",
    "ORG_BUDGET_ALERTS",
    "ORG_BUDGET_LEDGER",
    "ORG_CLOCK",
    "PAYMENT_GATE",
    "ROUTE_PREVIEW_LIMITER",
    "SERVING_INSTANCE",
    "SETTINGS",
    "SETTLEMENT_INTENTS",
    "SETTLER",
    "SIGNING_SCOPE",
    "SIGN_IN_RATE_LIMITER",
    "SPAN_EXPORTER",
    "TOKEN_READER",
    "TRACER",
    "UPSTREAMS",
    "USAGE_CLOCK",
    "USAGE_LOG",
    "WALLET_SIGN_INS",
    "WATCHER_SETTINGS",
    "WITHDRAWALS",
]

SETTINGS = web.AppKey("SETTINGS", Settings)
DB_ENGINE = web.AppKey("DB_ENGINE", AsyncEngine)
LEDGER = web.AppKey("LEDGER", Ledger)
CHART_ACCOUNTS = web.AppKey("CHART_ACCOUNTS", ChartAccounts)
SETTLEMENT_INTENTS = web.AppKey("SETTLEMENT_INTENTS", SettlementIntents)
HTTP_SESSION = web.AppKey("HTTP_SESSION", aiohttp.ClientSession)
CHAIN_WEB3 = web.AppKey("CHAIN_WEB3", AsyncWeb3[Any])
SETTLER = web.AppKey("SETTLER", Settler)
TOKEN_READER = web.AppKey("TOKEN_READER", TokenReader)
CATALOG = web.AppKey("CATALOG", Catalog)
MODEL_INDEX = web.AppKey("MODEL_INDEX", ModelIndex)
PAYMENT_GATE = web.AppKey("PAYMENT_GATE", PaymentGate)
UPSTREAMS = web.AppKey("UPSTREAMS", Upstreams)
HEALTH_TRACKER = web.AppKey("HEALTH_TRACKER", HealthTracker)
# Set only when create_app is given a clock (tests): breakers and error windows then run on it.
HEALTH_CLOCK: web.AppKey[Clock] = web.AppKey("HEALTH_CLOCK")
CLASSIFIER = web.AppKey("CLASSIFIER", ClassifierModel)
USAGE_LOG = web.AppKey("USAGE_LOG", UsageLog)
BILLING = web.AppKey("BILLING", Billing)
DISPATCHER = web.AppKey("DISPATCHER", Dispatcher)
SERVING_INSTANCE = web.AppKey("SERVING_INSTANCE", ServingInstance)
API_KEYS = web.AppKey("API_KEYS", ApiKeys)
WITHDRAWALS = web.AppKey("WITHDRAWALS", Withdrawals)
# The domain, URI and chain id every signed message names; derived from configuration at startup.
SIGNING_SCOPE = web.AppKey("SIGNING_SCOPE", SiweScope)
# Challenges per client IP. Optional before startup (a test injects one with its own clock).
CHALLENGE_RATE_LIMITER = web.AppKey("CHALLENGE_RATE_LIMITER", TokenBuckets)
# Optional before startup: absent means the watcher settings derived from SETTINGS.
WATCHER_SETTINGS = web.AppKey("WATCHER_SETTINGS", WatcherSettings)
CHAIN_WATCHER = web.AppKey("CHAIN_WATCHER", ChainWatcher)
# Set only when metrics are enabled: the app's own Prometheus registry and the pipeline's observers.
METRICS = web.AppKey("METRICS", RouterMetrics)
# The app's tracer: the no-op tracer unless an OTLP endpoint is configured or a test injects SPAN_EXPORTER.
TRACER = web.AppKey("TRACER", Tracer)
SPAN_EXPORTER = web.AppKey("SPAN_EXPORTER", SpanExporter)
# Returning payers (issue 14): keyless wallets signing in with x402's sign-in-with-x, set only when enabled,
# and the per-IP bucket of proofs checked (optional before startup: a test injects one with its own clock).
WALLET_SIGN_INS = web.AppKey("WALLET_SIGN_INS", WalletSignIns)
SIGN_IN_RATE_LIMITER = web.AppKey("SIGN_IN_RATE_LIMITER", TokenBuckets)
# The operator's credit-return policy, set only when `[returning_payers] credit_return_threshold_usd` is.
CREDIT_RETURNS = web.AppKey("CREDIT_RETURNS", CreditReturns)

# Alerts (issue 12): the outbox, its webhook deliverer and its detectors.
ALERTS = web.AppKey("ALERTS", Alerts)
ALERT_DELIVERER = web.AppKey("ALERT_DELIVERER", AlertDeliverer)
ALERT_DETECTORS: web.AppKey[tuple[Detector, ...]] = web.AppKey("ALERT_DETECTORS")
# Optional before startup (tests): unix seconds for alert scheduling and spend hours; default time.time.
ALERTS_CLOCK: web.AppKey[Clock] = web.AppKey("ALERTS_CLOCK")
# Optional before startup (tests, or create_app(usage_clock=...)): what stamps usage events' created_at,
# and so analytics buckets; default the wall clock.
USAGE_CLOCK: web.AppKey[Callable[[], datetime]] = web.AppKey("USAGE_CLOCK")

# Routing (issue 13): POST /v1/route/preview's rate limit per key or client IP. Optional before startup
# (a test injects one with its own clock).
ROUTE_PREVIEW_LIMITER = web.AppKey("ROUTE_PREVIEW_LIMITER", TokenBuckets)

# The web dashboard: its session cookie's key and pending login links, and its static files (bytes by name).
DASHBOARD_SESSIONS = web.AppKey("DASHBOARD_SESSIONS", DashboardSessions)
DASHBOARD_ASSETS = web.AppKey("DASHBOARD_ASSETS", DashboardAssets)

# Organizations (proxy/governance): the org store, budgets in the ledger, stored threshold crossings, and
# (optional before startup, tests) the clock of budget periods and org records in unix seconds.
ORGANIZATIONS = web.AppKey("ORGANIZATIONS", Organizations)
ORG_BUDGET_LEDGER = web.AppKey("ORG_BUDGET_LEDGER", BudgetLedger)
ORG_BUDGET_ALERTS = web.AppKey("ORG_BUDGET_ALERTS", StoredBudgetAlerts)
ORG_CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("ORG_CLOCK")
