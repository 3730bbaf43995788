"""`accounts_router`: the running router, whose withdrawals now go through the app's own Settler.transfer."""

from __future__ import annotations

import pytest

from tests.fixtures.app import RunningRouter


@pytest.fixture
def accounts_router(router: RunningRouter) -> RunningRouter:
    return router
