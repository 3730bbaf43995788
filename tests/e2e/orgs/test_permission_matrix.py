"""The permission matrix, exhaustively: every role × every admin action × a unit inside and outside the grant.

Method: one running router for the module (SQLite), one org built by its owner: root → department A → team A,
and department B → team B. For each role there is a member granted on department A (for unit actions: team A
is inside the grant, team B outside) and one granted on the root (for org-wide actions, inside; the
department A grantee is then outside). Each case performs its action through the HTTP API with that
member's wallet key and expects success exactly when the README's matrix (proxy/governance/roles.py) says
so and the target is inside the grant, else 403 permission_denied, and a refusal adds nothing to the audit
log. Deleting an org runs on a throwaway org per case.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import AsyncHTTPProvider, AsyncWeb3

from proxy.accounts import TokenBuckets
from proxy.api.app_keys import CHALLENGE_RATE_LIMITER
from proxy.app import create_app
from proxy.devnet.anvil import AnvilNode
from proxy.devnet.simulator import Simulators
from proxy.devnet.tokens import DevnetTokens
from proxy.governance.roles import Action, Role, role_allows
from tests.e2e.orgs.helpers import call, created, wallet_key
from tests.fixtures.app import RunningRouter, router_settings

# What a permitted call answers: the top-up's 402 is the x402 offer (the permission check came first).
SUCCESS_STATUS = {
    Action.READ: 200,
    Action.UNIT_WRITE: 200,
    Action.MEMBER_WRITE: 201,
    Action.OWNER_GRANT: 201,
    Action.KEY_WRITE: 201,
    Action.BUDGET_WRITE: 201,
    Action.ORG_UPDATE: 200,
    Action.ORG_DELETE: 200,
    Action.CREDITS_READ: 200,
    Action.CREDITS_TOPUP: 402,
    Action.SPEND_READ: 200,
    Action.AUDIT_READ: 200,
}
assert set(SUCCESS_STATUS) == set(Action), "every action has a case"


@dataclass
class World:
    router: RunningRouter
    owner_key: str
    org_id: int
    units: dict[str, int]  # "root", "dept_a", "team_a", "dept_b", "team_b"
    grantee_keys: dict[tuple[Role, str], str]  # (role, "root" | "dept_a") -> wallet key


@pytest.fixture(scope="module")
async def world(
    tmp_path_factory: pytest.TempPathFactory,
    anvil: AnvilNode,
    tokens: DevnetTokens,
    anvil_accounts: list[LocalAccount],
    simulator_session: Simulators,
) -> AsyncIterator[World]:
    database: Path = tmp_path_factory.mktemp("matrix") / "megarouter.db"
    settings = router_settings(
        anvil=anvil,
        tokens=tokens,
        settlement_key=anvil_accounts[0].key.hex(),
        simulator_base_url=simulator_session.base_url,
        database_url=f"sqlite+aiosqlite:///{database}",
    )
    app = create_app(settings)
    # Every case signs in a fresh wallet from this one client: a limiter sized for the module.
    app[CHALLENGE_RATE_LIMITER] = TokenBuckets(capacity=10_000, refill_interval_s=1.0, keys_max=10)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    w3 = AsyncWeb3(AsyncHTTPProvider(anvil.rpc_url))
    try:
        router = RunningRouter(
            client=client,
            app=app,
            settings=settings,
            tokens=tokens,
            w3=w3,
            payers=anvil_accounts[1:],
            settlement_account=anvil_accounts[0],
            simulator=simulator_session,
        )
        yield await _build_world(router)
    finally:
        await client.close()
        await w3.provider.disconnect()


async def _build_world(router: RunningRouter) -> World:
    _, owner_key = await wallet_key(router)
    org = await created(router, "/v1/orgs", owner_key, {"name": "Matrix"})
    base = f"/v1/orgs/{org['id']}"
    units = {"root": org["root_unit_id"]}
    for letter in ("a", "b"):
        department = await created(
            router, f"{base}/units", owner_key, {"name": f"D{letter}", "kind": "department"}
        )
        team = await created(
            router,
            f"{base}/units",
            owner_key,
            {"name": f"T{letter}", "kind": "team", "parent": department["id"]},
        )
        units[f"dept_{letter}"], units[f"team_{letter}"] = department["id"], team["id"]
    grantee_keys = {}
    for role, position in itertools.product(Role, ("root", "dept_a")):
        account, key = await wallet_key(router)
        body = {"wallet": account.address, "unit": units[position], "role": role.value}
        await created(router, f"{base}/members", owner_key, body)
        grantee_keys[role, position] = key
    return World(router=router, owner_key=owner_key, org_id=org["id"], units=units, grantee_keys=grantee_keys)


async def _attempt(world: World, action: Action, key: str, unit: int) -> tuple[int, dict[str, Any]]:
    """Performs `action` on `unit` (unit actions) or on the org (org-wide actions) with `key`."""
    router, base = world.router, f"/v1/orgs/{world.org_id}"
    if action is Action.READ:
        return await call(router, "GET", f"{base}/units/{unit}", key)
    if action is Action.UNIT_WRITE:
        return await call(router, "PATCH", f"{base}/units/{unit}", key, {"name": "renamed"})
    if action in (Action.MEMBER_WRITE, Action.OWNER_GRANT):
        role = "owner" if action is Action.OWNER_GRANT else "viewer"
        body = {"wallet": Account.create().address, "unit": unit, "role": role}
        return await call(router, "POST", f"{base}/members", key, body)
    if action is Action.KEY_WRITE:
        return await call(router, "POST", f"{base}/keys", key, {"unit": unit, "name": "service"})
    if action is Action.BUDGET_WRITE:
        body = {"scope": {"unit": unit}, "amount_usd": "1.00", "period": "month"}
        return await call(router, "POST", f"{base}/budgets", key, body)
    if action is Action.ORG_UPDATE:
        return await call(router, "PATCH", base, key, {"name": "Renamed"})
    if action is Action.CREDITS_READ:
        return await call(router, "GET", f"{base}/credits", key)
    if action is Action.CREDITS_TOPUP:
        return await call(router, "POST", f"{base}/credits/topup?amount=0.01", key)
    if action is Action.SPEND_READ:
        return await call(router, "GET", f"{base}/spend?by=unit", key)
    assert action is Action.AUDIT_READ
    return await call(router, "GET", f"{base}/audit", key)


async def _delete_throwaway_org(world: World, role: Role, inside: bool) -> tuple[int, dict[str, Any], int]:
    """(status, body, audit entries added) of deleting a fresh org as a member granted on its root (inside) or
    on one of its departments (outside)."""
    router = world.router
    org = await created(router, "/v1/orgs", world.owner_key, {"name": "Throwaway"})
    base = f"/v1/orgs/{org['id']}"
    unit = org["root_unit_id"]
    if not inside:
        unit = (await created(router, f"{base}/units", world.owner_key, {"name": "D", "kind": "department"}))[
            "id"
        ]
    account, key = await wallet_key(router)
    await created(
        router,
        f"{base}/members",
        world.owner_key,
        {"wallet": account.address, "unit": unit, "role": role.value},
    )
    before = len((await call(router, "GET", f"{base}/audit", world.owner_key))[1]["data"])
    status, document = await call(router, "DELETE", base, key)
    if status == 200:
        return status, document, 1
    after = len((await call(router, "GET", f"{base}/audit", world.owner_key))[1]["data"])
    return status, document, after - before


CASES = [
    pytest.param(role, action, inside, id=f"{role.value}-{action.value}-{'inside' if inside else 'outside'}")
    for role, action, inside in itertools.product(Role, Action, (True, False))
]


@pytest.mark.parametrize(("role", "action", "inside"), CASES)
async def test_role_action_inside_outside(world: World, role: Role, action: Action, inside: bool) -> None:
    allowed = role_allows(role, action) and inside
    if action is Action.ORG_DELETE:
        status, document, audited = await _delete_throwaway_org(world, role, inside)
    else:
        org_wide = action in {
            Action.ORG_UPDATE,
            Action.CREDITS_READ,
            Action.CREDITS_TOPUP,
            Action.SPEND_READ,
            Action.AUDIT_READ,
        }
        position = ("root" if inside else "dept_a") if org_wide else "dept_a"
        target = world.units["team_a" if inside else "team_b"]
        audit_path = f"/v1/orgs/{world.org_id}/audit"
        before = len((await call(world.router, "GET", audit_path, world.owner_key))[1]["data"])
        status, document = await _attempt(world, action, world.grantee_keys[role, position], target)
        after = len((await call(world.router, "GET", audit_path, world.owner_key))[1]["data"])
        audited = after - before
    if allowed:
        assert status == SUCCESS_STATUS[action], document
    else:
        assert status == 403, document
        assert (document["error"]["type"], document["error"]["code"]) == (
            "permission_error",
            "permission_denied",
        )
        assert audited == 0, "a refused action changes nothing"


async def test_stranger_sees_no_org(world: World) -> None:
    _, key = await wallet_key(world.router)
    status, document = await call(world.router, "GET", f"/v1/orgs/{world.org_id}", key)
    assert (status, document["error"]["code"]) == (404, "org_not_found")


async def test_listings_show_only_what_is_under_the_grant(world: World) -> None:
    status, listing = await call(
        world.router, "GET", f"/v1/orgs/{world.org_id}/units", world.grantee_keys[Role.VIEWER, "dept_a"]
    )
    assert status == 200
    assert {unit["id"] for unit in listing["data"]} == {world.units["dept_a"], world.units["team_a"]}
