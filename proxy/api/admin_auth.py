"""The operator's admin key (`admin_key` in Settings, MEGAROUTER_ADMIN_KEY): `Authorization: Bearer <key>`.

Admin endpoints (the alert history; later analytics across every caller) call `require_admin` first. With no
admin key configured they refuse everyone, so a server never exposes them by omission.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from proxy.api.app_keys import SETTINGS
from proxy.errors import AuthenticationFailed, PermissionDenied

__all__ = ["require_admin"]


def require_admin(request: web.Request) -> None:
    admin_key = request.app[SETTINGS].admin_key
    if admin_key is None:
        raise PermissionDenied(
            "admin endpoints are disabled on this server: set MEGAROUTER_ADMIN_KEY", code="admin_disabled"
        )
    expected = f"Bearer {admin_key.get_secret_value()}".encode()
    given = request.headers.get("Authorization", "").encode()
    if not hmac.compare_digest(given, expected):
        raise AuthenticationFailed(
            "This endpoint needs 'Authorization: Bearer <admin key>'", code="invalid_admin_key"
        )
