"""Who a keyed request acts for, as the serving pipeline needs to know it (the edge authenticates)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from proxy.governance.models import OrgPrincipal

__all__ = ["KeyPrincipal"]


class KeyPrincipal(BaseModel):
    """Who a keyed request acts for: holds and captures go on `credit_account`.

    An org key (`org` set) pays from its organization's credit and has no wallet of its own (`wallet` is
    empty): wallet-account endpoints refuse it."""

    model_config = ConfigDict(frozen=True)

    key_id: int
    wallet: str
    credit_account: str
    route_strategy: str | None = None
    org: OrgPrincipal | None = None
