"""The app factory: builds the aiohttp application and starts nothing, so tests can make many.

Every cleanup context and every route is added here, in one place.
"""

from __future__ import annotations

from aiohttp import web
from opentelemetry.sdk.trace.export import SpanExporter

from proxy.api.app_keys import HEALTH_CLOCK, SETTINGS, SPAN_EXPORTER
from proxy.api.handlers import (
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
    stripe_webhook,
    topup,
    usage,
)
from proxy.api.middlewares import cors_middleware, error_middleware, request_id_middleware
from proxy.app.logging_setup import configure_logging
from proxy.app.resources import (
    accounts_ctx,
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
from proxy.routing.health import Clock
from proxy.settings import Settings

__all__ = ["create_app"]


def create_app(
    settings: Settings, *, clock: Clock | None = None, span_exporter: SpanExporter | None = None
) -> web.Application:
    """`clock` (seconds) drives deployment health and breakers; tests inject one that moves when told.
    `span_exporter` receives every span synchronously (tests pass the SDK's InMemorySpanExporter)."""
    configure_logging(settings.log_format)
    app = web.Application(
        middlewares=[request_id_middleware, cors_middleware, error_middleware],
        client_max_size=settings.request_body_bytes_max,
    )
    app[SETTINGS] = settings
    if clock is not None:
        app[HEALTH_CLOCK] = clock
    if span_exporter is not None:
        app[SPAN_EXPORTER] = span_exporter
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
    ):
        app.add_routes(handlers.routes)
    return app
