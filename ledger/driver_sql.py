"""Hot statements run as driver SQL: compiled once per dialect and parameter shape, then executed without
SQLAlchemy's per-execution work.

A cached Core statement still costs SQLAlchemy a compiled-cache lookup, building the parameters bind by
bind and, for expanding IN lists, rendering the SQL anew on every execution: ~25 µs for a narrow statement
and ~105 µs for the 106-column usage roll-up upsert, where the same SQL through `exec_driver_sql` costs
~26 µs (measured on SQLite). `DriverStatement` does that work once per shape (the dialect, the parameter
names in order and the length of each IN list): it takes the SQL and, per position, where the value comes
from and the bind processor SQLAlchemy would apply, from SQLAlchemy's own compiler
(`construct_expanded_state`), and checks the plan against SQLAlchemy's own parameters before using it. The
statement then runs through `exec_driver_sql` on the same connection and transaction.

Only statements whose results need no type processing get a plan (DML without RETURNING, save the new row's
id that an INSERT returns on PostgreSQL, or a SELECT whose columns convert nothing on this dialect), and only
parameter shapes that name every bind (a column left to a Python-side default does not): any other shape
runs as the Core statement, exactly as before. The statement's own bind processors are read from
`SQLCompiler._bind_processors`, as SQLAlchemy's execution context reads them (SQLAlchemy is pinned in
constraints.txt; tests/integration/ledger/test_driver_sql.py would see a change).

This module must not import `proxy` or `x402`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = ["DriverStatement"]

# Shapes remembered per statement; past this many the memo starts afresh (a bound, not an LRU).
PLANS_MAX = 64


@dataclass(frozen=True, slots=True)
class _Source:
    """Where one positional value comes from: a parameter, an item of a list parameter, or a value fixed in
    the statement (`constant`, when `name` is None); and the bind processor to apply."""

    name: str | None
    item: int | None
    processor: Callable[[Any], Any] | None
    constant: Any = None


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    sources: tuple[_Source, ...]
    returns_id: bool  # The SQL ends in RETURNING the new row's id (an INSERT on PostgreSQL).

    def values(self, parameters: Mapping[str, Any]) -> tuple[Any, ...]:
        out = []
        for source in self.sources:
            if source.name is None:
                out.append(source.constant)
                continue
            value = parameters[source.name]
            if source.item is not None:
                value = value[source.item]
            out.append(value if source.processor is None else source.processor(value))
        return tuple(out)


class DriverStatement:
    """A Core statement executed as driver SQL where that is exact (see the module doc)."""

    def __init__(self, statement: sa.Select[Any] | sa.Insert | sa.Update | sa.Delete) -> None:
        self.statement = statement
        self._plans: dict[tuple[Any, ...], _Plan | None] = {}
        self._lists: tuple[str, ...] = ()  # The expanding parameters, learnt from the first plan.

    async def execute(
        self, conn: AsyncConnection, parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> sa.CursorResult[Any]:
        """The statement with `parameters` (one set, or several for executemany) on `conn`."""
        if isinstance(parameters, Mapping):
            plan = self._plan_for(conn.dialect, parameters, many=False)
            if plan is None:
                return await conn.execute(self.statement, parameters)
            return await conn.exec_driver_sql(plan.sql, plan.values(parameters))
        plan = self._plan_for(conn.dialect, parameters[0], many=True)
        if plan is None:
            return await conn.execute(self.statement, parameters)
        return await conn.exec_driver_sql(plan.sql, [plan.values(row) for row in parameters])

    async def inserted_id(self, conn: AsyncConnection, parameters: Mapping[str, Any]) -> int:
        """Inserts one row and returns its integer primary key."""
        plan = self._plan_for(conn.dialect, parameters, many=False)
        if plan is None:
            key = (await conn.execute(self.statement, parameters)).inserted_primary_key
            assert key is not None
            inserted = key[0]
        else:
            result = await conn.exec_driver_sql(plan.sql, plan.values(parameters))
            inserted = result.scalar_one() if plan.returns_id else result.lastrowid
        assert isinstance(inserted, int)
        return inserted

    def _plan_for(self, dialect: Dialect, first: Mapping[str, Any], *, many: bool) -> _Plan | None:
        try:
            return self._plans[self._shape(dialect, first, many=many)]
        except KeyError:
            pass
        plan = self._plan(dialect, first, many=many)
        if len(self._plans) >= PLANS_MAX:
            self._plans.clear()
        # The lists learnt just now are part of the shape: the key is taken after planning.
        self._plans[self._shape(dialect, first, many=many)] = plan
        return plan

    def _shape(self, dialect: Dialect, first: Mapping[str, Any], *, many: bool) -> tuple[Any, ...]:
        lengths = tuple(
            len(value) if isinstance(value := first.get(name), list) else -1 for name in self._lists
        )
        return (dialect.name, many, tuple(first), lengths)

    def _plan(self, dialect: Dialect, sample: Mapping[str, Any], *, many: bool) -> _Plan | None:
        if not _results_need_no_processing(self.statement, dialect):
            return None
        compiled = self.statement.compile(dialect=dialect, column_keys=list(sample), for_executemany=many)
        assert isinstance(compiled, SQLCompiler)
        if compiled.positiontup is None:  # A named paramstyle: not what our drivers use.
            return None
        if compiled.insert_prefetch or compiled.update_prefetch:  # Python-side defaults: SQLAlchemy's work.
            return None
        returning = compiled.effective_returning or []
        if returning and [column.key for column in returning] != ["id"]:
            return None
        lists = tuple(sorted(name for name, bind in compiled.binds.items() if bind.expanding))
        if lists and many:
            return None
        if any(not isinstance(sample.get(name), list) or not sample[name] for name in lists):
            return None
        self._lists = lists
        expanded = compiled.construct_expanded_state(dict(sample))
        if expanded.positiontup is None:
            return None
        # The processors SQLAlchemy's execution context applies: the statement's, then the expanded lists'.
        every = {**compiled._bind_processors, **expanded.processors}
        if not all(callable(processor) for processor in every.values()):  # A tuple's: a sequence of them.
            return None
        processors = cast(dict[str, Callable[[Any], Any]], every)
        sources = []
        for position in expanded.positiontup:
            source = _source_of(position, sample, lists, processors, compiled.binds.get(position))
            if source is None:  # A bind no parameter names (a Python-side default): SQLAlchemy fills it.
                return None
            sources.append(source)
        plan = _Plan(sql=expanded.statement, sources=tuple(sources), returns_id=bool(returning))
        # The plan must give exactly the values SQLAlchemy would send before it is trusted.
        expected = tuple(
            value if processors.get(name) is None else processors[name](value)
            for name, value in zip(expanded.positiontup, expanded.positional_parameters, strict=True)
        )
        return plan if plan.values(sample) == expected else None


def _source_of(
    position: str,
    sample: Mapping[str, Any],
    lists: Sequence[str],
    processors: Mapping[str, Callable[[Any], Any]],
    bind: sa.BindParameter[Any] | None,
) -> _Source | None:
    processor = processors.get(position)
    if position in sample and position not in lists:
        return _Source(position, None, processor)
    if bind is not None and not bind.required and bind.callable is None and bind.value is not None:
        # A value written into the statement (`column == 'pending'`, a LIMIT): processed once, here.
        return _Source(None, None, None, bind.value if processor is None else processor(bind.value))
    for name in lists:  # SQLAlchemy names a list's items `<name>_1`, `<name>_2`, ...
        prefix = f"{name}_"
        if position.startswith(prefix) and position[len(prefix) :].isdigit():
            item = int(position[len(prefix) :]) - 1
            if 0 <= item < len(sample[name]):
                return _Source(name, item, processor)
    return None


def _results_need_no_processing(
    statement: sa.Select[Any] | sa.Insert | sa.Update | sa.Delete, dialect: Dialect
) -> bool:
    if isinstance(statement, sa.Select):
        return all(
            column.type.dialect_impl(dialect).result_processor(dialect, None) is None
            for column in statement.selected_columns
        )
    if isinstance(statement, sa.Insert | sa.Update | sa.Delete):
        return not statement.returning_column_descriptions
    return False
