"""Real traffic for the dashboard to draw: a wallet tops up by x402, makes two keys and sends keyed requests
to three models through the router, one of them failing upstream (an error in the charts). With a
UsageClock given to the router, the requests are stamped hours apart, as a day of traffic would be."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from eth_account.signers.local import LocalAccount

from tests.e2e.accounts.helpers import bearer, obtain_key, sign_text, top_up_credit
from tests.fixtures.app import RunningRouter

__all__ = ["ADMIN_TOKEN", "MODELS", "UsageClock", "generate_traffic", "wallet_sign_in_body"]

ADMIN_TOKEN = "dashboard-admin-token-for-tests-0123456789"
MODELS = ("openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", "google/gemini-2.5-flash-lite")
TOP_UP_USD = "2"
TOP_UP_NANO_USD = 2_000_000_000


class UsageClock:
    """Stamps usage events `hours_ago` before the moment it was made (the router's usage_clock)."""

    def __init__(self) -> None:
        self._base = datetime.now(UTC)
        self.hours_ago = 0

    def __call__(self) -> datetime:
        return self._base - timedelta(hours=self.hours_ago)


async def generate_traffic(
    router: RunningRouter,
    payer: LocalAccount,
    *,
    requests_per_key: int = 4,
    clock: UsageClock | None = None,
    hours_ago: Sequence[int] = (0,),
) -> list[str]:
    """Tops up `payer`, makes keys "batch" and "chat", sends requests round-robin over MODELS with each
    key (request i stamped hours_ago[i] on `clock`), and one request whose upstream fails on every
    attempt (stamped now); returns the keys."""
    await top_up_credit(
        router.client.session,
        str(router.client.make_url("")).rstrip("/"),
        payer,
        amount_usd=TOP_UP_USD,
        credited_nano_usd=TOP_UP_NANO_USD,
    )
    keys = [(await obtain_key(router, payer, name=name))["key"] for name in ("batch", "chat")]
    for key in keys:
        for index in range(requests_per_key):
            if clock is not None:
                clock.hours_ago = hours_ago[index % len(hours_ago)]
            body = {
                "model": MODELS[index % len(MODELS)],
                "max_tokens": 40 + 20 * index,
                "messages": [{"role": "user", "content": f"Say hello number {index}."}],
            }
            response = await router.client.post("/v1/chat/completions", json=body, headers=bearer(key))
            assert response.status == 200, await response.text()
    if clock is not None:
        clock.hours_ago = 0
    for server in router.simulator.servers.values():
        server.set_fault("*", error_count=10, error_status=503)
    failing = {"model": MODELS[0], "max_tokens": 20, "messages": [{"role": "user", "content": "fail"}]}
    response = await router.client.post("/v1/chat/completions", json=failing, headers=bearer(keys[0]))
    assert response.status >= 500, await response.text()
    for server in router.simulator.servers.values():
        server.clear_fault("*")
    return keys


async def wallet_sign_in_body(router: RunningRouter, account: LocalAccount) -> dict[str, Any]:
    """What the login page posts: a fresh challenge for `account`, signed by it (EIP-191 over EIP-4361)."""
    response = await router.client.post("/v1/auth/challenge", json={"address": account.address})
    assert response.status == 200, await response.text()
    message = (await response.json())["message"]
    return {"address": account.address, "message": message, "signature": sign_text(account, message)}
