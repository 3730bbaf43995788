"""The published OpenAPI document covers every route, and schemathesis fuzzing it finds no server error.

Method: the running app (SQLite and PostgreSQL) serves /openapi.json; the schemathesis CLI runs as a separate
process against it, once without credentials and once with a funded key, checking that no response is a 5xx
and no request hangs. Afterwards no hold is left open and the ledger checks clean. The budget per operation is
small for CI; MEGAROUTER_FUZZ_EXAMPLES raises it for a longer run.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from sqlalchemy import func, select

from ledger import check_ledger
from ledger.tables import ledger_metadata
from proxy.api.app_keys import DB_ENGINE
from tests.e2e.accounts.helpers import bearer, obtain_key, top_up_credit
from tests.fixtures.app import RunningRouter

FUZZ_EXAMPLES_PER_OPERATION = int(os.environ.get("MEGAROUTER_FUZZ_EXAMPLES", "25"))
FUZZ_SEED = int(os.environ.get("MEGAROUTER_FUZZ_SEED", "402"))
FUZZ_RUN_TIMEOUT_S = 900.0
_HOLDS = ledger_metadata.tables["ledger_holds"]
FUZZ_REQUEST_TIMEOUT_S = 20.0


def _base_url(router: RunningRouter) -> str:
    return str(router.client.make_url("")).rstrip("/")


async def _schemathesis(base_url: str, workdir: Path, *extra: str) -> tuple[int, str]:
    command = [
        str(Path(sys.executable).with_name("st")),
        "run",
        f"{base_url}/openapi.json",
        "--url",
        base_url,
        "--checks",
        "not_a_server_error",
        "--max-examples",
        str(FUZZ_EXAMPLES_PER_OPERATION),
        "--seed",
        str(FUZZ_SEED),
        "--request-timeout",
        str(FUZZ_REQUEST_TIMEOUT_S),
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--no-color",
        *extra,
    ]
    process = await asyncio.create_subprocess_exec(
        *command, cwd=workdir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        async with asyncio.timeout(FUZZ_RUN_TIMEOUT_S):
            output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


async def _open_holds(router: RunningRouter) -> int:
    async with router.app[DB_ENGINE].connect() as connection:
        count: int = (
            await connection.execute(
                select(func.count()).select_from(_HOLDS).where(_HOLDS.c.state == "pending")
            )
        ).scalar_one()
    return count


async def test_openapi_document_lists_every_route(router: RunningRouter) -> None:
    response = await router.client.get("/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"] == "3.1.0"
    served = {
        (route.method.lower(), route.resource.canonical.replace("{model_id:.+}", "{model_id}"))
        for route in router.app.router.routes()
        if route.resource is not None
        and route.method not in ("HEAD", "OPTIONS")
        # The web dashboard (pages, sign-in, and the JSON its pages read by cookie) is not part of the API.
        and not route.resource.canonical.startswith("/dashboard")
    }
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert served - documented == {("get", "/openapi.json")}
    assert documented <= served
    body_schema = document["components"]["schemas"]["ChatCompletionRequest"]
    assert "messages" in body_schema["required"]


async def test_fuzzing_every_operation_finds_no_server_error(router: RunningRouter, tmp_path: Path) -> None:
    base_url = _base_url(router)
    anonymous_status, anonymous_output = await _schemathesis(base_url, tmp_path)
    assert anonymous_status == 0, anonymous_output[-6000:]

    payer = router.payers[0]
    key = (await obtain_key(router, payer))["key"]
    await top_up_credit(
        router.client.session, base_url, payer, amount_usd="0.01", credited_nano_usd=10_000_000
    )
    ((name, value),) = bearer(key).items()
    keyed_status, keyed_output = await _schemathesis(base_url, tmp_path, "--header", f"{name}: {value}")
    assert keyed_status == 0, keyed_output[-6000:]

    assert await _open_holds(router) == 0
    assert await check_ledger(router.app[DB_ENGINE]) == []
