"""GET /v1/deployments: every routable deployment (a catalog model at a configured provider), with health."""

from __future__ import annotations

from aiohttp import web

from proxy.api.app_keys import CATALOG, HEALTH_TRACKER, UPSTREAMS

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get("/v1/deployments")
async def list_deployments(request: web.Request) -> web.Response:
    app = request.app
    providers = app[UPSTREAMS].providers
    wanted_model = request.query.get("model")
    wanted_provider = request.query.get("provider")
    models = [
        model
        for model in app[CATALOG]
        if model.provider in providers
        and (wanted_model is None or model.id == wanted_model)
        and (wanted_provider is None or model.provider == wanted_provider)
    ]
    health = await app[HEALTH_TRACKER].snapshots([model.id for model in models])
    data = [
        {
            "id": model.id,
            "object": "deployment",
            "model": model.upstream_model,
            "provider": model.provider,
            "health": health[model.id].model_dump(mode="json") if model.id in health else None,
        }
        for model in models
    ]
    return web.json_response({"object": "list", "data": data})
