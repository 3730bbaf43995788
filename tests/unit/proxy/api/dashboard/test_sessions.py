"""Dashboard sessions: the signed cookie and one-time login links, on an injected clock.

Method: encode with one DashboardSessions and decode with it or with others (another key, another admin
token, a later time); tamper with bytes of a real cookie.
"""

from __future__ import annotations

import base64
import json

from pydantic import SecretStr

from proxy.api.dashboard.sessions import DashboardPrincipal, DashboardSessions
from proxy.settings import DashboardSettings

SECRET = SecretStr("k" * 40)
OPERATOR = DashboardPrincipal(kind="operator")
WALLET = DashboardPrincipal(kind="wallet", wallet="0x" + "ab" * 20)


class Clock:
    def __init__(self) -> None:
        self.now_s = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now_s


def sessions(
    clock: Clock, *, admin_token: str | None = "admin-token-0123456789", **settings: object
) -> DashboardSessions:
    return DashboardSessions(
        DashboardSettings(session_secret=SECRET, **settings),
        admin_key=admin_token,
        clock_unix_s=clock,
    )


def test_a_cookie_names_its_principal_until_it_expires() -> None:
    clock = Clock()
    codec = sessions(clock, session_ttl_s=3600)
    cookie = codec.cookie_for(WALLET)
    assert codec.principal_of(cookie) == WALLET
    assert codec.principal_of(codec.cookie_for(OPERATOR)) == OPERATOR
    clock.now_s += 3599
    assert codec.principal_of(cookie) == WALLET
    clock.now_s += 1
    assert codec.principal_of(cookie) is None


def test_a_tampered_or_foreign_cookie_is_signed_out() -> None:
    clock = Clock()
    codec = sessions(clock)
    cookie = codec.cookie_for(WALLET)
    payload, signature = cookie.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["principal"] = {"kind": "operator", "wallet": None}
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert codec.principal_of(f"{forged}.{signature}") is None
    assert codec.principal_of(cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")) is None
    for junk in ("", ".", "a.b.c", "x" * 2000, None):
        assert codec.principal_of(junk) is None
    other_key = DashboardSessions(
        DashboardSettings(session_secret=SecretStr("z" * 40)), admin_key=None, clock_unix_s=clock
    )
    assert other_key.principal_of(cookie) is None


def test_without_a_configured_secret_each_process_signs_with_its_own_key() -> None:
    clock = Clock()
    first = DashboardSessions(DashboardSettings(), admin_key=None, clock_unix_s=clock)
    second = DashboardSessions(DashboardSettings(), admin_key=None, clock_unix_s=clock)
    cookie = first.cookie_for(OPERATOR)
    assert first.principal_of(cookie) == OPERATOR
    assert second.principal_of(cookie) is None


def test_rotating_the_admin_token_ends_operator_sessions_only() -> None:
    clock = Clock()
    before = sessions(clock, admin_token="admin-token-0123456789")
    after = sessions(clock, admin_token="admin-token-rotated-999")
    operator_cookie = before.cookie_for(OPERATOR)
    wallet_cookie = before.cookie_for(WALLET)
    assert after.principal_of(operator_cookie) is None
    assert after.principal_of(wallet_cookie) == WALLET


def test_a_login_token_opens_one_session_once_within_its_validity() -> None:
    clock = Clock()
    codec = sessions(clock, login_token_ttl_s=60)
    token = codec.issue_login_token(OPERATOR)
    assert codec.redeem_login_token("not-" + token) is None
    assert codec.redeem_login_token(token) == OPERATOR
    assert codec.redeem_login_token(token) is None
    late = codec.issue_login_token(OPERATOR)
    clock.now_s += 60
    assert codec.redeem_login_token(late) is None


def test_pending_login_tokens_are_capped_oldest_forgotten_first() -> None:
    clock = Clock()
    codec = sessions(clock, login_tokens_pending_max=2)
    first = codec.issue_login_token(OPERATOR)
    second = codec.issue_login_token(WALLET)
    third = codec.issue_login_token(OPERATOR)
    assert codec.redeem_login_token(first) is None
    assert codec.redeem_login_token(second) == WALLET
    assert codec.redeem_login_token(third) == OPERATOR
