"""POST /v1/route/preview: what a chat request would be routed to and quoted, before paying for it.

The body is a chat completion request, exactly as POST /v1/chat/completions takes it (`model: "auto"` or
a named model, `route`, `max_tokens`, the `X-MegaRouter-Strategy` / `X-MegaRouter-Allow-Unrated`
headers). It runs the same planning (proxy/serving/planning.py: classifier, strategy, catalog, live
health) and answers with the plan's explanation: task kind, difficulty, quality needed, the ranked
candidates with their prices and quotes, and the quote the request would be held for. No model is
called, nothing is held or charged, no payment header is read: the preview is free. It is the same
explanation a paid request stores in its usage event.

Free, so rate-limited: a token bucket per API key when `Authorization: Bearer` carries one (a wrong key
is a 401, as on every keyed route), else per client IP (the peer address, never X-Forwarded-For).
"""

from __future__ import annotations

from aiohttp import web

from proxy.api.app_keys import (
    CATALOG,
    CLASSIFIER,
    HEALTH_TRACKER,
    MODEL_INDEX,
    ROUTE_PREVIEW_LIMITER,
    SETTINGS,
    UPSTREAMS,
)
from proxy.api.auth import authenticate_bearer
from proxy.api.request_parsing import read_json_model
from proxy.errors import RateLimited
from proxy.openai_types import ChatCompletionRequest
from proxy.serving.planning import plan_chat_request

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.post("/v1/route/preview")
async def route_preview(request: web.Request) -> web.Response:
    app = request.app
    principal = await authenticate_bearer(request)
    # Org keys' ids come from another table than wallet keys': each kind has its own buckets.
    kind = "key" if principal is None or principal.org is None else "org_key"
    client = f"{kind}:{principal.key_id}" if principal is not None else f"ip:{request.remote or 'unknown'}"
    retry_after_s = app[ROUTE_PREVIEW_LIMITER].take(client)
    if retry_after_s is not None:
        raise RateLimited(
            f"too many route previews; retry in {retry_after_s} s",
            code="too_many_previews",
            headers={"Retry-After": str(retry_after_s)},
        )
    body = await read_json_model(request, ChatCompletionRequest)
    plan = await plan_chat_request(
        body,
        key_strategy=principal.route_strategy if principal is not None else None,
        headers=request.headers,
        catalog=app[CATALOG],
        model_index=app[MODEL_INDEX],
        settings=app[SETTINGS],
        tracker=app[HEALTH_TRACKER],
        classifier=app[CLASSIFIER],
        providers_available=app[UPSTREAMS].providers,
    )
    assert plan.explanation is not None
    hold = plan.hold_nano_usd
    quote = {
        # What a paid request would hold (the dearest candidate's worst case); it is charged the real cost.
        "amount_nano_usd": hold,
        "amount_usd": f"{hold // 1_000_000_000}.{hold % 1_000_000_000:09d}",
        "catalog_version": app[CATALOG].version,
    }
    return web.json_response({"object": "route.preview", **plan.explanation, "quote": quote})
