"""Wallet-proven API keys: POST /v1/auth/challenge, POST /v1/keys, GET /v1/keys, DELETE /v1/keys/{id}.

A key is minted only for a fresh challenge signed (EIP-191) by the wallet it names, and is shown once.
The challenge is an EIP-4361 message naming the configured domain, URI and chain id, never the request's
Host; challenges are rate limited per client IP (the limiter is the app's own, see accounts_ctx).
"""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from proxy.accounts.keys import ApiKeyInfo
from proxy.accounts.signatures import ADDRESS_PATTERN
from proxy.accounts.siwe import SIWE_VERSION
from proxy.api.app_keys import API_KEYS, CHALLENGE_RATE_LIMITER, SIGNING_SCOPE
from proxy.api.auth import require_bearer
from proxy.api.request_parsing import read_json_model
from proxy.errors import NotFound, RateLimited

__all__ = ["routes"]

routes = web.RouteTableDef()
_KEY_ID_DIGITS_MAX = 18


class ChallengeBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    address: str = Field(pattern=ADDRESS_PATTERN)


class CreateKeyBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    address: str = Field(pattern=ADDRESS_PATTERN)
    message: str = Field(min_length=1, max_length=2_000)
    signature: str = Field(min_length=130, max_length=132)
    # Shown in listings and stored: no control characters (PostgreSQL text cannot even hold NUL).
    name: str | None = Field(default=None, min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
    # This key's default routing strategy; a request's `route.strategy` or strategy header still wins.
    strategy: Literal["balanced", "cost", "latency", "availability"] | None = None


def _limit_challenges(request: web.Request) -> None:
    # The peer address, not X-Forwarded-For: a header is the caller's to choose. Behind a reverse proxy
    # every caller shares the proxy's bucket, which still bounds the table (its own cap also holds).
    client = request.remote or "unknown"
    retry_after_s = request.app[CHALLENGE_RATE_LIMITER].take(client)
    if retry_after_s is not None:
        raise RateLimited(
            f"too many sign-in challenges from this client; retry in {retry_after_s} s",
            code="too_many_challenges",
            headers={"Retry-After": str(retry_after_s)},
        )


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
    _limit_challenges(request)
    body = await read_json_model(request, ChallengeBody)
    challenge = await request.app[API_KEYS].issue_challenge(body.address)
    scope = request.app[SIGNING_SCOPE]
    return web.json_response(
        {
            "address": challenge.address,
            "message": challenge.message,
            "nonce": challenge.nonce,
            "issued_at": challenge.issued_at_unix_s,
            "expires_at": challenge.expires_at_unix_s,
            # The EIP-4361 scope, which a withdrawal's message must name too.
            "domain": scope.domain,
            "uri": scope.uri,
            "chain_id": scope.chain_id,
            "version": SIWE_VERSION,
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
    # ASCII digits only (isdigit() admits "³") and short enough for a BIGINT column.
    well_formed = raw_id.isascii() and raw_id.isdigit() and len(raw_id) <= _KEY_ID_DIGITS_MAX
    info = await request.app[API_KEYS].revoke(int(raw_id), wallet=principal.wallet) if well_formed else None
    if info is None:
        raise NotFound(f"no API key {raw_id} on this wallet", code="api_key_not_found", param="key_id")
    return web.json_response(_key_json(info))
