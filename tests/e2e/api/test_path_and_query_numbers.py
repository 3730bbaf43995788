"""Numbers in paths and query strings that Python's str.isdigit() admits but int() or a BIGINT column refuses.

Method: found by fuzzing the OpenAPI document; each case is sent with a funded key and must be a 4xx.
"""

from __future__ import annotations

import pytest

from tests.e2e.api.support import funded_key
from tests.fixtures.app import RunningRouter


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_non_ascii_and_oversized_numbers_are_callers_errors(router: RunningRouter) -> None:
    key = await funded_key(router, router.payers[4], amount_usd="0.01")
    auth = {"Authorization": f"Bearer {key}"}
    for limit in ("%C2%B3", "%D9%A3", "99999999999999999999999"):
        response = await router.client.get(f"/v1/usage?limit={limit}", headers=auth)
        assert response.status == 400, await response.text()
        assert (await response.json())["error"]["param"] == "limit"
    for key_id in ("%C2%B3", "9" * 30):
        response = await router.client.delete(f"/v1/keys/{key_id}", headers=auth)
        assert response.status == 404, await response.text()
        assert (await response.json())["error"]["code"] == "api_key_not_found"
