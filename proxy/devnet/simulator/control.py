"""The simulator's control endpoint: fault injection and counters over HTTP (used by the demo and by
tests that run the simulator out of process). Tests in-process can use SimulatorServer methods instead.

    GET    /_control/faults              → {"faults": {model: FaultSpec}}
    POST   /_control/faults              body {"model": "gpt-4o-mini" | "*", <FaultSpec fields>}
                                          → 200 {"model", "fault"}; 400 on unknown fields or bad values
    DELETE /_control/faults/{model}      → 200 {"model"}; removes that model's spec
    POST   /_control/reset               → 200; no faults, zero counters, empty prompt cache
    GET    /_control/stats               → {"name", "models": {model: {"requests", "injected_errors"}}}

FaultSpec fields (all optional): latency_ms, time_to_first_token_ms, tokens_per_s, error_rate (0..1),
error_count (fail the next N requests), error_status (400 401 403 404 413 429 500 502 503 529),
retry_after_s (sent as Retry-After with the injected error), hang (never answer until stop),
cut_stream_after_tokens (drop the TCP connection after N streamed tokens), stream_error_after_tokens
(send the format's in-stream error event after N tokens), output_tokens_over_reported (report N output
tokens more than generated, as an over-reporting upstream would). Model `*` applies to every model without its
own spec. A model's request that matches `*` is still counted under its own name.
"""

from __future__ import annotations

from typing import Any

import pydantic
from aiohttp import web

from proxy.devnet.simulator.common import SIMULATOR_STATE, read_json_object
from proxy.devnet.simulator.faults import FaultSpec

__all__ = ["add_control_routes"]


def _dump(spec: FaultSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json")


async def get_faults(request: web.Request) -> web.Response:
    specs = request.app[SIMULATOR_STATE].faults.specs()
    return web.json_response({"faults": {model: _dump(spec) for model, spec in specs.items()}})


async def post_fault(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    if body is None or not isinstance(body.get("model"), str) or not body["model"]:
        return web.json_response({"error": {"message": "body must be an object with a model"}}, status=400)
    model = body.pop("model")
    try:
        spec = FaultSpec.model_validate(body)
    except pydantic.ValidationError as error:
        return web.json_response({"error": {"message": str(error)}}, status=400)
    request.app[SIMULATOR_STATE].faults.set(model, spec)
    return web.json_response({"model": model, "fault": _dump(spec)})


async def delete_fault(request: web.Request) -> web.Response:
    model = request.match_info["model"]
    request.app[SIMULATOR_STATE].faults.clear(model)
    return web.json_response({"model": model})


async def reset(request: web.Request) -> web.Response:
    state = request.app[SIMULATOR_STATE]
    state.faults.reset()
    state.prompt_cache.clear()
    return web.json_response({"reset": True})


async def stats(request: web.Request) -> web.Response:
    state = request.app[SIMULATOR_STATE]
    return web.json_response({"name": state.name, "models": state.faults.stats()})


def add_control_routes(app: web.Application) -> None:
    app.router.add_get("/_control/faults", get_faults)
    app.router.add_post("/_control/faults", post_fault)
    app.router.add_delete("/_control/faults/{model}", delete_fault)
    app.router.add_post("/_control/reset", reset)
    app.router.add_get("/_control/stats", stats)
