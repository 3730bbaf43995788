"""The dashboard in a real headless Chromium: pages load, charts draw from real requests, sign-in works and
signed-out visitors get nothing. Method: the running router (real chain, simulators, ledger) serves real
traffic (keyed requests from two wallets, one failing upstream); Chromium opens the demo-style login link,
every page, and the wallet sign-in with an EIP-1193 provider whose signatures are real (eth_account).
Each page's screenshot is written to the test's tmp dir. Any console error (a CSP violation included)
fails the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from playwright.async_api import BrowserContext, ConsoleMessage, Page

from proxy.api.app_keys import DASHBOARD_SESSIONS
from proxy.api.dashboard.sessions import DashboardPrincipal
from tests.e2e.accounts.helpers import bearer, obtain_key, sign_text, top_up_credit
from tests.e2e.dashboard.support import ADMIN_TOKEN, MODELS, UsageClock, generate_traffic
from tests.e2e.orgs.helpers import created, wallet_key
from tests.fixtures.app import RouterWith, RunningRouter

READY_TIMEOUT_MS = 20_000


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """SQLite only: the browser sees the same JSON either way (the HTTP tests run on PostgreSQL too)."""
    return sqlite_url


@pytest.fixture
def usage_clock() -> UsageClock:
    return UsageClock()


@pytest.fixture
async def router(router_with: RouterWith, usage_clock: UsageClock) -> AsyncIterator[RunningRouter]:
    async with router_with(admin_token=ADMIN_TOKEN, usage_clock=usage_clock) as running:
        yield running


def url(router: RunningRouter, path: str) -> str:
    return str(router.client.make_url(path))


async def open_page(context: BrowserContext) -> tuple[Page, list[str]]:
    page = await context.new_page()
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page, errors


async def ready(page: Page) -> None:
    await page.wait_for_selector("body[data-ready=true]", timeout=READY_TIMEOUT_MS)


async def series_points(page: Page, panel: str) -> dict[str, int]:
    """Drawn series of the chart in panel `panel`: name -> number of data points drawn."""
    found: dict[str, int] = await page.eval_on_selector_all(
        f"#{panel} svg.chart .series",
        "nodes => Object.fromEntries(nodes.map(n => [n.dataset.name, Number(n.dataset.points)]))",
    )
    return found


async def test_the_operator_link_opens_every_page_with_charts_of_real_traffic(
    router: RunningRouter, browser_context: BrowserContext, usage_clock: UsageClock, tmp_path: Path
) -> None:
    # A day of traffic: requests stamped hours apart (the usage clock), so the charts span many buckets.
    schedule = {
        0: ((20, 17, 13, 9, 6, 3, 1, 0), 8),
        1: ((13, 6, 1), 3),
    }  # payer: (hours ago, requests per key)
    for payer, (hours, per_key) in schedule.items():
        await generate_traffic(
            router, router.payers[payer], requests_per_key=per_key, clock=usage_clock, hours_ago=hours
        )
    # Request i goes to MODELS[i % 3] at hours[i % len(hours)]: the hours in which each model spent.
    model_hours = {
        model: {
            hours[i % len(hours)]
            for hours, per_key in schedule.values()
            for i in range(per_key)
            if i % 3 == m
        }
        for m, model in enumerate(MODELS)
    }
    # An organization with two budgets: the money page draws each one's share spent.
    _, owner_key = await wallet_key(router)
    org = await created(router, "/v1/orgs", owner_key, {"name": "Acme"})
    for period in ("day", "month"):
        await created(
            router,
            f"/v1/orgs/{org['id']}/budgets",
            owner_key,
            {"scope": {"org": org["id"]}, "amount_usd": "5", "period": period},
        )
    token = router.app[DASHBOARD_SESSIONS].issue_login_token(DashboardPrincipal(kind="operator"))
    page, errors = await open_page(browser_context)

    await page.goto(url(router, f"/dashboard/login?token={token}"))
    await page.wait_for_url(url(router, "/dashboard"))
    await ready(page)
    assert await page.text_content("#who") == "operator"
    recent = await series_points(page, "recent")
    assert recent["completed"] == sum(2 * per_key for _, per_key in schedule.values())
    assert recent["upstream_failed"] == 2
    spend = await series_points(page, "spend")
    assert set(spend) == set(MODELS)
    assert spend == {model: len(hours) for model, hours in model_hours.items()}
    by_key = await series_points(page, "spend-by-key")
    assert sorted(name.split(" ")[0] for name in by_key) == ["batch", "batch", "chat", "chat"]
    requests = await series_points(page, "requests")
    assert requests == {"requests": 24, "errors": 24}  # One point per hour of the last 24.
    latency = await series_points(page, "latency")
    assert set(latency) == {"p50", "p95", "p99"}
    assert latency["p50"] >= 3
    await page.select_option("#group-by", "provider")
    await page.wait_for_selector("#spend svg.chart")
    assert set(await series_points(page, "spend")) == {"openai", "anthropic", "google"}
    await page.select_option("#group-by", "model")
    await page.wait_for_selector("#latency svg.chart")
    await page.screenshot(path=str(tmp_path / "dashboard-overview.png"), full_page=True)

    await page.click("nav a[href='/dashboard/health']")
    await page.wait_for_url(url(router, "/dashboard/health"))
    await ready(page)
    tiles = await page.locator("#deployments .tile").count()
    assert tiles == len(MODELS)
    breakers = await series_points(page, "breakers")
    assert breakers == {"items": 3}
    assert await page.locator("#gauges .tile").count() >= 4
    alerts_text = await page.text_content("#alerts")
    assert alerts_text is not None
    assert "no alerts" in alerts_text
    await page.screenshot(path=str(tmp_path / "dashboard-health.png"), full_page=True)

    await page.click("nav a[href='/dashboard/money']")
    await page.wait_for_url(url(router, "/dashboard/money"))
    await ready(page)
    burn = await series_points(page, "burn-down")
    assert burn["balance"] >= 2  # The top-up, then the requests it paid for.
    balances = await series_points(page, "balances")
    assert balances["items"] >= 4  # Two wallets' credit, cash, provider payables.
    assert await series_points(page, "budgets") == {"items": 2}
    reconciliation = await page.text_content("#reconciliation")
    assert reconciliation is not None
    assert "no reconciliation has run yet" in reconciliation
    await page.screenshot(path=str(tmp_path / "dashboard-money.png"), full_page=True)
    assert errors == []


async def test_signed_out_visitors_see_only_the_login_page_and_a_wallet_signs_in(
    router: RunningRouter, browser_context: BrowserContext, tmp_path: Path
) -> None:
    payer: LocalAccount = router.payers[0]
    await generate_traffic(router, payer, requests_per_key=2)
    await browser_context.expose_function("mrTestSign", lambda text: sign_text(payer, text))
    # An EIP-1193 wallet: the page sends personal_sign the hex of the message's UTF-8 bytes.
    await browser_context.add_init_script(
        "window.ethereum = { request: async ({ method, params }) => {"
        f"  if (method === 'eth_requestAccounts') return ['{payer.address}'];"
        "  if (method === 'personal_sign') {"
        "    const bytes = params[0].slice(2).match(/../g).map((h) => parseInt(h, 16));"
        "    return window.mrTestSign(new TextDecoder().decode(new Uint8Array(bytes)));"
        "  }"
        "  throw new Error('unsupported ' + method);"
        "} };"
    )
    page, errors = await open_page(browser_context)

    await page.goto(url(router, "/dashboard/money"))
    await page.wait_for_url(url(router, "/dashboard/login"))
    refused = await page.evaluate("fetch('/dashboard/api/ledger').then((r) => r.status)")
    assert refused == 401
    await page.screenshot(path=str(tmp_path / "dashboard-login.png"), full_page=True)

    await page.goto(url(router, "/dashboard/login?token=not-a-token"))
    await page.wait_for_selector("#error:not([hidden])")
    await page.click("#wallet-login")
    await page.wait_for_url(url(router, "/dashboard"))
    await ready(page)
    assert await page.text_content("#who") == f"wallet {payer.address.lower()}"
    assert (await series_points(page, "recent"))["completed"] == 2 * 2
    assert set(await series_points(page, "spend")) == set(MODELS[:2])  # Two requests per key.
    await page.goto(url(router, "/dashboard/money"))
    await ready(page)
    assert (await series_points(page, "burn-down"))["balance"] >= 2
    assert await page.locator("#balances").count() == 0  # The ledger is the operator's.
    await page.screenshot(path=str(tmp_path / "dashboard-wallet-money.png"), full_page=True)

    await page.click("#logout")
    await page.wait_for_url(url(router, "/dashboard/login"))
    await page.fill("#admin-token", "wrong-token-wrong-token")
    await page.click("#key-form button")
    await page.wait_for_selector("#error:not([hidden])")
    assert page.url == url(router, "/dashboard/login")
    await page.fill("#admin-token", ADMIN_TOKEN)
    await page.click("#key-form button")
    await page.wait_for_url(url(router, "/dashboard"))
    await ready(page)
    assert await page.text_content("#who") == "operator"
    assert [e for e in errors if "401" not in e] == []  # The deliberately refused fetches log a 401.


async def test_names_from_callers_are_shown_as_text_never_markup(
    router: RunningRouter, browser_context: BrowserContext
) -> None:
    payer = router.payers[0]
    hostile = '<img src=x onerror="document.title=1">'
    await top_up_credit(
        router.client.session,
        str(router.client.make_url("")).rstrip("/"),
        payer,
        amount_usd="1",
        credited_nano_usd=1_000_000_000,
    )
    key = (await obtain_key(router, payer, name=hostile))["key"]
    body = {"model": MODELS[0], "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    assert (await router.client.post("/v1/chat/completions", json=body, headers=bearer(key))).status == 200
    token = router.app[DASHBOARD_SESSIONS].issue_login_token(DashboardPrincipal(kind="operator"))
    page, errors = await open_page(browser_context)
    await page.goto(url(router, f"/dashboard/login?token={token}"))
    await page.wait_for_url(url(router, "/dashboard"))
    await ready(page)
    legend = await page.text_content("#spend-by-key .legend")
    assert legend is not None
    assert hostile in legend
    assert await page.locator("img").count() == 0
    assert await page.title() == "MegaRouter dashboard"
    assert errors == []
