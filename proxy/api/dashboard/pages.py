"""Dashboard pages, static files, sign-in (admin key, wallet signature, one-time link) and sign-out.

Pages are one static HTML shell each (the script picks the page from the path); signed-out visitors are
sent to /dashboard/login. Wallet sign-in is EIP-4361: the page asks `POST /v1/auth/challenge`, the wallet
signs it, and `POST /dashboard/login/wallet` checks it exactly as key creation does and uses it up.
"""

from __future__ import annotations

import hmac

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from proxy.accounts.signatures import ADDRESS_PATTERN
from proxy.api.app_keys import (
    API_KEYS,
    CHALLENGE_RATE_LIMITER,
    DASHBOARD_ASSETS,
    DASHBOARD_SESSIONS,
    SETTINGS,
)
from proxy.api.dashboard.access import (
    check_same_origin,
    clear_session_cookie,
    current_principal,
    secure_headers,
    set_session_cookie,
)
from proxy.api.dashboard.sessions import DashboardPrincipal
from proxy.api.request_parsing import read_json_model
from proxy.errors import AuthenticationFailed, NotFound, RateLimited

__all__ = ["DASHBOARD_PAGES", "routes"]

routes = web.RouteTableDef()
# The pages of the dashboard, by path; every one is the same shell, drawn by dashboard.js.
DASHBOARD_PAGES = ("/dashboard", "/dashboard/health", "/dashboard/money")
_LOGIN_TOKEN_CHARS_MAX = 100


class AdminKeyLogin(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    admin_token: str = Field(min_length=1, max_length=256)


class WalletLogin(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    address: str = Field(pattern=ADDRESS_PATTERN)
    message: str = Field(min_length=1, max_length=2_000)
    signature: str = Field(min_length=130, max_length=132)


def _asset_response(request: web.Request, name: str) -> web.Response:
    asset = request.app[DASHBOARD_ASSETS].get(name)
    if asset is None:
        raise NotFound(f"no dashboard file {name!r}", code="unknown_url")
    if request.headers.get("If-None-Match") == asset.etag:
        response = web.Response(status=304)
    else:
        response = web.Response(body=asset.body, headers={"Content-Type": asset.content_type})
    response.headers["ETag"] = asset.etag
    secure_headers(response, cache=not name.endswith(".html"))
    return response


def _limit_attempts(request: web.Request) -> None:
    """Admin token guesses share the per-IP bucket of sign-in challenges (by peer address, not a header)."""
    retry_after_s = request.app[CHALLENGE_RATE_LIMITER].take(request.remote or "unknown")
    if retry_after_s is not None:
        raise RateLimited(
            f"too many sign-in attempts from this client; retry in {retry_after_s} s",
            code="too_many_sign_in_attempts",
            headers={"Retry-After": str(retry_after_s)},
        )


def _see_other(location: str) -> web.Response:
    response = web.Response(status=303, headers={"Location": location})
    secure_headers(response)
    return response


def _signed_in_response(request: web.Request, principal: DashboardPrincipal) -> web.Response:
    response = web.json_response({"object": "dashboard_session", **principal.model_dump()})
    set_session_cookie(request, response, principal)
    secure_headers(response)
    return response


async def dashboard_page(request: web.Request) -> web.Response:
    if current_principal(request) is None:
        return _see_other("/dashboard/login")
    return _asset_response(request, "page.html")


for _path in DASHBOARD_PAGES:
    routes.get(_path)(dashboard_page)


@routes.get("/dashboard/static/{name}")
async def static_file(request: web.Request) -> web.Response:
    return _asset_response(request, request.match_info["name"])


@routes.get("/dashboard/login")
async def login_page(request: web.Request) -> web.Response:
    """The sign-in page; with `?token=`, a one-time login link: redeemed for a session, then on to the
    dashboard by a same-origin refresh (a redirect answering a link opened from elsewhere would count
    as cross-site, and the browser would withhold the SameSite=Strict cookie)."""
    token = request.query.get("token")
    if token is None:
        return _asset_response(request, "login.html")
    principal = None
    if len(token) <= _LOGIN_TOKEN_CHARS_MAX:
        principal = request.app[DASHBOARD_SESSIONS].redeem_login_token(token)
    if principal is None:
        return _see_other("/dashboard/login?error=link_invalid")
    response = _asset_response(request, "signed-in.html")
    set_session_cookie(request, response, principal)
    return response


@routes.post("/dashboard/login/key")
async def login_with_admin_key(request: web.Request) -> web.Response:
    check_same_origin(request)
    _limit_attempts(request)
    body = await read_json_model(request, AdminKeyLogin)
    admin_key = request.app[SETTINGS].admin_token
    if admin_key is None or not hmac.compare_digest(
        body.admin_token.encode(), admin_key.get_secret_value().encode()
    ):
        raise AuthenticationFailed("that is not the admin token", code="invalid_admin_token")
    return _signed_in_response(request, DashboardPrincipal(kind="operator"))


@routes.post("/dashboard/login/wallet")
async def login_with_wallet(request: web.Request) -> web.Response:
    check_same_origin(request)
    body = await read_json_model(request, WalletLogin)
    wallet = await request.app[API_KEYS].sign_in(
        address=body.address, message=body.message, signature=body.signature
    )
    return _signed_in_response(request, DashboardPrincipal(kind="wallet", wallet=wallet))


@routes.post("/dashboard/logout")
async def logout(request: web.Request) -> web.Response:
    check_same_origin(request)
    response = web.Response(status=204)
    clear_session_cookie(response)
    secure_headers(response)
    return response
