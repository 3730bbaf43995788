"""Dashboard sessions: a signed, stateless cookie, and one-time login links kept in the app's memory.

The cookie is `<base64url(JSON claims)>.<base64url(HMAC-SHA256)>` under the dashboard's key: nothing is
stored per session, so replicas sharing the configured key share sessions. An operator session also names
a fingerprint of the admin key it was opened under, so rotating the admin key ends every operator session.
A wallet session names the wallet that signed in (EIP-4361). Claims hold no secret; they are only signed.

Login links (what the demo prints) are random tokens redeemable once, within their validity, in the process
that issued them; this object lives on the app (no module state) and forgets the oldest beyond its cap.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from proxy.settings import DashboardSettings

__all__ = ["SESSION_COOKIE", "DashboardPrincipal", "DashboardSessions", "admin_key_fingerprint"]

SESSION_COOKIE = "megarouter_dashboard"
_COOKIE_CHARS_MAX = 1_000
_LOGIN_TOKEN_BYTES = 32


class DashboardPrincipal(BaseModel):
    """Who is signed in: the operator (sees everything) or one wallet (sees its own)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["operator", "wallet"]
    wallet: str | None = Field(default=None, pattern=r"^0x[0-9a-f]{40}$")

    @model_validator(mode="after")
    def _wallet_iff_wallet_kind(self) -> DashboardPrincipal:
        if (self.kind == "wallet") != (self.wallet is not None):
            raise ValueError("a wallet principal names its wallet, and only it does")
        return self


class _Claims(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    principal: DashboardPrincipal
    expires_at_unix_s: int
    admin_key_fingerprint: str


def admin_key_fingerprint(admin_key: str | None) -> str:
    """Names the admin key without revealing it ("" when none is configured)."""
    if admin_key is None:
        return ""
    return hashlib.sha256(b"megarouter-dashboard:" + admin_key.encode()).hexdigest()[:32]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class DashboardSessions:
    def __init__(
        self,
        settings: DashboardSettings,
        *,
        admin_key: str | None,
        clock_unix_s: Callable[[], float] = time.time,
    ) -> None:
        secret = settings.session_secret
        self._key = secret.get_secret_value().encode() if secret is not None else secrets.token_bytes(32)
        self._settings = settings
        self._admin_fingerprint = admin_key_fingerprint(admin_key)
        self._clock_unix_s = clock_unix_s
        # sha256(token) -> (principal, expires_at_unix_s); the token itself is never kept.
        self._login_tokens: OrderedDict[str, tuple[DashboardPrincipal, float]] = OrderedDict()

    @property
    def session_ttl_s(self) -> int:
        return self._settings.session_ttl_s

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def cookie_for(self, principal: DashboardPrincipal) -> str:
        claims = _Claims(
            principal=principal,
            expires_at_unix_s=int(self._clock_unix_s()) + self._settings.session_ttl_s,
            admin_key_fingerprint=self._admin_fingerprint if principal.kind == "operator" else "",
        )
        payload = _b64(claims.model_dump_json().encode())
        cookie = f"{payload}.{self._sign(payload)}"
        assert len(cookie) <= _COOKIE_CHARS_MAX
        return cookie

    def principal_of(self, cookie: str | None) -> DashboardPrincipal | None:
        """The signed-in principal, or None for a missing, forged, expired or revoked cookie."""
        if cookie is None or len(cookie) > _COOKIE_CHARS_MAX or cookie.count(".") != 1:
            return None
        payload, signature = cookie.split(".")
        if not hmac.compare_digest(signature.encode("ascii", "replace"), self._sign(payload).encode()):
            return None
        try:
            claims = _Claims.model_validate(json.loads(_unb64(payload)))
        except (ValueError, ValidationError):
            return None  # Signed by us, so only a change of format gets here: treat as signed out.
        if claims.expires_at_unix_s <= self._clock_unix_s():
            return None
        if claims.principal.kind == "operator" and claims.admin_key_fingerprint != self._admin_fingerprint:
            return None
        return claims.principal

    def issue_login_token(self, principal: DashboardPrincipal) -> str:
        """A token that opens one session for `principal`, once, within login_token_ttl_s."""
        now = self._clock_unix_s()
        self._forget_expired(now)
        while len(self._login_tokens) >= self._settings.login_tokens_pending_max:
            self._login_tokens.popitem(last=False)
        token = secrets.token_urlsafe(_LOGIN_TOKEN_BYTES)
        self._login_tokens[_token_digest(token)] = (principal, now + self._settings.login_token_ttl_s)
        assert len(self._login_tokens) <= self._settings.login_tokens_pending_max
        return token

    def redeem_login_token(self, token: str) -> DashboardPrincipal | None:
        """The token's principal, once; None for an unknown, used or expired token."""
        now = self._clock_unix_s()
        self._forget_expired(now)
        entry = self._login_tokens.pop(_token_digest(token), None)
        return None if entry is None else entry[0]

    def _forget_expired(self, now_unix_s: float) -> None:
        expired = [digest for digest, (_, until) in self._login_tokens.items() if until <= now_unix_s]
        for digest in expired:
            del self._login_tokens[digest]


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
