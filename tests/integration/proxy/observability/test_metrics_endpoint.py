"""GET /metrics on a minimal app: open by default, bound to a bearer token when one is set, 404 when
metrics are disabled; the content is the registry in the text exposition format."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ledger import migrate
from proxy.api.app_keys import METRICS, SETTINGS
from proxy.api.handlers import metrics as metrics_handlers
from proxy.api.middlewares import error_middleware
from proxy.app.config import example_config_text, load_settings
from proxy.catalog import load_catalog
from proxy.db.migrate import migrate_proxy
from proxy.observability.metrics import RouterMetrics
from proxy.routing.health import InMemoryHealthTracker
from tests.fixtures.clock import FakeClock
from tests.unit.proxy.app.test_config import ENVIRON, _write


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'metrics.db'}")
    await migrate(engine)
    await migrate_proxy(engine)
    yield engine
    await engine.dispose()


async def _client(aiohttp_client: Any, tmp_path: Path, engine: AsyncEngine, **overrides: Any) -> Any:
    settings = load_settings(_write(tmp_path, example_config_text()), ENVIRON).model_copy(update=overrides)
    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = settings
    if settings.metrics_enabled:
        catalog = load_catalog()
        app[METRICS] = RouterMetrics(
            deployments=list(catalog.by_provider("openai")),
            tracker=InMemoryHealthTracker(clock=FakeClock()),
            engine=engine,
        )
    app.add_routes(metrics_handlers.routes)
    return await aiohttp_client(app)


async def test_metrics_are_open_by_default(aiohttp_client: Any, tmp_path: Path, engine: AsyncEngine) -> None:
    client = await _client(aiohttp_client, tmp_path, engine)
    response = await client.get("/metrics")
    assert response.status == 200
    text = await response.text()
    assert "# TYPE megarouter_deployment_breaker_state gauge" in text
    assert "megarouter_open_holds 0.0" in text


async def test_a_bearer_token_guards_the_metrics(
    aiohttp_client: Any, tmp_path: Path, engine: AsyncEngine
) -> None:
    client = await _client(aiohttp_client, tmp_path, engine, metrics_bearer_token=SecretStr("s3cret"))
    missing = await client.get("/metrics")
    assert missing.status == 401
    assert (await missing.json())["error"]["code"] == "invalid_metrics_token"
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    right = await client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert right.status == 200


async def test_disabled_metrics_are_not_found(
    aiohttp_client: Any, tmp_path: Path, engine: AsyncEngine
) -> None:
    client = await _client(aiohttp_client, tmp_path, engine, metrics_enabled=False)
    response = await client.get("/metrics")
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "metrics_disabled"
