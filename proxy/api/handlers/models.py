"""GET /v1/models and /v1/models/{id}: the catalog in OpenAI's list shape, with prices and capabilities."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from proxy.api.app_keys import CATALOG
from proxy.catalog import CatalogModel, UnknownModel
from proxy.errors import NotFound

__all__ = ["model_entry", "routes"]

routes = web.RouteTableDef()


def model_entry(model: CatalogModel, *, catalog_version: str) -> dict[str, Any]:
    return {
        "id": model.id,
        "object": "model",
        "created": 0,
        "owned_by": model.provider,
        "name": model.display_name,
        "context_window": model.context_window_tokens,
        "max_output_tokens": model.max_output_tokens,
        "pricing": {
            "unit": "nano_usd_per_million_tokens",
            "input": model.input_price_nano_usd_per_mtok,
            "output": model.output_price_nano_usd_per_mtok,
            "cached_input": model.cached_input_price_nano_usd_per_mtok,
            "cache_write_input": model.cache_write_input_price_nano_usd_per_mtok,
            "catalog_version": catalog_version,
        },
        "capabilities": model.capabilities.model_dump(),
        "quality": model.quality.model_dump(),
    }


@routes.get("/v1/models")
async def list_models(request: web.Request) -> web.Response:
    catalog = request.app[CATALOG]
    data = [model_entry(model, catalog_version=catalog.version) for model in catalog]
    return web.json_response({"object": "list", "data": data})


@routes.get(r"/v1/models/{model_id:.+}")
async def get_model(request: web.Request) -> web.Response:
    catalog = request.app[CATALOG]
    model_id = request.match_info["model_id"]
    try:
        model = catalog.get(model_id)
    except UnknownModel as error:
        raise NotFound(
            f"The model '{model_id}' does not exist", code="model_not_found", param="model"
        ) from error
    return web.json_response(model_entry(model, catalog_version=catalog.version))
