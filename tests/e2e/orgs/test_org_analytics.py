"""GET /v1/analytics for organizations: a member whose role may read the org's spend (owner, viewer on the
root) sees every org key request of that org there, grouped by member; a developer's wallet key and a
stranger's see none of it; an org key itself is refused, as on every account endpoint (a service key must
not read its whole organization's spend).

Method: the running router (SQLite and PostgreSQL); an org built and funded through the admin API; real
chat requests with a developer's org key; the analytics API called with each caller's own key.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from eth_account import Account

from tests.e2e.accounts.helpers import bearer
from tests.e2e.orgs.helpers import chat, created, funded_org_with_developer_key, wallet_key
from tests.fixtures.app import RunningRouter

REQUESTS = 3


async def _org_spend_seen(router: RunningRouter, key: str) -> tuple[int, dict[str, Any]]:
    now = int(time.time())
    query = {"start": str(now - 86_400), "end": str(now + 3_600), "bucket": "day", "group_by": "org,member"}
    response = await router.client.get("/v1/analytics", params=query, headers=bearer(key))
    document: dict[str, Any] = await response.json()
    return response.status, document


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
async def test_org_spend_is_seen_by_roles_that_may_read_it_only(router: RunningRouter) -> None:
    _, owner_key = await wallet_key(router)
    viewer, developer, stranger = Account.create(), Account.create(), Account.create()
    tree = await funded_org_with_developer_key(router, owner_key, developer)
    org, coder, org_key = tree["org"], tree["member"], tree["key"]["key"]
    await created(
        router,
        f"/v1/orgs/{org['id']}/members",
        owner_key,
        {"wallet": viewer.address, "unit": org["root_unit_id"], "role": "viewer"},
    )
    charged = 0
    for _ in range(REQUESTS):
        status, document, cost = await chat(router, org_key)
        assert status == 200, document
        charged += cost

    for key in (owner_key, (await wallet_key(router, viewer))[1]):
        status, report = await _org_spend_seen(router, key)
        assert status == 200, report
        rows = [row for row in report["data"] if row["group"]["org"] == str(org["id"])]
        assert sum(row["requests"] for row in rows) == REQUESTS
        assert sum(row["spend_nano_usd"] for row in rows) == charged
        assert {row["group"]["member"] for row in rows} == {str(coder["id"])}

    for key in ((await wallet_key(router, developer))[1], (await wallet_key(router, stranger))[1]):
        status, report = await _org_spend_seen(router, key)
        assert status == 200, report
        assert report["data"] == []

    status, refused = await _org_spend_seen(router, org_key)
    assert status == 403
    assert refused["error"]["code"] == "wallet_key_required"
