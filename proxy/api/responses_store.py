"""Conversation state of the Responses API: stored responses, per API key, for a retention period.

A stored row holds the whole conversation up to and including its response's output, so continuing it
(`previous_response_id`) reads one row, never a chain. Rows belong to the key that created them, named by
its kind and id (wallet keys and org keys are numbered independently): another key — another wallet's, the
same wallet's other key, or an org key that happens to share the id — sees "not found", as it would for an
id that never existed. Expired rows are not found either, and are deleted in bounded batches as new ones
are written.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, TypeAdapter
from sqlalchemy.ext.asyncio import AsyncEngine

from proxy.api.responses_types import InputItem
from proxy.db.tables import stored_responses
from proxy.settings import ResponsesSettings

__all__ = ["ResponseOwner", "ResponseStore", "StoredResponse"]

MS_PER_S = 1_000
# Expired rows deleted per write: bounded, so a write never turns into a long sweep.
PURGE_BATCH_MAX = 100
_ITEMS = TypeAdapter(list[InputItem])


def _wall_clock_unix_ms() -> int:
    return int(time.time() * MS_PER_S)


class ResponseOwner(BaseModel):
    """The API key a stored response belongs to."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["wallet", "org"]
    key_id: int

    def matches(self, table: sa.Table) -> sa.ColumnElement[bool]:
        return sa.and_(table.c.key_kind == self.kind, table.c.key_id == self.key_id)


class StoredResponse:
    """A stored response: the conversation up to it (as input items) and the Response object returned."""

    def __init__(self, *, items: list[InputItem], response: dict[str, Any]) -> None:
        self.items = items
        self.response = response


class ResponseStore:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: ResponsesSettings,
        *,
        clock_unix_ms: Callable[[], int] = _wall_clock_unix_ms,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._clock_unix_ms = clock_unix_ms

    async def save(self, *, owner: ResponseOwner, items: list[InputItem], response: dict[str, Any]) -> None:
        """Stores `response` (its id is the row's) with the conversation `items` that end with its output."""
        now = self._clock_unix_ms()
        table = stored_responses
        expired = sa.select(table.c.id).where(table.c.expires_at_unix_ms <= now).limit(PURGE_BATCH_MAX)
        async with self._engine.begin() as connection:
            await connection.execute(table.delete().where(table.c.id.in_(expired.scalar_subquery())))
            await connection.execute(
                table.insert().values(
                    id=response["id"],
                    key_id=owner.key_id,
                    key_kind=owner.kind,
                    created_at_unix_ms=now,
                    expires_at_unix_ms=now + self._settings.retention_s * MS_PER_S,
                    items=json.dumps(_ITEMS.dump_python(items, mode="json", exclude_none=True)),
                    response=json.dumps(response),
                )
            )

    async def load(self, *, owner: ResponseOwner, response_id: str) -> StoredResponse | None:
        """The owner's stored response, or None when it has none by that id (never stored, another key's, or
        past its retention)."""
        table = stored_responses
        statement = sa.select(table.c["items"], table.c.response).where(
            table.c.id == response_id,
            owner.matches(table),
            table.c.expires_at_unix_ms > self._clock_unix_ms(),
        )
        async with self._engine.connect() as connection:
            row = (await connection.execute(statement)).one_or_none()
        if row is None:
            return None
        items, response = row
        return StoredResponse(items=_ITEMS.validate_json(items), response=json.loads(response))

    async def delete(self, *, owner: ResponseOwner, response_id: str) -> bool:
        """Deletes the owner's stored response; False when it had none by that id."""
        table = stored_responses
        statement = table.delete().where(
            table.c.id == response_id,
            owner.matches(table),
            table.c.expires_at_unix_ms > self._clock_unix_ms(),
        )
        async with self._engine.begin() as connection:
            deleted: int = (await connection.execute(statement)).rowcount
        return deleted == 1
