"""Wallet-proven API keys: POST /v1/auth/challenge, POST /v1/keys, GET /v1/keys, DELETE /v1/keys/{id}.

A key is minted only for a fresh challenge signed (EIP-191) by the wallet it names, and is shown once.
"""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from proxy.accounts.app_keys import ACCOUNTS_SETTINGS, API_KEYS
from proxy.accounts.auth import require_bearer
from proxy.accounts.keys import ApiKeyInfo
from proxy.accounts.signatures import ADDRESS_PATTERN
from proxy.errors import NotFound
from proxy.request_parsing import read_json_model

__all__ = ["request_domain", "routes"]

routes = web.RouteTableDef()


class ChallengeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str = Field(pattern=ADDRESS_PATTERN)


class CreateKeyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str = Field(pattern=ADDRESS_PATTERN)
    message: str = Field(min_length=1, max_length=2_000)
    signature: str = Field(min_length=130, max_length=132)
    name: str | None = Field(default=None, min_length=1, max_length=100)
    # This key's default routing strategy; a request's `route.strategy` or strategy header still wins.
    strategy: Literal["balanced", "cost", "latency", "availability"] | None = None


def request_domain(request: web.Request) -> str:
    """The domain named in signed messages: configured, or the Host the client called."""
    return request.app[ACCOUNTS_SETTINGS].domain or request.host


def _key_json(info: ApiKeyInfo) -> dict[str, object]:
    return {
        "id": info.id,
        "object": "api_key",
        "prefix": info.prefix,
        "name": info.name,
        "strategy": info.route_strategy,
        "wallet": info.wallet,
        "credit_account": info.credit_account,
        "created_at": info.created_at_unix_s,
        "last_used_at": info.last_used_at_unix_s,
        "revoked_at": info.revoked_at_unix_s,
        "revoked": info.revoked,
    }


@routes.post("/v1/auth/challenge")
async def create_challenge(request: web.Request) -> web.Response:
    body = await read_json_model(request, ChallengeBody)
    challenge = await request.app[API_KEYS].issue_challenge(body.address, domain=request_domain(request))
    return web.json_response(
        {
            "address": challenge.address,
            "message": challenge.message,
            "nonce": challenge.nonce,
            "issued_at": challenge.issued_at_unix_s,
            "expires_at": challenge.expires_at_unix_s,
        }
    )


@routes.post("/v1/keys")
async def create_key(request: web.Request) -> web.Response:
    body = await read_json_model(request, CreateKeyBody)
    issued = await request.app[API_KEYS].create_key(
        address=body.address,
        message=body.message,
        signature=body.signature,
        name=body.name,
        route_strategy=body.strategy,
    )
    # The only time the key is ever shown.
    return web.json_response({**_key_json(issued.info), "key": issued.key}, status=201)


@routes.get("/v1/keys")
async def list_keys(request: web.Request) -> web.Response:
    principal = await require_bearer(request)
    keys = await request.app[API_KEYS].list_keys(principal.wallet)
    return web.json_response({"object": "list", "data": [_key_json(info) for info in keys]})


@routes.delete("/v1/keys/{key_id}")
async def revoke_key(request: web.Request) -> web.Response:
    principal = await require_bearer(request)
    raw_id = request.match_info["key_id"]
    info = (
        await request.app[API_KEYS].revoke(int(raw_id), wallet=principal.wallet)
        # ASCII digits within BIGINT: isdigit() alone admits "²" (int() refuses it) and huge ids.
        if raw_id.isascii() and raw_id.isdigit() and len(raw_id) <= 18
        else None
    )
    if info is None:
        raise NotFound(f"no API key {raw_id} on this wallet", code="api_key_not_found", param="key_id")
    return web.json_response(_key_json(info))
