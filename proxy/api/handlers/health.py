"""GET /healthz: the process serves, its database answers and its chain answers."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import text

from proxy.api.app_keys import CHAIN_WEB3, DB_ENGINE

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    try:
        async with request.app[DB_ENGINE].connect() as connection:
            await connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as error:
        checks["database"] = f"error: {type(error).__name__}"
    try:
        await request.app[CHAIN_WEB3].eth.block_number
        checks["chain"] = "ok"
    except Exception as error:
        checks["chain"] = f"error: {type(error).__name__}"
    healthy = all(value == "ok" for value in checks.values())
    return web.json_response(
        {"status": "ok" if healthy else "degraded", "checks": checks}, status=200 if healthy else 503
    )
