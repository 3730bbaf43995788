"""A deployment's breaker open too long alerts; the history is served to the operator only.

Goal: a simulated deployment that keeps failing opens its breaker; once it has stayed open (or half-open,
not recovered) for `breaker_open_after_s`, one `breaker_open` alert is raised for the episode and delivered
signed; `GET /v1/alerts` lists it with its delivery state, pages and filters, and refuses callers without
the admin token (and everyone when no admin token is configured), with OpenAI-style errors.

Method: the `fault_router` layout (Groq's Llama on the "primary" simulator, Together's on the "secondary")
with 100% errors injected on the primary; callers never notice (failover), the breaker opens; deployment
health runs on a FakeClock the test moves; detectors are evaluated by the test.
"""

from __future__ import annotations

from typing import Any

from eth_account.signers.local import LocalAccount

from proxy.api.app_keys import ALERTS
from proxy.catalog import load_catalog
from proxy.devnet.anvil import AnvilNode
from proxy.devnet.providers import simulated_providers
from proxy.devnet.simulator import ANY_MODEL, FaultSpec, Simulators
from proxy.devnet.tokens import DevnetTokens
from proxy.settings import Settings
from tests.e2e.accounts.helpers import bearer
from tests.e2e.alerts.conftest import admin, alerting_router, alerts_settings, evaluate
from tests.e2e.api.support import funded_key
from tests.e2e.routing.conftest import FAULTY_MODEL, FAULTY_PROVIDER, TEST_HEALTH_POLICY
from tests.fixtures.clock import FakeClock
from tests.fixtures.webhook_receiver import new_webhook_secret, webhook_receiver

OPEN_AFTER_S = 30.0
BODY: dict[str, Any] = {
    "model": FAULTY_MODEL,
    "messages": [{"role": "user", "content": "Say something short."}],
    "max_tokens": 16,
}
REQUESTS_TO_OPEN_MAX = 20


def _faulty_on_primary(simulator: Simulators) -> Any:
    def adjust(settings: Settings) -> Settings:
        providers = dict(settings.providers)
        providers[FAULTY_PROVIDER] = simulated_providers(
            load_catalog(), simulator_base_url=simulator["primary"].base_url
        )[FAULTY_PROVIDER]
        return settings.model_copy(update={"providers": providers, "health_policy": TEST_HEALTH_POLICY})

    return adjust


async def test_a_breaker_open_too_long_alerts_once_and_the_history_shows_it(
    aiohttp_client: Any,
    anvil: AnvilNode,
    tokens: DevnetTokens,
    anvil_accounts: list[LocalAccount],
    simulator: Simulators,
    database_url: str,
) -> None:
    health_clock = FakeClock()
    async with (
        webhook_receiver(new_webhook_secret()) as receiver,
        alerting_router(
            aiohttp_client,
            anvil=anvil,
            tokens=tokens,
            anvil_accounts=anvil_accounts,
            simulator=simulator,
            database_url=database_url,
            alerts=alerts_settings(receiver, breaker_open_after_s=OPEN_AFTER_S),
            clock=FakeClock(1_800_000_000.0),
            health_clock=health_clock,
            simulator_base_url=simulator["secondary"].base_url,
            adjust=_faulty_on_primary(simulator),
        ) as router,
    ):
        simulator["primary"].set_fault(ANY_MODEL, FaultSpec(error_rate=1.0, error_status=500))
        key = await funded_key(router, router.payers[2])
        for _ in range(REQUESTS_TO_OPEN_MAX):
            response = await router.client.post("/v1/chat/completions", json=BODY, headers=bearer(key))
            assert response.status == 200, await response.text()
            health = await (await router.client.get("/v1/deployments", params={"model": FAULTY_MODEL})).json()
            if health["data"][0]["health"]["breaker"] == "open":
                break
        else:
            raise AssertionError("the failing deployment's breaker never opened")

        assert await evaluate(router) == []  # open, but not for long yet
        health_clock.advance(OPEN_AFTER_S - 1)
        assert await evaluate(router) == []
        health_clock.advance(1)
        (raised,) = await evaluate(router)
        assert raised.created
        assert await evaluate(router) == [raised.model_copy(update={"created": False})]

        response = await router.client.get(f"/v1/alerts/{raised.id}", headers=admin())
        assert response.status == 200
        alert = await response.json()
        assert (alert["kind"], alert["subject"]) == ("breaker_open", f"deployment:{FAULTY_MODEL}")
        assert alert["payload"]["deployment"] == FAULTY_MODEL
        assert alert["payload"]["open_for_s"] >= OPEN_AFTER_S
        assert alert["payload"]["last_failure_kind"] is not None

        await receiver.until(lambda: len(receiver.delivered) == 1, "the breaker alert delivered")
        assert receiver.delivered[0].webhook_id == raised.id
        assert receiver.delivered[0].body["type"] == "alert.breaker_open"
        response = await router.client.get("/v1/alerts", headers=admin())
        listed = await response.json()
        assert listed["object"] == "list"
        (entry,) = [item for item in listed["data"] if item["id"] == raised.id]
        assert entry["delivery"]["state"] == "delivered"
        assert entry["delivery"]["attempts"] == 1
        assert entry["delivery"]["last_error"] is None


