"""What every paid endpoint's handler hands the serving pipeline: the pipeline over the app's services, and
the request-scoped inputs (the caller's key if any, the server-minted request id, CORS headers for streams).
"""

from __future__ import annotations

from aiohttp import web

from proxy.api.app_keys import BILLING, DISPATCHER, PAYMENT_GATE, SETTINGS, TRACER
from proxy.api.auth import authenticate_bearer
from proxy.api.middlewares import cors_headers, request_id_of
from proxy.serving.pipeline import PaidCall, Pipeline

__all__ = ["paid_call", "pipeline_of"]


def pipeline_of(app: web.Application) -> Pipeline:
    return Pipeline(
        gate=app[PAYMENT_GATE],
        billing=app[BILLING],
        dispatcher=app[DISPATCHER],
        settings=app[SETTINGS],
        tracer=app[TRACER],
    )


async def paid_call(request: web.Request) -> PaidCall:
    """The request-scoped inputs of the pipeline: the caller's key (if any) and the request's id."""
    return PaidCall(
        request=request,
        principal=await authenticate_bearer(request),
        request_id=request_id_of(request),
        stream_headers=cors_headers(),
    )
