"""An org key keeps Responses conversation state of its own: it continues its conversations with
`previous_response_id`, and a wallet key that happens to have the same id (the two kinds are numbered in
separate tables) sees none of them, nor does the org key see the wallet key's.

Method: the running router (SQLite and PostgreSQL); an org built and funded by x402 through the admin API;
the official `openai` SDK with the org key and with a wallet key whose id equals it.
"""

from __future__ import annotations

import openai
import pytest

from tests.e2e.api.support import funded_key, openai_client
from tests.e2e.orgs.helpers import funded_org_with_developer_key, wallet_key
from tests.fixtures.app import RunningRouter

MODEL = "openai/gpt-4o-mini"


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
async def test_org_key_state_is_its_own_even_when_a_wallet_key_shares_its_id(router: RunningRouter) -> None:
    _, owner_key = await wallet_key(router)
    org_key = (await funded_org_with_developer_key(router, owner_key))["key"]
    # The owner's wallet key was the first wallet key issued, the org key the first org key: equal ids.
    assert org_key["id"] == 1
    wallet_key_same_id = owner_key
    other_payer_key = await funded_key(router, router.payers[1], amount_usd="0.01")

    async with openai_client(router, org_key["key"]) as org_client:
        first = await org_client.responses.create(model=MODEL, input="Name a colour.", max_output_tokens=16)
        second = await org_client.responses.create(
            model=MODEL, input="Name another.", previous_response_id=first.id, max_output_tokens=16
        )
        assert second.previous_response_id == first.id
        assert (await org_client.responses.retrieve(second.id)).id == second.id

    async with openai_client(router, wallet_key_same_id) as wallet_client:
        with pytest.raises(openai.NotFoundError):
            await wallet_client.responses.retrieve(first.id)
        with pytest.raises(openai.NotFoundError):
            await wallet_client.responses.delete(first.id)

    async with openai_client(router, other_payer_key) as payer_client:
        mine = await payer_client.responses.create(model=MODEL, input="Hello.", max_output_tokens=16)
    async with openai_client(router, org_key["key"]) as org_client:
        with pytest.raises(openai.NotFoundError):
            await org_client.responses.retrieve(mine.id)
        with pytest.raises(openai.BadRequestError):
            await org_client.responses.create(
                model=MODEL, input="Go on.", previous_response_id=mine.id, max_output_tokens=16
            )
        await org_client.responses.delete(first.id)
        with pytest.raises(openai.NotFoundError):
            await org_client.responses.retrieve(first.id)