async def test_the_history_is_for_the_admin_token_only_and_pages(
    aiohttp_client: Any,
    anvil: AnvilNode,
    tokens: DevnetTokens,
    anvil_accounts: list[LocalAccount],
    simulator: Simulators,
    database_url: str,
) -> None:
    clock = FakeClock(1_800_000_000.0)
    async with (
        webhook_receiver(new_webhook_secret()) as receiver,
        alerting_router(
            aiohttp_client,
            anvil=anvil,
            tokens=tokens,
            anvil_accounts=anvil_accounts,
            simulator=simulator,
            database_url=database_url,
            alerts=alerts_settings(receiver),
            clock=clock,
        ) as router,
    ):
        alerts = router.app[ALERTS]
        ids = []
        for n in range(5):
            kind = "budget_threshold" if n % 2 else "settlement_failed"
            ids.append((await alerts.raise_alert(kind, f"k{n}", f"s{n}", {"n": n})).id)
            clock.advance(1)
        client = router.client

        assert (await client.get("/v1/alerts")).status == 401
        wrong = await client.get("/v1/alerts", headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401
        assert (await wrong.json())["error"]["code"] == "invalid_admin_token"
        key = await funded_key(router, router.payers[3])
        assert (await client.get("/v1/alerts", headers=bearer(key))).status == 401

        first = await (await client.get("/v1/alerts", params={"limit": "2"}, headers=admin())).json()
        assert [item["id"] for item in first["data"]] == [ids[4], ids[3]]
        assert (first["has_more"], first["last_id"]) == (True, ids[3])
        rest = await (
            await client.get("/v1/alerts", params={"limit": "10", "after": first["last_id"]}, headers=admin())
        ).json()
        assert [item["id"] for item in rest["data"]] == [ids[2], ids[1], ids[0]]
        assert rest["has_more"] is False
        budgets = await (
            await client.get("/v1/alerts", params={"kind": "budget_threshold"}, headers=admin())
        ).json()
        assert [item["id"] for item in budgets["data"]] == [ids[3], ids[1]]
        assert budgets["data"][0]["payload"] == {"n": 3}
        assert budgets["data"][0]["created_at"] == 1_800_000_003

        for params, param in (
            ({"limit": "0"}, "limit"),
            ({"limit": "101"}, "limit"),
            ({"limit": "²"}, "limit"),
            ({"kind": "Robert'); DROP"}, "kind"),
            ({"after": "nope"}, "after"),
        ):
            response = await client.get("/v1/alerts", params=params, headers=admin())
            assert response.status == 400, params
            assert (await response.json())["error"]["param"] == param
        missing = await client.get("/v1/alerts", params={"after": "alert_" + "0" * 32}, headers=admin())
        assert missing.status == 404
        assert (await client.get("/v1/alerts/alert_" + "0" * 32, headers=admin())).status == 404

        assert (await client.post("/v1/alerts/test")).status == 401
        response = await client.post("/v1/alerts/test", headers=admin())
        assert response.status == 201
        test_alert = await response.json()
        assert (test_alert["kind"], test_alert["subject"]) == ("test", "megarouter")

        await receiver.until(lambda: len(receiver.delivered) == 6, "every alert delivered")
        assert sorted(item.webhook_id for item in receiver.delivered) == sorted([*ids, test_alert["id"]])


async def test_without_an_admin_token_the_history_is_closed_to_everyone(
    aiohttp_client: Any,
    anvil: AnvilNode,
    tokens: DevnetTokens,
    anvil_accounts: list[LocalAccount],
    simulator: Simulators,
    database_url: str,
) -> None:
    async with (
        webhook_receiver(new_webhook_secret()) as receiver,
        alerting_router(
            aiohttp_client,
            anvil=anvil,
            tokens=tokens,
            anvil_accounts=anvil_accounts,
            simulator=simulator,
            database_url=database_url,
            alerts=alerts_settings(receiver),
            clock=FakeClock(1_800_000_000.0),
            adjust=lambda settings: settings.model_copy(update={"admin_token": None}),
        ) as router,
    ):
        response = await router.client.get("/v1/alerts", headers=admin())
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "admin_disabled"
