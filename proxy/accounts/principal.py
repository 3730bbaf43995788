"""Who a keyed request acts for, as the serving pipeline needs to know it (the edge authenticates)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["KeyPrincipal"]


class KeyPrincipal(BaseModel):
    """Who a keyed request acts for: holds and captures go on `credit_account`."""

    model_config = ConfigDict(frozen=True)

    key_id: int
    wallet: str
    credit_account: str
    route_strategy: str | None = None
