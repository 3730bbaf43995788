"""The app factory: builds the aiohttp application and starts nothing, so tests can make many.

Every cleanup context and every route is added here, in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiohttp import web
from opentelemetry.sdk.trace.export import SpanExporter

from proxy.api.app_keys import (
    DASHBOARD_ASSETS,
    DASHBOARD_SESSIONS,
    HEALTH_CLOCK,
    SETTINGS,
    SPAN_EXPORTER,
    USAGE_CLOCK,
)
from proxy.api.dashboard import data as dashboard_data
from proxy.api.dashboard import pages as dashboard_pages
from proxy.api.dashboard.assets import load_dashboard_assets
from proxy.api.dashboard.sessions import DashboardSessions
from proxy.api.handlers import (
    alerts,
    analytics,
    chat,
    credits,
    deployments,
    embeddings,
    health,
    keys,
    messages,
    metrics,
    models,
    openapi,
    orgs,
    responses,
    route_preview,
    stripe_webhook,
    topup,
    usage,
)
from proxy.api.middlewares import cors_middleware, error_middleware, request_id_middleware
from proxy.api.x402_discovery import routes as x402_discovery_routes
from proxy.api.x402_discovery import x402_extensions_middleware
from proxy.app.logging_setup import configure_logging
from proxy.app.resources import (
    accounts_ctx,
    alerts_ctx,
    catalog_ctx,
    chain_ctx,
    chain_watcher_ctx,
    database_ctx,
    hold_expiry_ctx,
    http_session_ctx,
    observability_ctx,
    payment_gate_ctx,
    routing_ctx,
    serving_ctx,
    serving_instance_ctx,
    settlement_recovery_ctx,
)
from proxy.app.returning_payers import returning_payers_ctx
from proxy.routing.health import Clock
from proxy.settings import Settings

__all__ = ["create_app"]


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    span_exporter: SpanExporter | None = None,
    usage_clock: Callable[[], datetime] | None = None,
) -> web.Application:
    """`clock` (seconds) drives deployment health and breakers; tests inject one that moves when told.
    `span_exporter` receives every span synchronously (tests pass the SDK's InMemorySpanExporter).
    `usage_clock` stamps usage events (and so analytics buckets): tests spread traffic over hours with it."""
    configure_logging(settings.log_format)
    app = web.Application(
        # x402_extensions_middleware sits inside error_middleware: it completes a 402 before it is rendered.
        middlewares=[request_id_middleware, cors_middleware, error_middleware, x402_extensions_middleware],
        client_max_size=settings.request_body_bytes_max,
    )
    app[SETTINGS] = settings
    if clock is not None:
        app[HEALTH_CLOCK] = clock
    if span_exporter is not None:
        app[SPAN_EXPORTER] = span_exporter
    if usage_clock is not None:
        app[USAGE_CLOCK] = usage_clock
    # Opened in this order, closed in reverse; recovery runs before the first request is served.
    app.cleanup_ctx.extend(
        [
            database_ctx,
            http_session_ctx,
            chain_ctx,
            catalog_ctx,
            routing_ctx,
            serving_instance_ctx,
            observability_ctx,
            serving_ctx,
            payment_gate_ctx,
            settlement_recovery_ctx,
            hold_expiry_ctx,
            chain_watcher_ctx,
            accounts_ctx,
            returning_payers_ctx,
            alerts_ctx,
        ]
    )
    for handlers in (
        health,
        models,
        chat,
        responses,
        messages,
        embeddings,
        deployments,
        topup,
        usage,
        keys,
        credits,
        orgs,
        stripe_webhook,
        openapi,
        metrics,
        alerts,
        route_preview,
        analytics,
    ):
        app.add_routes(handlers.routes)
    app.add_routes(x402_discovery_routes)
    if settings.dashboard.enabled:
        admin_key = settings.admin_token
        app[DASHBOARD_SESSIONS] = DashboardSessions(
            settings.dashboard, admin_key=None if admin_key is None else admin_key.get_secret_value()
        )
        app[DASHBOARD_ASSETS] = load_dashboard_assets()
        app.add_routes(dashboard_pages.routes)
        app.add_routes(dashboard_data.routes)
    return app
