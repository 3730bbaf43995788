"""POST /v1/embeddings: parse → plan (input-only quote) → the paid pipeline → render."""

from __future__ import annotations

from aiohttp import web

from proxy.api.app_keys import CATALOG, MODEL_INDEX, UPSTREAMS
from proxy.api.paid import paid_call, pipeline_of
from proxy.api.request_parsing import read_json_model
from proxy.openai_types import EmbeddingsRequest
from proxy.serving.embeddings_plan import plan_embeddings_request

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.post("/v1/embeddings")
async def embeddings(request: web.Request) -> web.Response:
    app = request.app
    body = await read_json_model(request, EmbeddingsRequest)
    plan = plan_embeddings_request(
        body, catalog=app[CATALOG], model_index=app[MODEL_INDEX], upstreams=app[UPSTREAMS]
    )
    served = await pipeline_of(app).embeddings(await paid_call(request), body, plan)
    return web.json_response(
        served.result.response.model_dump(mode="json", exclude_none=True), headers=served.headers
    )
