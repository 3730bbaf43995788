"""The dashboard over HTTP: who may sign in and how, what each principal may read, and the security
headers. Method: the running router (real chain, real simulators, real signatures) on an aiohttp client;
traffic is real keyed requests; no browser here (tests/e2e/dashboard/test_dashboard_browser.py has one).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from proxy.api.app_keys import DASHBOARD_SESSIONS
from proxy.api.dashboard.access import CONTENT_SECURITY_POLICY
from proxy.api.dashboard.data import ALERTS_PATH
from proxy.api.dashboard.dispatch import route_exists
from proxy.api.dashboard.sessions import SESSION_COOKIE, DashboardPrincipal
from proxy.settings import AccountsSettings
from tests.e2e.dashboard.support import ADMIN_TOKEN, generate_traffic, wallet_sign_in_body
from tests.fixtures.app import RouterWith, RunningRouter

DATA_PATHS = ("session", "usage", "deployments", "credit", "metrics", "ledger", "alerts")
OPERATOR_ONLY = ("metrics", "ledger", "alerts", "budgets")


@pytest.fixture
async def router(router_with: RouterWith) -> AsyncIterator[RunningRouter]:
    async with router_with(admin_token=ADMIN_TOKEN) as running:
        yield running


def signed_out(router: RunningRouter) -> None:
    router.client.session.cookie_jar.clear()


async def sign_in_as_operator(router: RunningRouter) -> None:
    response = await router.client.post("/dashboard/login/key", json={"admin_token": ADMIN_TOKEN})
    assert response.status == 200, await response.text()
    assert (await response.json())["kind"] == "operator"


async def read(router: RunningRouter, name: str, status: int = 200) -> dict[str, Any]:
    response = await router.client.get(f"/dashboard/api/{name}")
    assert response.status == status, await response.text()
    document: dict[str, Any] = await response.json()
    return document


async def test_signed_out_visitors_get_the_login_page_and_no_data(router: RunningRouter) -> None:
    for page in ("/dashboard", "/dashboard/health", "/dashboard/money"):
        response = await router.client.get(page, allow_redirects=False)
        assert response.status == 303
        assert response.headers["Location"] == "/dashboard/login"
    login = await router.client.get("/dashboard/login")
    assert login.status == 200
    assert "Sign in with Ethereum" in await login.text()
    for name in DATA_PATHS:
        error = await read(router, name, status=401)
        assert error["error"]["code"] == "dashboard_signed_out"


async def test_a_wrong_or_forged_credential_is_refused(router: RunningRouter) -> None:
    wrong = await router.client.post("/dashboard/login/key", json={"admin_token": "not-the-token-at-all"})
    assert wrong.status == 401
    assert (await wrong.json())["error"]["code"] == "invalid_admin_token"
    assert SESSION_COOKIE not in {cookie.key for cookie in router.client.session.cookie_jar}
    router.client.session.cookie_jar.update_cookies({SESSION_COOKIE: "e30.AAAA"})
    await read(router, "session", status=401)


async def test_admin_token_sign_in_sets_a_strict_http_only_cookie(router: RunningRouter) -> None:
    response = await router.client.post("/dashboard/login/key", json={"admin_token": ADMIN_TOKEN})
    assert response.status == 200
    cookie = response.cookies[SESSION_COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/dashboard"
    session = await read(router, "session")
    assert session["kind"] == "operator"
    assert session["features"]["metrics"] is True
    page = await router.client.get("/dashboard")
    assert page.status == 200
    assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "<script" in (text := await page.text())
    assert "<script>" not in text
    logout = await router.client.post("/dashboard/logout")
    assert logout.status == 204
    await read(router, "session", status=401)


async def test_a_post_from_another_origin_is_refused(router: RunningRouter) -> None:
    response = await router.client.post(
        "/dashboard/login/key", json={"admin_token": ADMIN_TOKEN}, headers={"Origin": "https://evil.example"}
    )
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "cross_origin"
    await read(router, "session", status=401)


async def test_a_wallet_signs_in_with_eip4361_once_and_sees_only_its_own(router: RunningRouter) -> None:
    payer, other = router.payers[0], router.payers[1]
    await generate_traffic(router, payer, requests_per_key=2)
    await generate_traffic(router, other, requests_per_key=1)
    body = await wallet_sign_in_body(router, payer)
    response = await router.client.post("/dashboard/login/wallet", json=body)
    assert response.status == 200, await response.text()
    session = await read(router, "session")
    assert session == session | {"kind": "wallet", "wallet": payer.address.lower()}
    usage = await read(router, "usage")
    assert len(usage["data"]) == 2 * 2 + 1
    credit = await read(router, "credit")
    assert credit["account"] == f"credit:wallet:{payer.address.lower()}"
    assert credit["accounts"] == []
    spent = sum(event["cost_nano_usd"] for event in usage["data"])
    assert credit["balance"]["posted_nano_usd"] == 2_000_000_000 - spent
    for name in OPERATOR_ONLY:
        assert (await read(router, name, status=403))["error"]["code"] == "operator_only"
    signed_out(router)
    replay = await router.client.post("/dashboard/login/wallet", json=body)
    assert replay.status == 400
    assert (await replay.json())["error"]["code"] == "challenge_used"
    stolen = {**await wallet_sign_in_body(router, other), "address": payer.address}
    refused = await router.client.post("/dashboard/login/wallet", json=stolen)
    assert refused.status in (400, 401)
    await read(router, "session", status=401)


async def test_the_operator_sees_everyone_health_metrics_and_the_ledger(router: RunningRouter) -> None:
    payer, other = router.payers[0], router.payers[1]
    await generate_traffic(router, payer, requests_per_key=2)
    await generate_traffic(router, other, requests_per_key=1)
    await sign_in_as_operator(router)
    usage = await read(router, "usage")
    assert len(usage["data"]) == (2 * 2 + 1) + (2 * 1 + 1)
    assert {event["outcome"] for event in usage["data"]} >= {"completed", "upstream_failed"}
    deployments = await read(router, "deployments")
    served = [d for d in deployments["data"] if d["health"]["successes_total"] > 0]
    assert served
    assert all(d["health"]["breaker"] in ("closed", "half_open", "open") for d in served)
    metrics = await read(router, "metrics")
    names = {sample["name"] for sample in metrics["data"]}
    assert {"megarouter_open_holds", "megarouter_requests_total"} <= names
    credit = await read(router, "credit")
    wallets = {f"credit:wallet:{account.address.lower()}" for account in (payer, other)}
    assert wallets <= set(credit["accounts"])
    chosen = await read(router, f"credit?account=credit:wallet:{other.address.lower()}")
    assert chosen["movements"]
    assert chosen["movements"][0]["balance_after_nano_usd"] > 0
    await read(router, "credit?account=credit:wallet:0xnobody", status=404)
    ledger = await read(router, "ledger")
    accounts = {b["account"] for b in ledger["balances"]}
    assert wallets <= accounts
    assert ledger["last_reconciliation"] is None
    # Alert history is another module's route: without it the panel reads an empty list, not an error.
    alerts_served = route_exists(router.app, ALERTS_PATH)
    assert (await read(router, "session"))["features"]["alerts"] is alerts_served
    alerts = (await read(router, "alerts"))["data"]
    assert isinstance(alerts, list)
    assert alerts_served or alerts == []


async def test_a_login_link_signs_in_once(router: RunningRouter) -> None:
    token = router.app[DASHBOARD_SESSIONS].issue_login_token(DashboardPrincipal(kind="operator"))
    response = await router.client.get(f"/dashboard/login?token={token}", allow_redirects=False)
    assert response.status == 200
    assert 'http-equiv="refresh"' in await response.text()
    assert (await read(router, "session"))["kind"] == "operator"
    signed_out(router)
    again = await router.client.get(f"/dashboard/login?token={token}", allow_redirects=False)
    assert again.status == 303
    assert again.headers["Location"] == "/dashboard/login?error=link_invalid"
    await read(router, "session", status=401)


async def test_static_files_are_served_from_the_package_and_nothing_else(router: RunningRouter) -> None:
    script = await router.client.get("/dashboard/static/charts.js")
    assert script.status == 200
    assert script.headers["Content-Type"].startswith("text/javascript")
    etag = script.headers["ETag"]
    cached = await router.client.get("/dashboard/static/charts.js", headers={"If-None-Match": etag})
    assert cached.status == 304
    for name in ("missing.js", "..%2Fsessions.py", "__init__.py"):
        assert (await router.client.get(f"/dashboard/static/{name}")).status == 404


async def test_analytics_are_everyones_for_the_operator_and_a_wallets_own_for_it(
    router: RunningRouter,
) -> None:
    payer, other = router.payers[0], router.payers[1]
    await generate_traffic(router, payer, requests_per_key=2)
    await generate_traffic(router, other, requests_per_key=1)
    now_s = int(time.time())
    window = f"start={now_s - 3 * 3600}&end={now_s + 3600}&bucket=hour"
    await sign_in_as_operator(router)
    everyone = await read(router, f"analytics?{window}&group_by=wallet")
    wallets = {row["group"]["wallet"] for row in everyone["data"]}
    assert wallets == {payer.address.lower(), other.address.lower()}
    by_key = await read(router, f"analytics?{window}&group_by=key")
    assert sorted(name.split(" ")[0] for name in by_key["key_names"].values()) == [
        "batch",
        "batch",
        "chat",
        "chat",
    ]
    bad = await read(router, f"analytics?{window}&group_by=colour", status=400)
    assert bad["error"]["param"] == "group_by"
    assert bad["error"]["code"] == "invalid_value"
    assert (await read(router, "analytics?start=x&end=1", status=400))["error"]["param"] == "start"

    signed_out(router)
    assert (
        await router.client.post("/dashboard/login/wallet", json=await wallet_sign_in_body(router, payer))
    ).ok
    assert {
        row["group"]["wallet"] for row in (await read(router, f"analytics?{window}&group_by=wallet"))["data"]
    } == {payer.address.lower()}
    mine = await read(router, f"analytics?{window}&group_by=model")
    assert mine["group_by"] == ["model"]
    requests = sum(row["requests"] for row in mine["data"])
    assert requests == 2 * 2 + 1
    spent = sum(row["spend_nano_usd"] for row in mine["data"])
    usage = await read(router, "usage")
    assert spent == sum(event["cost_nano_usd"] for event in usage["data"])


async def test_admin_token_guesses_are_rate_limited_per_client(router_with: RouterWith) -> None:
    # A bucket of two that refills once an hour: the third guess in a row is refused without being checked.
    accounts = AccountsSettings(challenge_burst_per_ip=2, challenge_refill_interval_s=3600)
    async with router_with(admin_token=ADMIN_TOKEN, accounts=accounts) as running:
        for _ in range(2):
            guess = await running.client.post(
                "/dashboard/login/key", json={"admin_token": "guess-guess-guess"}
            )
            assert guess.status == 401
        limited = await running.client.post("/dashboard/login/key", json={"admin_token": ADMIN_TOKEN})
        assert limited.status == 429
        assert (await limited.json())["error"]["code"] == "too_many_sign_in_attempts"
        assert int(limited.headers["Retry-After"]) > 0
        await read(running, "session", status=401)


async def test_analytics_queries_out_of_bounds_are_refused_naming_the_parameter(
    router: RunningRouter,
) -> None:
    await sign_in_as_operator(router)
    now_s = int(time.time())
    window = f"start={now_s - 3600}&end={now_s + 3600}"
    cases = {
        f"{window}&group_by=model,provider,strategy,key": "group_by",
        f"{window}&group_by=model,model": "query",
        f"{window}&bucket=week": "bucket",
        f"start={now_s}&end={now_s - 3600}": "query",
        f"start={now_s - 400 * 86400}&end={now_s}&bucket=hour": "query",
    }
    for query, param in cases.items():
        refused = await read(router, f"analytics?{query}", status=400)
        assert refused["error"]["param"] == (None if param == "query" else param), (query, refused)
    assert (await read(router, f"analytics?{window}&group_by=model,provider,strategy"))["data"] == []
