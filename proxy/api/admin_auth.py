"""The operator's admin token (`admin_token`, MEGAROUTER_ADMIN_TOKEN): `Authorization: Bearer <it>`.

Admin endpoints (the alert history; later analytics across every caller) call `require_admin` first. With no
admin token configured they refuse everyone, so a server never exposes them by omission.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from proxy.api.app_keys import SETTINGS
from proxy.errors import AuthenticationFailed, PermissionDenied

__all__ = ["require_admin"]


def require_admin(request: web.Request) -> None:
    admin_token = request.app[SETTINGS].admin_token
    if admin_token is None:
        raise PermissionDenied(
            "admin endpoints are disabled on this server: set MEGAROUTER_ADMIN_TOKEN", code="admin_disabled"
        )
    expected = f"Bearer {admin_token.get_secret_value()}".encode()
    given = request.headers.get("Authorization", "").encode()
    if not hmac.compare_digest(given, expected):
        raise AuthenticationFailed(
            "This endpoint needs 'Authorization: Bearer <admin token>'", code="invalid_admin_token"
        )
