"""Who is signed in to the dashboard, and the headers every dashboard response carries.

The session cookie is the only credential the browser holds (HttpOnly: page scripts never see it;
SameSite=Strict: no other site's page can send it). Every state-changing dashboard request must also come
from a page of this very origin when the browser names one, which stops login CSRF as well.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from proxy.api.app_keys import DASHBOARD_SESSIONS, SETTINGS
from proxy.api.dashboard.sessions import SESSION_COOKIE, DashboardPrincipal
from proxy.errors import AuthenticationFailed, PermissionDenied

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "check_same_origin",
    "clear_session_cookie",
    "current_principal",
    "require_operator",
    "require_principal",
    "secure_headers",
    "set_session_cookie",
]

# Scripts and styles only from our own files (no inline script, no eval), data only from our own origin,
# never framed. SVG presentation attributes are not styles, so charts need no 'unsafe-inline'.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def secure_headers(response: web.StreamResponse, *, cache: bool = False) -> web.StreamResponse:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    # Login links carry a token in their URL: never pass a URL on to anyone.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-cache" if cache else "no-store"
    return response


def current_principal(request: web.Request) -> DashboardPrincipal | None:
    return request.app[DASHBOARD_SESSIONS].principal_of(request.cookies.get(SESSION_COOKIE))


def require_principal(request: web.Request) -> DashboardPrincipal:
    principal = current_principal(request)
    if principal is None:
        raise AuthenticationFailed("sign in to the dashboard first", code="dashboard_signed_out")
    return principal


def require_operator(request: web.Request) -> DashboardPrincipal:
    principal = require_principal(request)
    if principal.kind != "operator":
        raise PermissionDenied("only the operator sees this", code="operator_only")
    return principal


def check_same_origin(request: web.Request) -> None:
    """Refuses a POST that a page of another origin sent (browsers always name the origin of a POST)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return  # Not a browser, or a same-origin request of an old browser: the cookie rules still hold.
    # The authority the page came from must be the one the browser sent this request to (its Host header);
    # schemes are not compared, since a TLS-terminating proxy may forward https as http.
    if urlsplit(origin).netloc.lower() != request.host.lower():
        raise PermissionDenied("this request must come from the dashboard's own pages", code="cross_origin")


def set_session_cookie(
    request: web.Request, response: web.StreamResponse, principal: DashboardPrincipal
) -> None:
    sessions = request.app[DASHBOARD_SESSIONS]
    base_url = request.app[SETTINGS].public_base_url or ""
    response.set_cookie(
        SESSION_COOKIE,
        sessions.cookie_for(principal),
        max_age=sessions.session_ttl_s,
        path="/dashboard",
        httponly=True,
        samesite="Strict",
        secure=request.secure or base_url.startswith("https://"),
    )


def clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/dashboard")
