"""Bearer authentication with wallet-bound API keys, for any handler (the chat handler calls it first).

No Authorization header means "not keyed" (the caller may pay with x402 instead); a header that is present
but wrong is always a 401, never a silent fall-back to another way of paying. Anthropic's door also takes
the key in `x-api-key` (as Anthropic's SDK sends it): `authenticate_key`; when both headers come,
Authorization decides.
"""

from __future__ import annotations

from aiohttp import web

from proxy.accounts.principal import KeyPrincipal
from proxy.api.app_keys import API_KEYS, ORGANIZATIONS
from proxy.errors import AuthenticationFailed, PermissionDenied
from proxy.governance.store import ORG_KEY_PREFIX

__all__ = ["authenticate_bearer", "authenticate_key", "require_bearer"]

_BEARER = "bearer "
_KEY_LENGTH_MAX = 256


async def authenticate_bearer(request: web.Request) -> KeyPrincipal | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    if not header[: len(_BEARER)].lower() == _BEARER:
        raise AuthenticationFailed("Authorization must be 'Bearer <api key>'", code="invalid_authorization")
    return await _principal(request, header[len(_BEARER) :].strip())


async def authenticate_key(request: web.Request) -> KeyPrincipal | None:
    """The key in `Authorization: Bearer` or else in `x-api-key`; None when neither header is present."""
    if "Authorization" in request.headers:
        return await authenticate_bearer(request)
    header = request.headers.get("x-api-key")
    if header is None:
        return None
    return await _principal(request, header.strip())


async def _principal(request: web.Request, key: str) -> KeyPrincipal:
    if not key or len(key) > _KEY_LENGTH_MAX:
        raise AuthenticationFailed("Incorrect API key provided", code="invalid_api_key")
    if key.startswith(ORG_KEY_PREFIX):
        org = await request.app[ORGANIZATIONS].authenticate_key(key)
        return KeyPrincipal(key_id=org.key_id, wallet="", credit_account=org.credit_account, org=org)
    info = await request.app[API_KEYS].authenticate(key)
    assert info.credit_account.endswith(info.wallet)
    return KeyPrincipal(
        key_id=info.id,
        wallet=info.wallet,
        credit_account=info.credit_account,
        route_strategy=info.route_strategy,
    )


async def require_bearer(request: web.Request) -> KeyPrincipal:
    principal = await authenticate_bearer(request)
    if principal is None:
        raise AuthenticationFailed(
            "This endpoint needs 'Authorization: Bearer <api key>'", code="missing_api_key"
        )
    if principal.org is not None:
        # Wallet accounts and org administration act for a wallet; an org key has none.
        raise PermissionDenied(
            "This endpoint needs a wallet's own API key (POST /v1/keys), not an organization key",
            code="wallet_key_required",
        )
    return principal
